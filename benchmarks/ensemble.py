"""Ensemble members in one `fit_ensemble` call against as many sequential `fit` calls.

Same settings for both: `FFN(1, 1, (16,))` from member keys, Adam 1e-2 (one `optax.adam(1e-2)`
made here, so both programs are new and the cold figures include compiling), full batch, 2000
steps, the lecture's data. Member `i` is what `fit` gives for `model_key, fit_key =
jax.random.split(keys[i])`; the sequential calls use exactly those, and both build their models
inside the timing. Cold: the first call (sequential: the first fit compiles, the others reuse
it; on a CPU most of the ensemble's cold setup is XLA compiling the batched random draws of the
initialisation). Warm: programs compiled.
"""

from __future__ import annotations

import jax.random as jr
import numpy as np
import optax

import eqx_ffn

from ._common import Mode, lecture_data, median_time, timed
from ._report import Table

TITLE = "Ensemble: one fit_ensemble call against sequential fit calls"
STEPS = 2000


def _make(key):
    return eqx_ffn.FFN(1, 1, (16,), key=key)


def run(mode: Mode) -> list[Table]:
    members = 8 if mode.quick else 64
    x, y, _ = lecture_data()
    keys = jr.split(jr.key(0), members)
    kw = {"optimizer": optax.adam(1e-2), "steps": STEPS, "progress": False}
    pairs = [jr.split(k) for k in keys]

    def ensemble():
        return eqx_ffn.fit_ensemble(_make, x, y, keys=keys, **kw)[1]

    def sequential():
        return [eqx_ffn.fit(_make(mk), x, y, key=fk, **kw)[1] for mk, fk in pairs]

    t = Table(
        f"{members} members of 1-16-1 tanh, Adam 1e-2, {STEPS} full-batch steps",
        ["runner", "cold", "of which compiling the training program", "warm",
         "member-steps/s (warm)"],
        formats="tsssg",
    )  # fmt: skip
    out = {}
    for label, call in (("one fit_ensemble call", ensemble),
                        (f"{members} sequential fit calls", sequential)):  # fmt: skip
        cold, hists = timed(call)
        warm = median_time(call, mode.slow_repeats, warmup=0)
        out[label] = (cold, warm.median, np.array([h.final_loss for h in warm.result]))
        t.add(label, cold, hists[0].compile_time, warm.median, round(members * STEPS / warm.median))
    (ens_cold, ens_warm, ens_loss), (seq_cold, seq_warm, seq_loss) = out.values()
    rel = np.abs(ens_loss - seq_loss) / np.maximum(np.abs(seq_loss), 1e-30)
    t.notes.append(
        f"Sequential / ensemble: warm {seq_warm / ens_warm:.3g}x, cold {seq_cold / ens_cold:.3g}x. "
        "Final losses, member against its sequential fit: median relative difference "
        f"{np.median(rel):.3g}, largest {np.max(rel):.3g} (vmapped arithmetic rounds differently, "
        f"and 2000 steps can amplify it); median final loss {np.median(ens_loss):.3g}."
    )
    return [t]
