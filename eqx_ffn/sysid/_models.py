"""The dynamical models: `NeuralStateSpace` and `NARX`, both state-space maps `step(x, u)`.

Both work on standardised signals inside (`model.scaler` maps physical units in and out) and
expose the same single-sample step `step(x, u) -> (x_next, y)`, `y` emitted before the update,
so one simulator, one fitting engine and one initial-state estimator serve both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import ArgumentTypeError, check_bool, check_int, check_number, unknown_name
from ..model._ffn import FFN
from ._experiment import Scaler

OUTPUTS = ("linear", "ffn")
"""Output maps of a `NeuralStateSpace`: `y = C x`, or an `FFN` of the state."""


def check_vector(value: Any, size: int, argument: str, where: str) -> Array:
    """A floating array of shape `(size,)` (traced values pass with their shapes checked)."""
    if not isinstance(value, jax.Array):
        value = jnp.asarray(value)
    if value.shape != (size,):
        raise ValueError(f"{where}: {argument} must have shape ({size},); got {value.shape}.")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise ArgumentTypeError(
            f"{where}: {argument} must be a floating-point array; got dtype {value.dtype}."
        )
    return value


def _scale_last_layer(net: FFN, factor: float) -> FFN:
    last = net.layers[-1]
    new = jax.tree.map(lambda a: a * factor, (last.weight, last.bias))
    return eqx.tree_at(lambda n: (n.layers[-1].weight, n.layers[-1].bias), net, new)


class NeuralStateSpace(eqx.Module):
    """A neural state-space model `x(k+1) = x(k) + f([x(k); u(k)])`, `y(k) = C x(k)`.

    With `linear=True`, `x(k+1) = x(k) + A [x(k); u(k)] + f([x(k); u(k)])`: a linear bypass `A`
    beside the network (deepSI's SUBNET networks, `MLP_res_net`, have one), so the model stays
    linear where `f` saturates, e.g. on inputs larger than the training records'.

    **Arguments:**

    - `n_u`, `n_x`, `n_y`: numbers of inputs, states and outputs.
    - `hidden_sizes`: hidden widths of the state network `f` (an `FFN`, tanh by default).
    - `key`: a `jax.random` key (keyword-only).
    - `residual`: `True` (default) for `x + f(...)`, `False` for `x(k+1) = f([x(k); u(k)])`.
    - `output`: `"linear"` (default: `y = C x`, no bias) or `"ffn"` (an `FFN` of the state with
      `output_hidden_sizes`).
    - `linear`: `False` (default) or `True` for the linear bypass `A [x; u]` (an `FFN` with no
      hidden layer and no bias, `model.bypass`, initialised at zero so that the model starts equal
      to the one without it; added after `f` in the state update, with `residual=False` too:
      `x(k+1) = f([x; u]) + A [x; u]`).
    - `activation`, `init`: as `FFN`'s; `f`'s last layer is scaled by `last_layer_scale`
      (default 1e-3, as the lecture initialises `W2, b2`) so that training starts near `x+ = x`.

    **Methods:** `step(x, u) -> (x_next, y)` on one sample in standardised units (the lecture's
    `f` and `g`, `y` computed from `x` before the update). `model.scaler` holds the training
    records' standardisation (set by `sysid.fit`); `sysid.simulate` works in physical units.
    """

    f: FFN
    g: FFN
    scaler: Scaler
    encoder: FFN | None
    bypass: FFN | None
    n_u: int = eqx.field(static=True)
    n_x: int = eqx.field(static=True)
    n_y: int = eqx.field(static=True)
    residual: bool = eqx.field(static=True)
    output: str = eqx.field(static=True)

    def __init__(
        self,
        n_u: int,
        n_x: int,
        n_y: int,
        hidden_sizes: Sequence[int] | int = (16,),
        *,
        key: PRNGKeyArray,
        residual: bool = True,
        output: str = "linear",
        output_hidden_sizes: Sequence[int] | int = (16,),
        activation: str | Callable = "tanh",
        init: str = "normal",
        last_layer_scale: float = 1e-3,
        linear: bool = False,
    ):
        self.n_u = check_int(n_u, "n_u")
        self.n_x = check_int(n_x, "n_x")
        self.n_y = check_int(n_y, "n_y")
        if output not in OUTPUTS:
            raise unknown_name("output", output, OUTPUTS)
        check_bool(residual, "residual")
        check_bool(linear, "linear")
        scale = check_number(last_layer_scale, "last_layer_scale", 0.0, closed=True)
        kf, kg = jr.split(key)
        f = FFN(n_x + n_u, n_x, hidden_sizes, activation=activation, init=init, key=kf)
        self.f = _scale_last_layer(f, scale) if scale != 1.0 else f
        if output == "linear":
            self.g = FFN(n_x, n_y, (), init=init, use_bias=False, key=kg)
        else:
            self.g = FFN(n_x, n_y, output_hidden_sizes, activation=activation, init=init, key=kg)
        self.residual, self.output = residual, output
        self.scaler = Scaler.identity(self.n_u, self.n_y, self.f.dtype)
        self.encoder = None
        self.bypass = None
        if linear:
            a = FFN(n_x + n_u, n_x, (), use_bias=False, dtype=self.f.dtype, key=kg)
            self.bypass = eqx.tree_at(
                lambda n: n.layers[0].weight, a, jnp.zeros_like(a.layers[0].weight)
            )

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, activation: str | Callable = "tanh"
    ) -> NeuralStateSpace:
        """The lecture's model from its parameters `{"W1", "b1", "W2", "b2", "C"}`.

        `x(k+1) = x(k) + W2 tanh(W1 [x(k); u(k)] + b1) + b2` (the state first), `y(k) = C x(k)`;
        the arrays are used as given, so the model computes exactly the lecture's `f` and `g`.
        """
        if not isinstance(params, Mapping) or "C" not in params:
            raise ArgumentTypeError(
                "params must be a dict {'W1', 'b1', 'W2', 'b2', 'C'}; got "
                f"{params if not isinstance(params, Mapping) else sorted(params)!r}."
            )
        f = FFN.from_params({k: v for k, v in params.items() if k != "C"}, activation=activation)
        g = FFN.from_params({"W1": params["C"]})
        n_x, n_y = g.in_size, g.out_size
        if f.out_size != n_x or f.in_size <= n_x:
            raise ValueError(
                f"params do not chain: C is {(n_y, n_x)}, so W1 must be (h, {n_x} + n_u) and the "
                f"last weight ({n_x}, h); got f from {f.in_size} to {f.out_size}."
            )
        self = object.__new__(cls)
        for name, value in dict(
            f=f,
            g=g,
            n_u=f.in_size - n_x,
            n_x=n_x,
            n_y=n_y,
            residual=True,
            output="linear",
            scaler=Scaler.identity(f.in_size - n_x, n_y, f.dtype),
            encoder=None,
            bypass=None,
        ).items():
            object.__setattr__(self, name, value)
        return self

    @property
    def linear(self) -> bool:
        """Whether the state update has the linear bypass `A [x; u]` (`model.bypass`)."""
        return self.bypass is not None

    @property
    def state_size(self) -> int:
        """The size of the state `x`."""
        return self.n_x

    @property
    def encoder_n_init(self) -> int:
        """The encoder's window (past samples it reads), 0 without an encoder."""
        if self.encoder is None:
            return 0
        return self.encoder.in_size // (self.n_u + self.n_y)

    def encode(self, u_past: Array, y_past: Array) -> Array:
        """The state at the sample after a window of `encoder_n_init` measured (standardised)
        inputs and outputs, `(n, n_u)` and `(n, n_y)`, from the encoder."""
        if self.encoder is None:
            raise ValueError("this model has no encoder (fit it with criterion='truncated').")
        return self.encoder(jnp.concatenate([u_past.reshape(-1), y_past.reshape(-1)]))

    def step(
        self, x: Float[Array, " n_x"], u: Float[Array, " n_u"]
    ) -> tuple[Float[Array, " n_x"], Float[Array, " n_y"]]:
        """One sample: `(x_next, y)` with `y = g(x)` (standardised units)."""
        x = check_vector(x, self.n_x, "x", "NeuralStateSpace.step")
        u = check_vector(u, self.n_u, "u", "NeuralStateSpace.step")
        z = jnp.concatenate([x, u])
        if not self.residual:
            x_next = self.f(z)
        else:  # x + W h + b, added in the lecture's order (x + W2 @ h) + b2
            f, h = self.f, z
            for layer in f.layers[:-1]:
                h = f.activation(layer(h))
            last = f.layers[-1]
            x_next = x + jnp.matmul(last.weight, h, precision=last.precision)
            if last.bias is not None:
                x_next = x_next + last.bias
        if self.bypass is not None:
            x_next = x_next + self.bypass(z)
        return x_next, self.g(x)

    __call__ = step


class NARX(eqx.Module):
    """A neural NARX model `y(k) = FFN(y(k-1..k-na), u(k-nk..k-nk-nb+1))`.

    **Arguments:**

    - `n_u`, `n_y`: numbers of inputs and outputs.
    - `na`, `nb`: output and input lags (each >= 1); `nk`: input delay (default 1; 0 lets
      `u(k)` act on `y(k)` at once).
    - `hidden_sizes`, `activation`, `init`: the network's, as `FFN`'s.
    - `key`: a `jax.random` key (keyword-only).

    Its state is the regressor memory `x = [y(k-1), ..., y(k-na), u(k-1), ..., u(k-nk-nb+1)]`
    (standardised), so `step(x, u) -> (x_next, y)` simulates it freely as a state-space model;
    `sysid.predict` gives one-step and k-step-ahead predictions from measured outputs.
    """

    net: FFN
    scaler: Scaler
    n_u: int = eqx.field(static=True)
    n_y: int = eqx.field(static=True)
    na: int = eqx.field(static=True)
    nb: int = eqx.field(static=True)
    nk: int = eqx.field(static=True)

    def __init__(
        self,
        n_u: int,
        n_y: int,
        na: int,
        nb: int,
        nk: int = 1,
        hidden_sizes: Sequence[int] | int = (16,),
        *,
        key: PRNGKeyArray,
        activation: str | Callable = "tanh",
        init: str = "glorot_normal",
    ):
        self.n_u = check_int(n_u, "n_u")
        self.n_y = check_int(n_y, "n_y")
        self.na = check_int(na, "na")
        self.nb = check_int(nb, "nb")
        self.nk = check_int(nk, "nk", 0)
        self.net = FFN(
            self.na * self.n_y + self.nb * self.n_u,
            self.n_y,
            hidden_sizes,
            activation=activation,
            init=init,
            key=key,
        )
        self.scaler = Scaler.identity(self.n_u, self.n_y, self.net.dtype)

    @property
    def lag(self) -> int:
        """The first sample whose regressor lies wholly inside a record: `max(na, nk+nb-1)`."""
        return max(self.na, self.nk + self.nb - 1)

    @property
    def n_x(self) -> int:
        """The state size `na * n_y + (nk + nb - 1) * n_u`."""
        return self.na * self.n_y + (self.nk + self.nb - 1) * self.n_u

    state_size = n_x

    def regressor(self, x: Array, u: Array) -> tuple[Array, Array]:
        """The network's input at the state `x` and input `u(k)`, and the inputs `u(k..)`."""
        ys = x[: self.na * self.n_y]
        past = x[self.na * self.n_y :]
        us = jnp.concatenate([u, past])  # u(k), u(k-1), ..., u(k-nk-nb+1)
        u_reg = us[self.nk * self.n_u : (self.nk + self.nb) * self.n_u]
        return jnp.concatenate([ys, u_reg]), us

    def step(
        self, x: Float[Array, " n_x"], u: Float[Array, " n_u"]
    ) -> tuple[Float[Array, " n_x"], Float[Array, " n_y"]]:
        """One sample: `(x_next, y(k))`, `y(k)` fed back into the memory (standardised units)."""
        x = check_vector(x, self.n_x, "x", "NARX.step")
        u = check_vector(u, self.n_u, "u", "NARX.step")
        phi, us = self.regressor(x, u)
        y = self.net(phi)
        ys = jnp.concatenate([y, x[: (self.na - 1) * self.n_y]])
        keep = (self.nk + self.nb - 1) * self.n_u
        return jnp.concatenate([ys, us[:keep]]), y

    __call__ = step

    def state_at(self, u_n: Array, y_n: Array, k: int | Array) -> Array:
        """The memory at sample `k >= lag` built from measured (standardised) signals."""
        ys = jax.lax.dynamic_slice_in_dim(y_n, k - self.na, self.na)[::-1].reshape(-1)
        m = self.nk + self.nb - 1
        if m == 0:
            return ys
        us = jax.lax.dynamic_slice_in_dim(u_n, k - m, m)[::-1].reshape(-1)
        return jnp.concatenate([ys, us])


def with_encoder(
    model: NeuralStateSpace, n_init: int, hidden_sizes: Sequence[int] | int, *, key: PRNGKeyArray
) -> NeuralStateSpace:
    """`model` with a new encoder: an `FFN` (tanh) from the `n_init` past standardised inputs
    and outputs (`[u(s-n..s-1); y(s-n..s-1)]`, flattened) to the state `x(s)`."""
    n_init = check_int(n_init, "encoder n_init")
    enc = FFN(
        n_init * (model.n_u + model.n_y),
        model.n_x,
        hidden_sizes,
        activation="tanh",
        init="glorot_normal",
        dtype=model.f.dtype,
        key=key,
    )
    return eqx.tree_at(lambda m: m.encoder, model, enc, is_leaf=lambda x: x is None)


MODELS = {"NeuralStateSpace": NeuralStateSpace, "NARX": NARX}
"""The model kinds `sysid` fits, simulates and saves."""


def check_model(model: Any, argument: str = "model") -> NeuralStateSpace | NARX:
    """A `NeuralStateSpace` or `NARX`."""
    if not isinstance(model, (NeuralStateSpace, NARX)):
        raise ArgumentTypeError(
            f"{argument} must be a sysid.NeuralStateSpace or sysid.NARX; got "
            f"{type(model).__name__}."
        )
    return model
