"""The `eqx-ffn` command: `demo`, `fit`, `predict`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXAMPLES = ("sine", "sine2", "minibatch", "2d")


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    if text.strip() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 16 or 16,8, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
    return sizes


def _columns(text: str) -> list[str | int]:
    out: list[str | int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError(f"empty column name in {text!r}")
        out.append(int(part) if part.lstrip("-").isdigit() else part)
    return out


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from ._activations import ACTIVATIONS
    from ._init import INITS

    parser = argparse.ArgumentParser(
        prog="eqx-ffn",
        description="Feedforward neural networks on JAX and Equinox: run the lecture's examples, "
        "fit a network to a CSV table, predict with a saved model.",
    )
    parser.add_argument("--version", action="version", version=f"eqx_ffn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use the persistent compilation cache (default: on, so a second run "
        "skips compiling)",
    )
    common.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run one of the lecture's examples end to end",
        description="Run one of the lecture's examples: train, print a summary, write the "
        "figures (PNG) and the trained model to --out.",
    )
    demo.add_argument(
        "--example",
        choices=EXAMPLES,
        default="sine",
        help="sine: the 1-D problem with the lecture's settings (default); sine2: two hidden "
        "layers; minibatch: 20,000 points, batches of 32, against full batch; 2d: the 2-D "
        "example with test-set residuals and surfaces",
    )
    demo.add_argument("--out", default="eqx_ffn_out", help="output folder (default eqx_ffn_out)")
    demo.add_argument("--steps", type=_positive_int, help="override the example's step count")

    fit = sub.add_parser(
        "fit",
        parents=[common],
        help="fit a network to a CSV (or NPZ) table",
        description="Fit a feedforward network to columns of a table. Writes model.eqx, "
        "loss.png, parity.png, residuals.png and metrics.json (train/test MSE and R^2) to --out.",
    )
    fit.add_argument("data", help="CSV file with a header row, or an .npz archive")
    fit.add_argument(
        "--x-cols",
        type=_columns,
        help="input columns, comma separated (default: all but the outputs)",
    )
    fit.add_argument("--y-cols", type=_columns, help="output columns (default: the last column)")
    fit.add_argument(
        "--hidden", type=_sizes, default=(16,), help="hidden widths, e.g. 16,16 (default 16)"
    )
    fit.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh")
    fit.add_argument("--init", choices=INITS, default="glorot_normal")
    fit.add_argument(
        "--optimizer", choices=("adam", "adamw", "sgd", "rmsprop", "lbfgs"), default="adam"
    )
    fit.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="learning rate (default 1e-2; L-BFGS uses its line search)",
    )
    fit.add_argument("--steps", type=_positive_int, default=2000)
    fit.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="mini-batch size (default: full batch)",
    )
    fit.add_argument(
        "--standardize",
        action="store_true",
        help="standardise inputs and outputs with training-set statistics (stored in the model)",
    )
    fit.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        help="share of rows held out for testing (default 0.2)",
    )
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--out", required=True, help="output folder")

    predict = sub.add_parser(
        "predict",
        help="predict with a saved model",
        description="Predict with a model saved by `eqx-ffn fit` (or eqx_ffn.save). The input "
        "columns default to those the model was fitted on.",
    )
    predict.add_argument("model", help="model file (model.eqx)")
    predict.add_argument("data", help="CSV file with a header row, or an .npz archive")
    predict.add_argument("--x-cols", type=_columns, help="input columns (default: the model's)")
    predict.add_argument("--out", default=None, help="CSV to write (default: standard output)")
    return parser


def _setup(args: argparse.Namespace) -> None:
    from ._compilation_cache import enable_compilation_cache

    if not getattr(args, "no_cache", True):
        enable_compilation_cache()


class _Staging:
    """Write outputs into a temporary folder; move them into place only when all succeeded."""

    def __init__(self, out: str):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} exists and is not a folder")
        parent = self.out.parent if str(self.out.parent) else Path(".")
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=parent))
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        self.names.append(name)
        return self.tmp / name

    def commit(self) -> list[Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        done = []
        for name in self.names:
            os.replace(self.tmp / name, self.out / name)
            done.append(self.out / name)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return done

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _summary_line(label: str, history: Any) -> str:
    rate = history.steps / history.run_time if history.run_time > 0 else float("inf")
    return (
        f"{label}: {history.steps} steps, final training MSE {history.final_loss:.4g}, "
        f"{rate:,.0f} steps/s, compile {history.compile_time:.2f} s, "
        f"total {history.wall_time:.2f} s ({history.stop_reason})"
    )


def _demo(args: argparse.Namespace) -> int:
    import jax
    import jax.random as jr

    from ._datasets import lecture_params, sine_1d, sine_cosine_2d
    from ._ffn import FFN
    from ._fit import fit
    from ._io import save
    from ._plot import plot_fit_1d, plot_loss, plot_residuals, plot_surface_2d
    from ._summary import summary

    stage = _Staging(args.out)
    try:
        lines = []
        if args.example in ("sine", "sine2", "minibatch"):
            hidden = (16, 16) if args.example == "sine2" else (16,)
            n = 20_000 if args.example == "minibatch" else 200
            data = sine_1d(n)
            model0 = FFN.from_params(lecture_params(hidden))
            print(data.description)
            print(summary(model0))
            if args.example == "minibatch":
                steps = args.steps or 1000
                model, hist = fit(
                    model0,
                    data.x,
                    data.y,
                    steps=steps,
                    batch_size=32,
                    key=jr.key(101),
                    progress=args.progress,
                )
                _, full = fit(model0, data.x, data.y, steps=steps, progress=args.progress)
                lines.append(_summary_line("mini-batch (32)", hist))
                lines.append(_summary_line("full batch", full))
                fig = plot_loss(hist, title="Mini-batch (32) vs full batch, Adam 1e-2")
                ax = fig.axes[0]
                ax.lines[0].set_label("mini-batch (32)")
                ax.plot(range(1, len(full.loss) + 1), full.loss, label="full batch (20,000)")
                ax.legend()
                fig.savefig(stage.path("loss.png"), dpi=100)
            else:
                steps = args.steps or 2000
                model, hist = fit(model0, data.x, data.y, steps=steps, progress=args.progress)
                lines.append(_summary_line(f"Adam 1e-2, {hidden} hidden", hist))
                plot_loss(hist, path=stage.path("loss.png"))
            plot_fit_1d(
                model, data.x, data.y, initial_model=model0, f=data.f, path=stage.path("fit.png")
            )
        else:
            data = sine_cosine_2d()
            print(data.description)
            model0 = FFN(2, 1, (16, 8), key=jr.key(42))
            print(summary(model0))
            steps = args.steps or 5000
            model, hist = fit(model0, data.x, data.y, steps=steps, progress=args.progress)
            lines.append(_summary_line("Adam 1e-2, (16, 8) hidden", hist))
            assert data.x_test is not None and data.y_test is not None
            test_mse = float(((jax.vmap(model)(data.x_test) - data.y_test) ** 2).mean())
            lines.append(f"test MSE {test_mse:.4g} (noise variance 0.01)")
            plot_loss(hist, path=stage.path("loss.png"))
            plot_residuals(model, data.x_test, data.y_test, path=stage.path("residuals.png"))
            plot_surface_2d(model, data.f, path=stage.path("surface.png"))
        save(stage.path("model.eqx"), model)
        written = stage.commit()
    except BaseException:
        stage.abort()
        raise
    for line in lines:
        print(line)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _r2(y: Any, pred: Any) -> float:
    import numpy as np

    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)
    return float(np.nanmean(r2)) if np.any(np.isfinite(r2)) else float("nan")


def _fit(args: argparse.Namespace) -> int:
    import jax.random as jr
    import numpy as np

    from ._datasets import train_test_split
    from ._tables import load_table
    from ._ffn import FFN
    from ._fit import fit
    from ._io import save
    from ._plot import plot_loss, plot_parity, plot_residuals
    from ._predict import predict
    from ._standardize import Standardized

    ds = load_table(args.data, args.x_cols, args.y_cols)
    key_split, key_model, key_fit = jr.split(jr.key(args.seed), 3)
    (x_tr, y_tr), (x_te, y_te) = train_test_split(
        ds.x, ds.y, test_fraction=args.test_fraction, key=key_split
    )
    if args.batch_size is not None and args.batch_size > x_tr.shape[0]:
        raise UsageError(
            f"--batch-size {args.batch_size} is larger than the {x_tr.shape[0]} training rows"
        )
    if args.optimizer == "lbfgs" and args.batch_size is not None:
        raise UsageError("--optimizer lbfgs works on the full batch; leave out --batch-size")
    model: Any = FFN(
        ds.n_x, ds.n_y, args.hidden, activation=args.activation, init=args.init, key=key_model
    )
    if args.standardize:
        model = Standardized.around(model, x_tr, y_tr)
    stage = _Staging(args.out)
    try:
        model, hist = fit(
            model,
            x_tr,
            y_tr,
            optimizer=args.optimizer,
            learning_rate=args.lr,
            steps=args.steps,
            batch_size=args.batch_size,
            key=key_fit,
            progress=args.progress,
        )
        pred_tr, pred_te = predict(model, x_tr), predict(model, x_te)
        metrics = {
            "train_mse": float(np.mean((np.asarray(pred_tr) - np.asarray(y_tr)) ** 2)),
            "test_mse": float(np.mean((np.asarray(pred_te) - np.asarray(y_te)) ** 2)),
            "train_r2": _r2(y_tr, pred_tr),
            "test_r2": _r2(y_te, pred_te),
            "n_train": int(x_tr.shape[0]),
            "n_test": int(x_te.shape[0]),
            "x_cols": list(ds.x_names or ()),
            "y_cols": list(ds.y_names or ()),
            "steps": hist.steps,
            "stop_reason": hist.stop_reason,
            "compile_time_s": hist.compile_time,
            "wall_time_s": hist.wall_time,
        }
        save(
            stage.path("model.eqx"),
            model,
            metadata={"x_cols": metrics["x_cols"], "y_cols": metrics["y_cols"]},
        )
        plot_loss(hist, path=stage.path("loss.png"))
        plot_parity(model, x_te, y_te, path=stage.path("parity.png"))
        plot_residuals(model, x_te, y_te, path=stage.path("residuals.png"))
        stage.path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        written = stage.commit()
    except BaseException:
        stage.abort()
        raise
    print(_summary_line("fit", hist).replace("final training MSE", "training MSE"))
    print(
        f"train MSE {metrics['train_mse']:.4g} (R^2 {metrics['train_r2']:.4f}), "
        f"test MSE {metrics['test_mse']:.4g} (R^2 {metrics['test_r2']:.4f})"
    )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from ._tables import load_table, write_csv
    from ._io import load, read_header
    from ._predict import predict

    model = load(args.model)
    meta = read_header(args.model).get("metadata") or {}
    x_cols = args.x_cols or meta.get("x_cols")
    if not x_cols:
        raise UsageError(f"{args.model} does not record its input columns; name them with --x-cols")
    ds = load_table(args.data, x_cols, [x_cols[0]])  # y is not used
    y_names = meta.get("y_cols") or [f"y{i}" for i in range(model.out_size)]
    pred = np.asarray(predict(model, ds.x))
    names = [f"{n}_pred" for n in y_names]
    if args.out is None:
        print(",".join(names))
        for row in pred:
            print(",".join(repr(float(v)) for v in row))
    else:
        write_csv(args.out, pred, names)
        print(f"wrote {pred.shape[0]} predictions to {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _setup(args)
        if args.command == "demo":
            t0 = time.perf_counter()
            code = _demo(args)
            print(f"demo took {time.perf_counter() - t0:.1f} s")
            return code
        if args.command == "fit":
            return _fit(args)
        return _predict(args)
    except KeyboardInterrupt:
        print("eqx-ffn: interrupted; nothing written", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # bad input: one line, no traceback
        print(f"eqx-ffn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
