"""Train, export as StableHLO, and run the exported program with JAX alone.

`eqx_ffn.export(model, path)` writes the model's batched prediction through `jax.export`: a
serialised StableHLO program with the parameters (and a Standardized model's scalers) inside and a
symbolic batch size. Reading it back needs JAX and flatbuffers, not eqx_ffn; here it is read in
the same script and compared with `eqx_ffn.predict`.

    python export.py [OUT_FOLDER]

Writes model.stablehlo into OUT_FOLDER (default: the current folder). Needs flatbuffers
(pip install "eqx_ffn[export]"); says so and exits 0 without it.
EQX_FFN_EXAMPLE_STEPS=N runs N training steps instead of 2000 (the tests use a few).
"""

import os
import sys
from pathlib import Path

import jax
import numpy as np

import eqx_ffn
from eqx_ffn import datasets

steps = int(os.environ.get("EQX_FFN_EXAMPLE_STEPS", "2000"))
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
out.mkdir(parents=True, exist_ok=True)

# A model in physical units: the network trained on standardised data, the scalers around it.
data = datasets.sine_cosine_2d()
net = eqx_ffn.FFN(2, 1, (16, 8), key=jax.random.key(0))
model = eqx_ffn.Standardized.around(net, data.x, data.y)
model, history = eqx_ffn.fit(model, data.x, data.y, learning_rate=1e-2, steps=steps)
print(history.message)

try:
    path = eqx_ffn.export(model, out / "model.stablehlo")
except ImportError as e:  # flatbuffers is missing
    print(f"skipped: {e}")
    sys.exit(0)
print(f"wrote {path} ({path.stat().st_size:,} bytes)")

# Elsewhere, with JAX only: deserialize, then call on any number of rows.
with open(path, "rb") as f:
    program = jax.export.deserialize(bytearray(f.read()))
print(f"inputs {program.in_avals}, outputs {program.out_avals}, platforms {program.platforms}")
for rows in (data.x_test, data.x_test[:7]):
    exported = np.asarray(program.call(rows))
    direct = np.asarray(eqx_ffn.predict(model, rows))
    gap = float(np.abs(exported - direct).max())
    print(f"{len(rows)} rows: largest difference from eqx_ffn.predict {gap:.2g}")
    assert gap <= 1e-5 * max(1.0, float(np.abs(direct).max())), gap
