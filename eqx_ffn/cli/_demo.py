"""`eqx-ffn demo`: one of the lecture's examples end to end (train, summary, figures, model)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._common import Staging, check_out, summary_line
from ._sysid import tanks_demo


def _checked(result: tuple[Any, Any]) -> tuple[Any, Any]:
    """`fit`'s result, or `KeyboardInterrupt` when Ctrl-C stopped it."""
    if result[1].stop_reason == "interrupted":
        raise KeyboardInterrupt
    return result


def _sine(args: argparse.Namespace, stage: Staging) -> tuple[Any, list[str]]:
    """The 1-D examples (sine, sine2, minibatch): `(model, summary lines)`."""
    from ..io._lecture_data import lecture_params, sine_1d
    from ..model._ffn import FFN
    from ..model._summary import summary
    from ..plot._plot import plot_fit_1d, plot_loss
    from ..training._fit import fit

    hidden = (16, 16) if args.example == "sine2" else (16,)
    n = 20_000 if args.example == "minibatch" else 200
    data = sine_1d(n)
    model0 = FFN.from_params(lecture_params(hidden))
    print(data.description)
    print(summary(model0))
    if args.example == "minibatch":
        steps = args.steps or 1000
        model, hist = _checked(
            fit(model0, data.x, data.y, steps=steps, batch_size=32, key=_key(101),
                progress=args.progress)
        )  # fmt: skip
        _, full = _checked(fit(model0, data.x, data.y, steps=steps, progress=args.progress))
        lines = [summary_line("mini-batch (32)", hist), summary_line("full batch", full)]
        fig = plot_loss(
            {"mini-batch (32)": hist, "full batch (20,000)": full},
            title="Mini-batch (32) vs full batch, Adam 1e-2",
        )
        fig.savefig(stage.path("loss.png"), dpi=100)
    else:
        steps = args.steps or 2000
        model, hist = _checked(fit(model0, data.x, data.y, steps=steps, progress=args.progress))
        lines = [summary_line(f"Adam 1e-2, {hidden} hidden", hist)]
        plot_loss(hist, path=stage.path("loss.png"))
    plot_fit_1d(model, data.x, data.y, initial_model=model0, f=data.f, path=stage.path("fit.png"))
    return model, lines


def _key(seed: int) -> Any:
    import jax.random as jr

    return jr.key(seed)


def _two_inputs(args: argparse.Namespace, stage: Staging) -> tuple[Any, list[str]]:
    """The 2-D example: `(model, summary lines)`; residuals on the test set and surfaces."""
    import jax

    from ..io._lecture_data import sine_cosine_2d
    from ..model._ffn import FFN
    from ..model._summary import summary
    from ..plot._plot import plot_loss, plot_residuals, plot_surface_2d
    from ..training._fit import fit

    data = sine_cosine_2d()
    print(data.description)
    model0 = FFN(2, 1, (16, 8), key=_key(42))
    print(summary(model0))
    steps = args.steps or 5000
    model, hist = _checked(fit(model0, data.x, data.y, steps=steps, progress=args.progress))
    lines = [summary_line("Adam 1e-2, (16, 8) hidden", hist)]
    assert data.x_test is not None and data.y_test is not None
    test_mse = float(((jax.vmap(model)(data.x_test) - data.y_test) ** 2).mean())
    lines.append(f"test MSE {test_mse:.4g} (noise variance 0.01)")
    plot_loss(hist, path=stage.path("loss.png"))
    plot_residuals(model, data.x_test, data.y_test, path=stage.path("residuals.png"))
    plot_surface_2d(model, data.f, path=stage.path("surface.png"))
    return model, lines


def demo(args: argparse.Namespace) -> int:
    """Run `eqx-ffn demo`: train, print, write the figures and `model.eqx` to `--out`."""
    from ..io._model_file import save

    t0 = time.perf_counter()
    check_out(args.out)
    stage = Staging(args.out)
    try:
        run = {"2d": _two_inputs, "tanks": tanks_demo}.get(args.example, _sine)
        model, lines = run(args, stage)
        if model is not None:  # the tanks example saves its sysid model itself
            save(stage.path("model.eqx"), model)
        written = stage.commit()
    except BaseException:
        stage.abort()
        raise
    for line in lines:
        print(line)
    print("wrote " + ", ".join(str(p) for p in written))
    print(f"demo took {time.perf_counter() - t0:.1f} s")
    return 0
