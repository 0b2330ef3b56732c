"""Case 5: 64 ensemble members in one `fit_ensemble` call against 64 sequential `fit` calls.

Same settings for both: `FFN(1, 1, (16,))` (standard-normal init) from member keys, Adam 1e-2
(one `optax.adam(1e-2)` object made here, so both programs are new to this process and the cold
figures include compiling), full batch, 2000 steps, the lecture's data. Member `i` of the
ensemble is what `fit` gives for `model_key_i, fit_key_i = jax.random.split(keys[i])`; the
sequential calls use exactly those. Both build their models inside the timing. Cold: first
call, compiling included (sequential: the first call compiles, the other 63 reuse it); on a
CPU most of the ensemble's cold setup is XLA compiling the batched random draws of the
initialisation (about 0.1 s per `jax.random.normal` shape). Warm: programs compiled.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.random as jr
import numpy as np
import optax

import eqx_ffn

from ._common import Mode, lecture_data, median_time, ratio, timed

MEMBERS = 64
STEPS = 2000


def _make(key):
    return eqx_ffn.FFN(1, 1, (16,), key=key)


def run(mode: Mode) -> dict[str, Any]:
    fit_ensemble = getattr(eqx_ffn, "fit_ensemble", None)
    if fit_ensemble is None:
        return {"skipped": "eqx_ffn.fit_ensemble does not exist in this version"}
    x, y, _, _ = lecture_data()
    keys = jr.split(jr.key(0), MEMBERS)
    kw = {"optimizer": optax.adam(1e-2), "steps": STEPS, "progress": False}

    def ensemble():
        return fit_ensemble(_make, x, y, keys=keys, **kw)

    pairs = [jr.split(k) for k in keys]

    def sequential():  # builds each model, as fit_ensemble does
        return [eqx_ffn.fit(_make(mk), x, y, key=fk, **kw)[1] for mk, fk in pairs]

    ens_cold, (_, ens_cold_hist) = timed(ensemble)
    ens = median_time(ensemble, mode.slow_repeats, warmup=0)
    seq_cold, seq_cold_hist = timed(sequential)
    seq = median_time(sequential, mode.slow_repeats, warmup=0)
    ens_hist, seq_hist = ens["result"][1], seq["result"]
    ens_loss = np.array([h.final_loss for h in ens_hist])
    seq_loss = np.array([h.final_loss for h in seq_hist])
    rel = np.abs(ens_loss - seq_loss) / np.maximum(np.abs(seq_loss), 1e-30)
    return {
        "title": f"{MEMBERS} members: one fit_ensemble call vs {MEMBERS} sequential fit calls",
        "members": MEMBERS,
        "steps": STEPS,
        "ensemble_cold_s": ens_cold,
        "ensemble_compile_s": ens_cold_hist[0].compile_time,
        "ensemble_warm_s": ens["median"],
        "sequential_cold_s": seq_cold,
        "sequential_compile_s": seq_cold_hist[0].compile_time,
        "sequential_warm_s": seq["median"],
        "speedup_warm": ratio(seq["median"], ens["median"]),
        "speedup_cold": ratio(seq_cold, ens_cold),
        "member_steps_per_s_ensemble": MEMBERS * STEPS / ens["median"],
        "member_steps_per_s_sequential": MEMBERS * STEPS / seq["median"],
        "median_rel_diff": float(np.median(rel)),
        "max_rel_diff": float(np.max(rel)),
        "median_final_loss": float(np.median(ens_loss)),
        "device": str(jax.devices()[0]),
    }
