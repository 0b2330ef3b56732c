"""What the cases measure eqx_ffn against: the lean bare scan (the floor), the lecture's own
loop, an `eqx.nn.MLP` hand loop, PyTorch, Flax NNX, scikit-learn and SciPy.

Each builder returns `train(steps) -> (result, losses)` (a fresh run from the same initial
parameters each call) or, for the bare scan, `call() -> (params, losses)`. The lecture runners'
`result` is a parameter dict in the lecture's layout (`W1 (16, 1)`, `b1`, `W2 (1, 16)`, `b2`).
Only NumPy is imported at module level: every peer library is optional or heavy and is imported
where it is used, so the scikit-learn worker process (`benchmarks._worker`) pays for
scikit-learn alone.
"""

from __future__ import annotations

import importlib
import itertools
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Train = Callable[[int], tuple[Any, Any]]


def optional(module: str) -> Any | None:
    """Import an optional peer library, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(module)
    except Exception:
        return None


# -- the floor: a lean bare scan -----------------------------------------------------------------


def bare_scan(
    model: Any,
    x: Any,
    y: Any,
    steps: int,
    tx: Any,
    *,
    loss: str = "mse",
    batch: int | None = None,
    sampling: str = "replacement",
    compute_dtype: Any = None,
    unroll: int = 1,
    lbfgs: bool = False,
    share: Any = None,
) -> Callable[[], Any]:
    """`call() -> (params, losses)`: `steps` steps of the optax transformation `tx` on `model`
    in ONE `jax.jit(lax.scan)` and nothing else: no guards, padding, chunks or validation.

    The optimiser state is built inside the program; the data are arguments. `loss`: `"mse"` or
    `"ce"` (softmax cross-entropy on integer labels). `batch=None`: full batch; else `batch`
    rows a step, drawn with replacement by `jax.random.randint` (`sampling="epoch"`: a
    permutation drawn on the device each epoch and sliced; `steps` then a multiple of
    `N // batch`). `lbfgs=True` for `optax.lbfgs()`: its line search gets the value and gradient.
    `compute_dtype`: parameters and inputs cast inside the loss, the loss reduced in float32.
    `share`: a hashable name of `tx` (`("adam", 1e-2)`) for a quick run: scans of the same
    settings and model structure then reuse one compiled program across cases (None: a new one).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import optax

    params, static = eqx.partition(model, eqx.is_inexact_array)
    memo = share and (share, static, steps, loss, batch, sampling, compute_dtype, unroll, lbfgs)
    if memo in _SCANS:
        hit, key = _SCANS[memo], jr.key(1)
        return lambda: hit(params, x, y, key)

    def loss_fn(p, xb, yb):
        if compute_dtype is not None:
            p = jax.tree.map(lambda a: a.astype(compute_dtype), p)
            xb = xb.astype(compute_dtype)
        out = jax.vmap(eqx.combine(p, static))(xb).astype(jnp.float32)
        if loss == "ce":
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, yb))
        return jnp.mean((out - yb) ** 2)

    def update(carry, xb, yb):
        p, s = carry
        if lbfgs:
            value, g = optax.value_and_grad_from_state(lambda q: loss_fn(q, xb, yb))(p, state=s)
            u, s = tx.update(g, s, p, value=value, grad=g, value_fn=lambda q: loss_fn(q, xb, yb))
        else:
            value, g = jax.value_and_grad(loss_fn)(p, xb, yb)
            u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), value

    @jax.jit
    def run(p, x, y, key):
        n = x.shape[0]

        def step(c, t):
            if batch is None:
                return update(c, x, y)
            idx = jr.randint(jr.fold_in(key, t), (batch,), 0, n)
            return update(c, x[idx], y[idx])

        def epoch(c, e):
            perm = jr.permutation(jr.fold_in(key, e), n)

            def step(c, i):
                idx = jax.lax.dynamic_slice_in_dim(perm, i * batch, batch)
                return update(c, x[idx], y[idx])

            return jax.lax.scan(step, c, jnp.arange(n // batch), unroll=unroll)

        if batch is not None and sampling == "epoch":
            (p, _), losses = jax.lax.scan(epoch, (p, tx.init(p)), jnp.arange(steps // (n // batch)))
            return p, losses.ravel()
        (p, _), losses = jax.lax.scan(step, (p, tx.init(p)), jnp.arange(steps), unroll=unroll)
        return p, losses

    key = jr.key(1)
    if memo:
        _SCANS[memo] = run
    return lambda: run(params, x, y, key)


_SCANS: dict[Any, Callable] = {}  # bare_scan's programs by `share` and settings


# -- the lecture's problem in Python loops -------------------------------------------------------


def lecture_loop(x: Any, y: Any, params: dict[str, Any], lr: float) -> Train:
    """The lecture's own loop: `jit(value_and_grad)` of the dict-params loss, optax's update
    and apply in Python, as taught."""
    import jax
    import jax.numpy as jnp
    import optax

    def nn(p, x):
        return p["W2"] @ jnp.tanh(p["W1"] @ x + p["b1"]) + p["b2"]

    def loss_fn(p, y, x):
        return jnp.mean((y - jax.vmap(nn, in_axes=(None, 0))(p, x)) ** 2)

    loss_grad_fn = jax.jit(jax.value_and_grad(loss_fn, 0))
    optimizer = optax.adam(learning_rate=lr)

    def train(steps):
        p, opt_state, losses = params, optimizer.init(params), []
        for _ in range(steps):
            loss_val, grads = loss_grad_fn(p, y, x)
            updates, opt_state = optimizer.update(grads, opt_state)
            p = optax.apply_updates(p, updates)
            losses.append(loss_val)
        return p, losses

    return train


def python_loop(step: Callable, model: Any, optimizer: Any, x: Any, y: Any) -> Train:
    """`train(steps)`: an Equinox-style loop, one jitted `step(model, opt_state, x, y) ->
    (model, opt_state, loss)` a step from Python; the result is the trained model."""
    import equinox as eqx

    def train(steps):
        m, opt_state, losses = model, optimizer.init(eqx.filter(model, eqx.is_inexact_array)), []
        for _ in range(steps):
            m, opt_state, loss = step(m, opt_state, x, y)
            losses.append(loss)
        return m, losses

    return train


def equinox_mlp_loop(x: Any, y: Any, params: dict[str, Any], lr: float) -> Train:
    """`eqx.nn.MLP` at the lecture's parameters and a hand-written `eqx.filter_jit` step."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import optax

    mlp = eqx.nn.MLP(1, 1, 16, 1, activation=jnp.tanh, key=jr.key(0))
    mlp = eqx.tree_at(
        lambda m: (m.layers[0].weight, m.layers[0].bias, m.layers[1].weight, m.layers[1].bias),
        mlp,
        (params["W1"], params["b1"], params["W2"], params["b2"]),
    )
    optimizer = optax.adam(lr)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        def loss_fn(model):
            return jnp.mean((y - jax.vmap(model)(x)) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    train = python_loop(step, mlp, optimizer, x, y)

    def as_params(steps):
        m, losses = train(steps)
        (a, b) = m.layers
        return {"W1": a.weight, "b1": a.bias, "W2": b.weight, "b2": b.bias}, losses

    return as_params


def flax_nnx_lecture(x: Any, y: Any, params: dict[str, Any], lr: float) -> Train | None:
    """Two `nnx.Linear` layers, `nnx.Optimizer` and an `nnx.jit` step in a Python loop; None
    when Flax is not installed."""
    nnx = optional("flax.nnx")
    if nnx is None:
        return None
    import jax.numpy as jnp
    import optax

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(1, 16, rngs=rngs)
            self.l2 = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    @nnx.jit
    def train_step(net, opt, x, y):
        loss, grads = nnx.value_and_grad(lambda net: jnp.mean((y - net(x)) ** 2))(net)
        opt.update(net, grads)
        return loss

    def train(steps):
        net = Net(nnx.Rngs(0))
        net.l1.kernel.value, net.l1.bias.value = jnp.asarray(params["W1"]).T, params["b1"]
        net.l2.kernel.value, net.l2.bias.value = jnp.asarray(params["W2"]).T, params["b2"]
        opt = nnx.Optimizer(net, optax.adam(lr), wrt=nnx.Param)
        losses = [train_step(net, opt, x, y) for _ in range(steps)]
        l1, l2 = net.l1, net.l2
        return {"W1": l1.kernel.value.T, "b1": l1.bias.value, "W2": l2.kernel.value.T,
                "b2": l2.bias.value}, losses  # fmt: skip

    return train


# -- PyTorch -----------------------------------------------------------------------------------


def torch_sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def torch_mlp(
    sizes: Sequence[int],
    x: Any,
    y: Any,
    *,
    activation: str = "tanh",
    loss: str = "mse",
    lr: float = 1e-3,
    batch: int | None = None,
    optimizer: str = "adam",
    init: list[tuple[Any, Any]] | None = None,
    bf16: bool = False,
    threads: int | None = None,
    reuse: bool = False,
) -> tuple[Train, dict[str, Any]] | None:
    """`(train, info)` for an eager `nn.Sequential` MLP, or None when PyTorch is not installed.

    `train(steps) -> (layers as [(W, b)] NumPy, losses)` builds the net (at `init`, else
    `torch.manual_seed(0)`; `reuse`: once, later calls train on), runs `steps` steps and waits
    for the device. On CUDA when PyTorch
    sees a GPU (TF32 matmuls unless `bf16`: autocast to bfloat16, the loss in float32; fused
    Adam), else on the CPU with `threads` threads (default: the CPU count) whose OpenMP workers
    sleep when idle (`OMP_WAIT_POLICY=PASSIVE` unless set: on a shared 2-core machine spinning
    workers made a lecture-size step 20-50x slower, 20-57 ms against 0.5-0.7 ms). Mini-batches of
    `batch` rows drawn with replacement by `torch.randint`. `optimizer="lbfgs"`:
    `LBFGS(max_iter=1, history_size=10, line_search_fn="strong_wolfe")` stepped once a step.
    """
    import os

    preset = "OMP_WAIT_POLICY" in os.environ
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read as torch is imported
    torch = optional("torch")
    if not preset:
        os.environ.pop("OMP_WAIT_POLICY")  # not inherited by the whole-process workers
    if torch is None:
        return None

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":
        torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    xt = torch.from_numpy(np.array(x, np.float32)).to(dev)
    yt = torch.from_numpy(np.array(y, np.int64 if loss == "ce" else np.float32)).to(dev)
    act = torch.nn.ReLU if activation == "relu" else torch.nn.Tanh
    lf = torch.nn.CrossEntropyLoss() if loss == "ce" else torch.nn.MSELoss()
    n = xt.shape[0]

    def build():
        torch.manual_seed(0)
        layers: list[Any] = []
        for a, b in itertools.pairwise(sizes):
            layers += [torch.nn.Linear(a, b), act()]
        net = torch.nn.Sequential(*layers[:-1]).to(dev)
        with torch.no_grad():
            for lin, (w, b) in zip(net[::2], init or [], strict=False):
                lin.weight.copy_(torch.tensor(np.asarray(w)))
                lin.bias.copy_(torch.tensor(np.asarray(b)))
        return net

    def build_with_optimizer():
        net = build()
        if optimizer == "adam":
            return net, torch.optim.Adam(net.parameters(), lr=lr, fused=dev.type == "cuda")
        return net, torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=1, max_eval=25,
                                      history_size=10, tolerance_grad=0.0, tolerance_change=0.0,
                                      line_search_fn="strong_wolfe")  # fmt: skip

    built: list[Any] = []

    def train(steps):
        if dev.type == "cuda":  # TF32 unless bf16, set for each call (another runner may differ)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not bf16
        if not (reuse and built):
            built[:] = build_with_optimizer()
        net, opt = built
        losses = []
        for _ in range(steps):
            if batch is None:
                xb, yb = xt, yt
            else:
                idx = torch.randint(0, n, (batch,), device=dev)
                xb, yb = xt[idx], yt[idx]

            def closure(xb=xb, yb=yb):
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                    out = net(xb)
                value = lf(out.float(), yb)
                value.backward()
                return value

            if optimizer == "adam":
                value = closure()
                opt.step()
            else:
                value = opt.step(closure)
            losses.append(value.detach())
        torch_sync(torch, dev)
        layers = [
            (m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy()) for m in net[::2]
        ]
        return layers, torch.stack(losses).float().cpu().numpy()

    info = {"device": dev.type, "threads": torch.get_num_threads(), "version": torch.__version__}
    return train, info


# -- scikit-learn: MLPRegressor at the lecture's initial parameters ------------------------------


def sklearn_lecture(solver: str, params: dict[str, Any], x: Any, y: Any, max_iter: int) -> Any:
    """`MLPRegressor(hidden_layer_sizes=(16,), activation="tanh")` set to the lecture's init.

    `warm_start=True` continues from the `coefs_`/`intercepts_` set here; no L2 (`alpha=0`).
    Adam: learning rate 1e-2, full batch (an epoch is a step), no early stop: exactly
    `max_iter` steps. L-BFGS: at most `max_iter` iterations, `tol=0` (scipy's `ftol` still
    stops it once the loss stalls).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    est = MLPRegressor(
        hidden_layer_sizes=(int(np.shape(params["W1"])[0]),), activation="tanh", solver=solver,
        alpha=0.0, batch_size=x.shape[0], learning_rate_init=1e-2, max_iter=1, shuffle=False,
        tol=0.0, n_iter_no_change=10**9, random_state=0, warm_start=True,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, y.ravel())  # creates coefs_ and the rest; overwritten just below
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    est.coefs_ = [p["W1"].T.copy(), p["W2"].T.copy()]
    est.intercepts_ = [p["b1"].copy(), p["b2"].copy()]
    est.loss_curve_ = []
    est.max_iter = int(max_iter)
    return est


def sklearn_train(est: Any, x: Any, y: Any) -> tuple[float, float, int, Any]:
    """Fit; `(seconds, final MSE, iterations, per-epoch MSE curve or None)` (scikit-learn's loss
    is half the MSE)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(x, y.ravel())
        seconds = time.perf_counter() - t0
    mse = float(np.mean((np.asarray(y, np.float64) - est.predict(x).reshape(y.shape)) ** 2))
    curve = getattr(est, "loss_curve_", None)
    return seconds, mse, int(est.n_iter_), 2.0 * np.asarray(curve) if curve else None


def sklearn_lbfgs_iterations_to(
    params: dict[str, Any], x: Any, y: Any, threshold: float, cap: int
) -> tuple[int | None, int, float]:
    """`(fewest L-BFGS iterations that reach MSE <= threshold or None, iterations and MSE of a
    run of at most cap)`: scikit-learn records no per-iteration loss for L-BFGS, so this
    refits, bisecting `max_iter` below the iterations the capped run took."""

    def mse_after(m: int) -> tuple[float, int]:
        _, mse, iters, _ = sklearn_train(sklearn_lecture("lbfgs", params, x, y, m), x, y)
        return mse, iters

    mse, iters = mse_after(cap)
    if mse > threshold:
        return None, iters, mse
    lo, hi = 0, iters
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if mse_after(mid)[0] <= threshold else (mid, hi)
    return hi, iters, mse


# -- SciPy: MINPACK's Levenberg-Marquardt on the lecture's residuals -----------------------------


class _Reached(Exception):
    pass


def scipy_lm(
    x: Any, y: Any, params: dict[str, Any], budget: int, target: float, max_nfev: int | None = None
) -> Callable | None:
    """`solve(stop_at_target) -> (result, best MSE within budget Jacobians)`:
    `scipy.optimize.least_squares(method="lm")` (MINPACK's lmder, float64, analytic Jacobian,
    default tolerances) on the lecture network's residuals `(pred - y) / sqrt(N)`. With
    `stop_at_target`, the solve stops at the first function value with MSE <= `target` and
    `result` is the Jacobians evaluated by then; `max_nfev` caps the function evaluations (None:
    SciPy's default). None when SciPy is not installed."""
    opt = optional("scipy.optimize")
    if opt is None:
        return None
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)[:, 0]
    root, h_of = np.sqrt(x.shape[0]), lambda p: np.tanh(x * p[0:16] + p[16:32])
    p0 = np.concatenate(
        [np.ravel(np.asarray(params[k], np.float64)) for k in ("W1", "b1", "W2", "b2")]
    )

    def fun(p):
        return (h_of(p) @ p[32:48] + p[48] - y) / root

    def jac(p):
        h = h_of(p)
        dh = (1 - h**2) * p[32:48]  # d pred / d b1
        return np.hstack([dh * x, dh, h, np.ones((x.shape[0], 1))]) / root

    def solve(stop_at_target: bool):
        njev, best = [0], [np.inf]

        def counted_jac(p):
            njev[0] += 1
            return jac(p)

        def checked_fun(p):
            r = fun(p)
            cost = float(r @ r)
            if njev[0] <= budget:
                best[0] = min(best[0], cost)
            if stop_at_target and cost <= target:
                raise _Reached(njev[0])
            return r

        try:
            return opt.least_squares(checked_fun, p0, jac=counted_jac, method="lm",
                                     max_nfev=max_nfev), best[0]  # fmt: skip
        except _Reached as e:
            return e.args[0], best[0]

    return solve
