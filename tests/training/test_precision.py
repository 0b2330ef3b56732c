"""Mixed precision (compute_dtype), low-precision models and inputs, matmul precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import eqx_ffn
from eqx_ffn import FFN, fit


def test_bfloat16_compute_trains_the_lecture_problem(lecture1):
    x, y, params = lecture1
    model = FFN.from_params(params)
    out, h = fit(model, x, y, steps=2000, compute_dtype=jnp.bfloat16, progress=False)
    assert h.stop_reason == "completed"
    assert out.layers[0].weight.dtype == jnp.float32  # float32 master weights
    assert h.loss.dtype == np.float32
    mse = float(jnp.mean((jax.vmap(out)(x) - y) ** 2))
    assert mse < 2e-2 and h.final_loss < 2e-2
    # the forward pass really ran in bfloat16: the first loss differs from float32's in the
    # digits bfloat16 cannot hold, and agrees to bfloat16's precision
    assert h.loss[0] != pytest.approx(8.191615, rel=1e-6)
    assert h.loss[0] == pytest.approx(8.191615, rel=2e-2)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_inputs_are_accepted(lecture1, dtype):
    x, y, params = lecture1
    model = FFN.from_params(params)
    _, h = fit(model, x.astype(dtype), y.astype(dtype), steps=50, progress=False)
    _, ref = fit(
        model, x.astype(dtype).astype(jnp.float32), y.astype(dtype), steps=50, progress=False
    )
    np.testing.assert_array_equal(h.loss, ref.loss)  # the data as given, cast exactly
    assert eqx_ffn.predict(model, np.asarray(x.astype(dtype))).shape == (200, 1)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_a_bfloat16_model_trains_with_every_named_optimizer(lecture1, optimizer):
    x, y, _ = lecture1
    model = FFN(1, 1, (16,), init="glorot_normal", dtype=jnp.bfloat16, key=jr.key(0))
    out, h = fit(model, x, y, optimizer=optimizer, learning_rate=1e-2, steps=300, progress=False)
    assert h.stop_reason == "completed" and np.all(np.isfinite(h.loss))
    assert out.layers[0].weight.dtype == jnp.bfloat16  # returned in its own dtype
    assert h.loss[-1] < h.loss[0]


def test_matmul_precision_is_part_of_the_program(lecture1, program_configs):
    x, y, params = lecture1
    model = FFN.from_params(params)
    seen = program_configs
    kw = dict(steps=5, progress=False)
    with jax.default_matmul_precision(None):  # JAX's own default (the suite asks for highest)
        fit(model, x, y, precision="highest", **kw)
        fit(model, x, y, precision="default", **kw)
        with jax.default_matmul_precision("highest"):
            fit(model, x, y, **kw)
        fit(model, x, y, **kw)
    highest, default, context, plain = seen
    assert highest != default and highest.precision == "highest"
    assert context == highest  # the context's precision, not the default program
    assert plain != highest and plain.precision is None
    with pytest.raises(ValueError, match="Unknown precision 'fast'"):
        fit(model, x, y, precision="fast", **kw)


def test_from_params_with_highest_precision_gives_the_lecture_figures(lecture2, batched):
    x, y, params = lecture2
    model = FFN.from_params(params, precision="highest")
    with jax.default_matmul_precision("highest"):  # the lecture's network, written out
        ref = jnp.mean((y - batched(params, x)) ** 2)
    with jax.default_matmul_precision("bfloat16"):  # a low default must not leak in
        mse = jnp.mean((y - jax.vmap(model)(x)) ** 2)
    np.testing.assert_allclose(mse, ref, rtol=1e-6)  # float32 rounding, same process
    # the lecture's printed figure: 1e-5 leaves room for the CPU's rounding (XLA's reduction
    # order and tanh differ between x86-64 CPUs by a few float32 ulps)
    np.testing.assert_allclose(mse, 12.46754, rtol=1e-5)


def test_bad_compute_dtype(lecture1):
    x, y, params = lecture1
    model = FFN.from_params(params)
    with pytest.raises(ValueError, match="compute_dtype must be a floating dtype"):
        fit(model, x, y, compute_dtype=jnp.int32, steps=1)
    with pytest.raises(TypeError, match="compute_dtype must be a floating dtype"):
        fit(model, x, y, compute_dtype="half-ish", steps=1)
