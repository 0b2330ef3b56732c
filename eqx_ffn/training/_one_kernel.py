"""Running a small CPU program's steps as ONE kernel (`Config.small_call`): XLA's CPU backend
compiles a call marked with the frontend attribute `xla_cpu_small_call` with its one-kernel
emitter, the path of its own `SmallWhileLoopHoistingPass` (whose byte threshold only
`XLA_FLAGS` sets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core

from ._config import Config

ONE_KERNEL_PRIMITIVES = frozenset(
    "abs add add_any and broadcast_in_dim clamp concatenate convert_element_type copy copy_p "
    "cos custom_jvp_call custom_vjp_call div dot_general dynamic_slice dynamic_update_slice eq "
    "erf exp exp2 expand_dims gather ge gt integer_pow iota is_finite jit le log log1p logistic "
    "lt max min mul ne neg not or pow reduce_and reduce_max reduce_min reduce_or reduce_sum rem "
    "reshape rsqrt select_n sign sin slice split sqrt square squeeze stack stop_gradient sub "
    "tan tanh transpose xor".split()
)
"""The primitives a chunk's step may use for its scan to be compiled into one kernel
(`one_kernel`): those of the first-order steps of named losses, tested. Not control flow
(`cond`, `while`, nested `scan`: a `cond` there made XLA's one-kernel emitter fail a CHECK,
which aborts the process), nor scatter (not implemented there): such steps keep XLA's usual
kernels."""


def _sub_jaxprs(eqn) -> list:
    out = []
    for value in eqn.params.values():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, jax.extend.core.ClosedJaxpr):
                out.append(v.jaxpr)
            elif isinstance(v, jax.extend.core.Jaxpr):
                out.append(v)
    return out


def _one_kernel_ok(eqns, allowed: frozenset = ONE_KERNEL_PRIMITIVES) -> bool:
    """Whether every primitive of `eqns` is `allowed`, and every one of the jaxprs they call
    (nested ones included) in `ONE_KERNEL_PRIMITIVES`."""
    return all(
        e.primitive.name in allowed and all(_one_kernel_ok(j.eqns) for j in _sub_jaxprs(e))
        for e in eqns
    )


def one_kernel(cfg: Config, fn: Callable, *args) -> Any:
    """`fn(*args)`; in a small CPU program (`Config.small_call`) whose `fn` uses only
    `ONE_KERNEL_PRIMITIVES` (a top-level `scan` of them too), as one call that XLA's CPU
    backend compiles into ONE kernel (the frontend attribute `xla_cpu_small_call`;
    `inlineable="false"` keeps the call until then). A tiny step runs dozens of kernels, and
    dispatching each costs more than its arithmetic (the lecture's step: ~33 kernels). XLA's
    own `SmallWhileLoopHoistingPass` does the same for loops under a byte threshold that
    only `XLA_FLAGS` sets."""
    if not cfg.small_call:
        return fn(*args)
    jitted = jax.jit(fn)
    eqns = jitted.trace(*args).jaxpr.jaxpr.eqns  # traced once: the call below reuses it
    out = jitted(*args)  # a plain call: XLA inlines it
    if not _one_kernel_ok(eqns, ONE_KERNEL_PRIMITIVES | {"scan"}):
        return out
    from jax.experimental.xla_metadata import set_xla_metadata

    # on the call's results: the attributes go to the op that produces them (the call),
    # not to the ops inside it
    return set_xla_metadata(out, xla_cpu_small_call="true", inlineable="false")
