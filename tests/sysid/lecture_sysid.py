"""A plain-JAX transcription of the next lecture (docs/REFERENCE_SYSID.md §1), independent of the
package: the reference that the sysid tests and the recipe compare the library against."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

DATA = Path(__file__).resolve().parents[2] / "eqx_ffn" / "sysid" / "data" / "cascaded_tanks.csv"


def load_tanks():
    with open(DATA) as f:
        rows = list(csv.reader(f))
    head = rows[0]
    cols = {name: [] for name in ("uEst", "uVal", "yEst", "yVal")}
    for row in rows[1:]:
        if not row or not row[0].strip():
            continue
        for name in cols:
            cols[name].append(float(row[head.index(name)]))
    arr = {k: jnp.asarray(np.array(v, dtype=np.float32)).reshape(-1, 1) for k, v in cols.items()}
    return arr["uEst"], arr["yEst"], arr["uVal"], arr["yVal"]


def init_params():
    keys = jr.split(jr.key(17), 5)
    return {
        "W1": jr.normal(keys[0], (16, 3)),
        "b1": jr.normal(keys[1], (16,)),
        "W2": jr.normal(keys[2], (2, 16)) * 1e-3,
        "b2": jr.normal(keys[3], (2,)) * 1e-3,
        "C": jr.normal(keys[4], (1, 2)),
    }


def f(p, x, u):
    z = jnp.concatenate([x, u])
    return x + p["W2"] @ jnp.tanh(p["W1"] @ z + p["b1"]) + p["b2"]


def g(p, x):
    return p["C"] @ x


def simulate(p, x0, u):
    def step(x, uk):
        return f(p, x, uk), g(p, x)

    _, y = jax.lax.scan(step, x0, u)
    return y


def scaled_data():
    u, y, u_test, y_test = load_tanks()
    um, us, ym, ys = jnp.mean(u), jnp.std(u), jnp.mean(y), jnp.std(y)
    return (u - um) / us, (y - ym) / ys, (u_test - um) / us, y_test, (ym, ys)


def loss(opt_vars, u, y):
    p, x0 = opt_vars
    return jnp.mean((y - simulate(p, x0, u)) ** 2)


def train_python_loop(steps, lr=1e-3, *, jit_update=False):
    """The lecture's loop: a Python for-loop around jit(value_and_grad(loss)); the optax update
    and apply_updates run eagerly, as the lecture writes them (`jit_update=True`: the whole step
    in one jit)."""
    u, y, *_ = scaled_data()
    opt_vars = (init_params(), jnp.zeros(2))
    opt = optax.adam(lr)
    state = opt.init(opt_vars)
    value_and_grad = jax.jit(jax.value_and_grad(loss))

    def update(opt_vars, state, grads):
        updates, state = opt.update(grads, state)
        return optax.apply_updates(opt_vars, updates), state

    update = jax.jit(update) if jit_update else update
    losses = []
    for _ in range(steps):
        value, grads = value_and_grad(opt_vars, u, y)
        opt_vars, state = update(opt_vars, state, grads)
        losses.append(value)
    return opt_vars, np.asarray(jnp.stack(losses))


@functools.lru_cache(maxsize=8)
def _bare_scan(steps, lr):
    """The compiled scan of `steps` Adam steps (one per `(steps, lr)`: a second call with the
    same settings runs warm, as a timing needs)."""
    opt = optax.adam(lr)

    @jax.jit
    def run(opt_vars, u, y):
        def body(carry, _):
            opt_vars, state = carry
            value, grads = jax.value_and_grad(loss)(opt_vars, u, y)
            updates, state = opt.update(grads, state)
            return (optax.apply_updates(opt_vars, updates), state), value

        (opt_vars, _), losses = jax.lax.scan(body, (opt_vars, opt.init(opt_vars)), None, steps)
        return opt_vars, losses

    return run


def train_bare_scan(steps, lr=1e-3):
    """The same steps as one jit(lax.scan) over the steps (the data passed as arguments)."""
    u, y, *_ = scaled_data()
    opt_vars, losses = _bare_scan(steps, lr)((init_params(), jnp.zeros(2)), u, y)
    return opt_vars, np.asarray(losses)


def lecture_test_rmse(opt_vars):
    """The lecture's figure of merit: test input simulated from the learned x0, in volts."""
    _, _, u_test, y_test, (ym, ys) = scaled_data()
    p, x0 = opt_vars
    y_sim = simulate(p, x0, u_test) * ys + ym
    return float(jnp.sqrt(jnp.mean((y_test - y_sim) ** 2)))
