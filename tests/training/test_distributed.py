"""Data parallel across real processes: two CPU processes joined by `jax.distributed.initialize`
(gloo collectives over localhost, one device each) train the lecture's network with `mesh=` over
both, and match the one-process fit.

The two processes hold the same replicated parameters, bit for bit; against one process they
agree to float32 rounding only (the batch's sum is reduced in another order), the tolerance of the
4-device test in test_sharding.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

import eqx_ffn

WORKER = textwrap.dedent(
    """
    import json, sys
    process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )
    import numpy as np
    from jax.sharding import Mesh
    import eqx_ffn

    assert jax.process_count() == 2 and len(jax.devices()) == 2, jax.devices()
    data = eqx_ffn.datasets.sine_1d()
    model = eqx_ffn.FFN.from_params(eqx_ffn.datasets.lecture_params())
    mesh = Mesh(np.array(jax.devices()), ("data",))
    result = {}
    for batch_size in (None, 40):
        fitted, history = eqx_ffn.fit(
            model, data.x, data.y, steps=200, batch_size=batch_size, mesh=mesh, progress=False
        )
        weight = fitted.layers[0].weight
        assert weight.sharding.is_fully_replicated and len(weight.sharding.device_set) == 2
        local = np.asarray(weight.addressable_shards[0].data)
        result[str(batch_size)] = {"loss": np.asarray(history.loss).tolist(),
                                   "weight": local.tolist(), "stop": history.stop_reason}
    with open(out, "w") as f:
        json.dump(result, f)
    jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_fit_as_one(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    port = str(_free_port())
    outs = [tmp_path / f"process{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), port, str(outs[i])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errors = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-3000:] for e in errors)
    results = [json.loads(out.read_text()) for out in outs]
    assert results[0] == results[1]  # both processes hold the same model, bit for bit

    data = eqx_ffn.datasets.sine_1d()
    model = eqx_ffn.FFN.from_params(eqx_ffn.datasets.lecture_params())
    for batch_size in (None, 40):
        fitted, history = eqx_ffn.fit(
            model, data.x, data.y, steps=200, batch_size=batch_size, progress=False
        )
        two = results[0][str(batch_size)]
        assert two["stop"] == history.stop_reason == "completed"
        assert len(two["loss"]) == 200
        np.testing.assert_allclose(two["loss"], history.loss, rtol=1e-5)
        np.testing.assert_allclose(
            two["weight"], np.asarray(fitted.layers[0].weight), rtol=1e-4, atol=1e-5
        )
