"""The `eqx-ffn` command: `demo`, `fit`, `predict`.

Building the parser needs only the standard library, so `eqx-ffn --help` (and every command's
`--help`) answers without importing JAX; each command imports what it uses.

Exit status: 0 success; 1 a fit whose loss became NaN/inf or rose (nothing is written), or an
internal error; 2 bad input (a bad option, an unreadable or malformed file, ...), reported in one
line on stderr, never a traceback; 130 interrupted by Ctrl-C (nothing is written); 141 standard
output closed early (`eqx-ffn predict ... | head`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXAMPLES = ("sine", "sine2", "minibatch", "2d")

# The names the library accepts, spelled out so that --help needs no JAX; tests check them
# against eqx_ffn.OPTIMIZERS, eqx_ffn.ACTIVATIONS and eqx_ffn.INITS. A new optimizer is offered
# on the command line by adding its name to OPTIMIZERS.
OPTIMIZERS: tuple[str, ...] = (
    "adam", "adamw", "sgd", "rmsprop", "lbfgs", "levenberg_marquardt", "lm", "gauss_newton"
)  # fmt: skip
ACTIVATIONS: tuple[str, ...] = (
    "elu",
    "gelu",
    "identity",
    "relu",
    "sigmoid",
    "silu",
    "softplus",
    "tanh",
)
INITS: tuple[str, ...] = (
    "normal",
    "equinox",
    "glorot_uniform",
    "glorot_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_normal",
)
TASKS = ("auto", "classify", "regress")
# Optimizers that find their own step size and work on the full batch only (L-BFGS's line
# search, Levenberg-Marquardt's and Gauss-Newton's damping): --lr defaults to theirs,
# --batch-size is refused.
FULL_BATCH_OPTIMIZERS: tuple[str, ...] = ("lbfgs", "levenberg_marquardt", "lm", "gauss_newton")

# `eqx-ffn fit`'s defaults, chosen on scikit-learn's diabetes (regression) and wine
# (classification) tables and a smooth 2-input function; tests/test_cli.py checks the first two.
DEFAULT_HIDDEN = (32,)
DEFAULT_ACTIVATION = "tanh"
DEFAULT_INIT = "glorot_normal"
DEFAULT_OPTIMIZER = "adam"
DEFAULT_LR = 1e-2
DEFAULT_STEPS = 2000
DEFAULT_L2 = 1e-3
DEFAULT_VALIDATION_FRACTION = 0.15
DEFAULT_PATIENCE = 20
DEFAULT_EVAL_EVERY = 10
DEFAULT_TEST_FRACTION = 0.2

MAX_CLASSES = 1000
MAX_INT32 = 2**31 - 1
MAX_SEED = 2**32 - 1

EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # as if killed by SIGPIPE, the shell's convention


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Interrupted(Exception):
    """The fit was stopped by Ctrl-C; nothing is written."""


class _Diverged(Exception):
    """The training loss became NaN or inf; nothing is written."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (raised here, printed by `main`)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked (importlib.metadata is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from .._version import version as _version

        print(f"eqx_ffn {_version()}")
        parser.exit()


# -- argument types ----------------------------------------------------------------------------


def _integer(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not low <= value <= high:
        shown = text if len(text) < 30 else text[:30] + "..."
        raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high:,}, got {shown}")
    return value


def _positive_int(text: str) -> int:
    return _integer(text, 1, MAX_INT32)


def _seed(text: str) -> int:
    return _integer(text, 0, MAX_SEED)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text}")
    return value


def _fraction_or_zero(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a fraction from 0 (none) up to but not including 1, got {text}"
        )
    return value


def _sizes(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected widths like 16 or 16,8 (or none), got {text!r}"
            ) from None
        if not 1 <= size <= MAX_INT32:
            raise argparse.ArgumentTypeError(
                f"widths must be from 1 to {MAX_INT32:,}; got {text!r}"
            )
        sizes.append(size)
    return tuple(sizes)


def _columns(text: str) -> list[str | int]:
    out: list[str | int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError(f"empty column name in {text!r}")
        out.append(int(part) if part.lstrip("-").isdigit() else part)
    return out


_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}


def _delimiter(text: str) -> str:
    value = _DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(
            f"expected one character such as ',' or ';', or tab, got {text!r}"
        )
    return value


# -- the parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `eqx-ffn` argument parser (standard library only: no JAX is imported)."""
    parser = _Parser(
        prog="eqx-ffn",
        description="Feedforward neural networks on JAX and Equinox: run the lecture's examples, "
        "fit a network to a CSV table (regression or classification), predict with a saved "
        "model.",
        epilog="Exit status: 0 success; 1 the fit diverged (NaN/inf or rising loss; nothing "
        "written); 2 bad input (one line on stderr); 130 interrupted by Ctrl-C (nothing written); "
        "141 standard output closed early.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    cache = _Parser(add_help=False)
    cache.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use the persistent compilation cache (default: on, so a second run "
        "skips compiling)",
    )
    cache.add_argument(
        "--cache-dir",
        default=None,
        help="the compilation cache folder (default: $EQX_FFN_CACHE_DIR, else "
        "~/.cache/eqx_ffn/jax); it must be private to you, never a shared folder",
    )
    progress = _Parser(add_help=False)
    progress.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    table = _Parser(add_help=False)
    table.add_argument(
        "--delimiter",
        type=_delimiter,
        default=None,
        help="CSV cell separator: one character, or tab (default: guessed from the header line "
        "among , tab ; |)",
    )
    table.add_argument(
        "--drop-missing",
        action="store_true",
        help="drop rows with a missing value (an empty cell, NA, NaN, ...) in a used column and "
        "say how many (default: stop with the row and column named)",
    )

    demo = sub.add_parser(
        "demo",
        parents=[cache, progress],
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
        parents=[cache, progress, table],
        help="fit a network to a CSV (or NPZ) table",
        description="Fit a feedforward network to columns of a table: regression, or "
        "classification of a label column. Holds out --test-fraction of the rows for testing and "
        "--validation-fraction of the rest for early stopping; standardises the data. Writes "
        "model.eqx, metrics.json (every setting, versions, scores), loss.png and, for regression, "
        "parity.png and residuals.png, for classification confusion.png, to --out. Ctrl-C "
        "stops with exit status 130 and writes nothing.",
    )
    fit.add_argument("data", help="CSV file with a header row, or an .npz archive")
    fit.add_argument("--out", required=True, help="output folder")
    fit.add_argument(
        "--x-cols",
        type=_columns,
        help="input columns, comma separated names or 0-based indices (default: all but the "
        "outputs)",
    )
    fit.add_argument("--y-cols", type=_columns, help="output columns (default: the last column)")
    fit.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="classify: the y column holds class labels (text or integers); regress: numbers "
        "to predict; auto (default): classify when y holds text, or few distinct integers "
        "(at most 20, and at most one per 5 rows), else regress (a note says which)",
    )
    fit.add_argument(
        "--hidden",
        type=_sizes,
        default=DEFAULT_HIDDEN,
        help=f"hidden widths, e.g. 16,16, or none (default {','.join(map(str, DEFAULT_HIDDEN))})",
    )
    fit.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default=DEFAULT_ACTIVATION,
        help=f"hidden activation (default {DEFAULT_ACTIVATION})",
    )
    fit.add_argument(
        "--init", choices=INITS, default=DEFAULT_INIT, help=f"weight init (default {DEFAULT_INIT})"
    )
    fit.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=DEFAULT_OPTIMIZER,
        help=f"default {DEFAULT_OPTIMIZER}",
    )
    fit.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help=f"learning rate, a finite number > 0 (default {DEFAULT_LR:g}; lbfgs: its line search)",
    )
    fit.add_argument(
        "--steps",
        type=_positive_int,
        default=DEFAULT_STEPS,
        help=f"most optimisation steps (default {DEFAULT_STEPS}; early stopping may end sooner)",
    )
    fit.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="mini-batch size (default: full batch)",
    )
    fit.add_argument(
        "--l2",
        type=_nonnegative_float,
        default=DEFAULT_L2,
        help=f"L2 penalty on the weights, in standardised units (default {DEFAULT_L2:g}; 0 for "
        "none)",
    )
    fit.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise the inputs (and, for regression, the outputs) with the training rows' "
        "mean and spread, stored in the model (default: on)",
    )
    fit.add_argument(
        "--validation-fraction",
        type=_fraction_or_zero,
        default=DEFAULT_VALIDATION_FRACTION,
        help="share of the training rows held out to watch the validation loss (default "
        f"{DEFAULT_VALIDATION_FRACTION}; 0 for none, which also turns early stopping off)",
    )
    fit.add_argument(
        "--early-stopping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop when the validation loss has not improved for --patience evaluations and "
        "keep the best model (default: on)",
    )
    fit.add_argument(
        "--patience",
        type=_positive_int,
        default=DEFAULT_PATIENCE,
        help=f"evaluations without improvement before stopping (default {DEFAULT_PATIENCE})",
    )
    fit.add_argument(
        "--eval-every",
        type=_positive_int,
        default=DEFAULT_EVAL_EVERY,
        help=f"steps between validation evaluations (default {DEFAULT_EVAL_EVERY})",
    )
    fit.add_argument(
        "--test-fraction",
        type=_fraction,
        default=DEFAULT_TEST_FRACTION,
        help=f"share of rows held out for testing (default {DEFAULT_TEST_FRACTION})",
    )
    fit.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help=f"random seed for the split, the initial weights and the batches, 0 to {MAX_SEED} "
        "(default 0)",
    )

    predict = sub.add_parser(
        "predict",
        parents=[cache, table],
        help="predict with a saved model",
        description="Predict with a model saved by `eqx-ffn fit` (or eqx_ffn.save). The input "
        "columns default to those the model was fitted on. A classifier writes the class labels "
        "(and with --proba one probability column per class).",
    )
    predict.add_argument("model", help="model file (model.eqx)")
    predict.add_argument("data", help="CSV file with a header row, or an .npz archive")
    predict.add_argument("--x-cols", type=_columns, help="input columns (default: the model's)")
    predict.add_argument(
        "--proba",
        action="store_true",
        help="classifiers: also write each class's probability, one column per class",
    )
    predict.add_argument("--out", default=None, help="CSV to write (default: standard output)")
    return parser


# -- shared helpers ----------------------------------------------------------------------------


def _setup(args: argparse.Namespace) -> None:
    if getattr(args, "no_cache", True):
        return
    from ..training._compilation_cache import default_cache_dir, enable_compilation_cache

    folder = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enable_compilation_cache(folder)
    except (OSError, ValueError, RuntimeError) as e:
        raise UsageError(
            f"cannot use the compilation cache folder {folder} ({_one_line(e)}); point "
            "--cache-dir or EQX_FFN_CACHE_DIR at a folder of your own, or pass --no-cache"
        ) from None
    for w in caught:
        _note(args, f"warning: {_one_line(w.message)}")


def _prog(args: argparse.Namespace) -> str:
    return f"eqx-ffn {args.command}"


def _note(args: argparse.Namespace, text: str) -> None:
    print(f"{_prog(args)}: {text}", file=sys.stderr, flush=True)


def _defer(args: argparse.Namespace, text: str) -> None:
    """A note printed once every check has passed (so a failure stays one line on stderr)."""
    args.deferred = [*getattr(args, "deferred", []), text]


def _flush(args: argparse.Namespace) -> None:
    for text in getattr(args, "deferred", []):
        _note(args, text)
    args.deferred = []


def _one_line(e: object, limit: int = 2000) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _check_out(out: str) -> Path:
    """The output folder: not a file, and creatable (checked before anything is computed)."""
    if not out.strip():
        raise UsageError("--out needs a folder name; got an empty string")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} exists and is not a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"--out {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: cannot write in {ancestor} (permission denied)")
    return path


class _CtrlC:
    """Ctrl-C for the eqx-ffn program (not for `main([...])` called from Python).

    The first SIGINT raises `KeyboardInterrupt` as usual, and starts a watchdog: if the process
    is still running `grace` seconds later (a KeyboardInterrupt raised inside compiled code's
    Python callbacks can be swallowed there), the watchdog says so and exits with status 130.
    Nothing is written meanwhile: outputs are staged and moved into place by `_Staging.commit`,
    which runs to its end (a few renames) even when Ctrl-C lands during it.
    """

    def __init__(self, prog: str, grace: float = 3.0):
        self.prog, self.grace = prog, grace
        self.pending = False
        self.committing = False

    def install(self) -> None:
        import signal

        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.committing:
            self.pending = True  # the outputs are complete; let the renames finish
            return
        if not self.pending:
            import threading

            self.pending = True
            threading.Thread(target=self._watchdog, daemon=True).start()
        raise KeyboardInterrupt

    def _watchdog(self) -> None:
        time.sleep(self.grace)
        while self.committing:
            time.sleep(0.05)
        _leave(f"{self.prog}: interrupted; nothing written")


def _leave(message: str) -> None:
    """Remove the temporary outputs, print `message` and end the process with status 130 at
    once: Ctrl-C can land while XLA compiles on other threads, and tearing the interpreter down
    under them crashes (SIGSEGV)."""
    import shutil

    for path in list(_TEMPORARY):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


_CTRL_C: _CtrlC | None = None
_TEMPORARY: set[Path] = set()  # staged outputs, removed if the watchdog ends the process


class _Staging:
    """Write outputs into a temporary folder; move them into place only when all succeeded."""

    def __init__(self, out: str | Path):
        import tempfile

        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} exists and is not a folder")
        parent = self.out.parent if str(self.out.parent) else Path(".")
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=parent))
        _TEMPORARY.add(self.tmp)
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        self.names.append(name)
        return self.tmp / name

    def commit(self) -> list[Path]:
        import shutil

        if _CTRL_C is not None:
            if _CTRL_C.pending:
                raise KeyboardInterrupt
            _CTRL_C.committing = True
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            done = []
            for name in self.names:
                os.replace(self.tmp / name, self.out / name)
                done.append(self.out / name)
        finally:
            if _CTRL_C is not None:
                _CTRL_C.committing = False
        shutil.rmtree(self.tmp, ignore_errors=True)
        _TEMPORARY.discard(self.tmp)
        return done

    def abort(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        _TEMPORARY.discard(self.tmp)


def _summary_line(label: str, history: Any) -> str:
    rate = history.steps / history.run_time if history.run_time > 0 else float("inf")
    return (
        f"{label}: {history.steps} steps, final training MSE {history.final_loss:.4g}, "
        f"{rate:,.0f} steps/s, compile {history.compile_time:.2f} s, "
        f"total {history.wall_time:.2f} s ({history.stop_reason})"
    )


def _check_regular_file(path: str, what: str) -> Path:
    import stat

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UsageError(f"no such {what}: {p}") from None
    except OSError as e:
        raise UsageError(f"cannot read {what} {p}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {p} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {p} is not a regular file (a device, pipe or socket)")
    if not os.access(p, os.R_OK):
        raise UsageError(f"cannot read {what} {p} (permission denied)")
    return p


def _float_dtype() -> Any:
    """The float dtype JAX computes in here: float32, or float64 under JAX_ENABLE_X64."""
    import jax
    import numpy as np

    return np.float64 if jax.config.read("jax_enable_x64") else np.float32


def _predict_proba(model: Any, x: Any) -> Any:
    """Class probabilities `(N, K)`: the softmax of the network's outputs."""
    import numpy as np

    from ..training._predict import predict_proba

    return np.asarray(predict_proba(model, x))


# -- demo --------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    import jax
    import jax.random as jr

    from ..io._datasets import lecture_params, sine_1d, sine_cosine_2d
    from ..io._model_file import save
    from ..model._ffn import FFN
    from ..model._summary import summary
    from ..plot._plot import plot_fit_1d, plot_loss, plot_residuals, plot_surface_2d
    from ..training._fit import fit

    def checked(result: tuple[Any, Any]) -> tuple[Any, Any]:
        if result[1].stop_reason == "interrupted":
            raise KeyboardInterrupt
        return result

    t0 = time.perf_counter()
    _check_out(args.out)
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
                model, hist = checked(
                    fit(
                        model0,
                        data.x,
                        data.y,
                        steps=steps,
                        batch_size=32,
                        key=jr.key(101),
                        progress=args.progress,
                    )
                )
                _, full = checked(fit(model0, data.x, data.y, steps=steps, progress=args.progress))
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
                model, hist = checked(
                    fit(model0, data.x, data.y, steps=steps, progress=args.progress)
                )
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
            model, hist = checked(fit(model0, data.x, data.y, steps=steps, progress=args.progress))
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
    print(f"demo took {time.perf_counter() - t0:.1f} s")
    return 0


# -- fit ---------------------------------------------------------------------------------------


def split_rows(
    n: int, test_fraction: float, validation_fraction: float, seed: int
) -> tuple[Any, Any, Any]:
    """`eqx-ffn fit`'s split of `n` rows: `(train, validation, test)` row indices.

    The rows are shuffled with `numpy.random.default_rng(seed)`; the first
    `round(test_fraction * n)` form the test set, the next `round(validation_fraction * rest)`
    the validation set, the others the training set (in shuffled order).
    """
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    n_test = round(test_fraction * n)
    n_val = round(validation_fraction * (n - n_test))
    n_train = n - n_test - n_val
    if n_test < 1 or n_train < 1 or (validation_fraction > 0 and n_val < 1):
        raise UsageError(
            f"the table has {n} rows: --test-fraction {test_fraction} and --validation-fraction "
            f"{validation_fraction} leave {n_train} training, {n_val} validation and {n_test} "
            "test rows; training and test need at least one row each (and validation one when "
            "its fraction is > 0). Use more rows or other fractions."
        )
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


def _class_value(v: Any) -> Any:
    """A numeric class label as JSON keeps it: an int when it is whole, else a float."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _decide_task(args: argparse.Namespace, table: Any) -> tuple[str, Any, list[Any]]:
    """`(task, y, classes)`: `y` the integer class codes `(N,)` for classification."""
    import numpy as np

    y = table.y
    name = table.y_names[0] if table.y_names else "y"
    if args.task == "regress":
        return "regress", y, []
    if table.text_labels:
        classes, codes = np.unique(y[:, 0], return_inverse=True)
        values: list[Any] = [str(c) for c in classes]
        why = f"y column {name!r} holds text labels"
    else:
        if y.shape[1] != 1:
            if args.task == "classify":
                raise UsageError(
                    f"--task classify takes one label column; --y-cols names {y.shape[1]} "
                    f"({', '.join(table.y_names)})"
                )
            return "regress", y, []
        classes, codes = np.unique(y[:, 0], return_inverse=True)
        values = [_class_value(c) for c in classes]
        whole = bool(np.all(classes == np.round(classes)))
        few = len(classes) <= min(20, max(2, table.n_rows // 5))
        if args.task == "auto":
            if not (whole and few and len(classes) >= 2):
                _defer(
                    args,
                    f"note: regression: y column {name!r} holds {len(classes)} distinct "
                    "numbers (pass --task classify to treat them as class labels)",
                )
                return "regress", y, []
        why = f"y column {name!r} holds {len(classes)} distinct integers"
    k = len(classes)
    if k < 2:
        raise UsageError(
            f"y column {name!r} holds a single class ({values[0]!r}); classification needs at "
            "least two"
        )
    if k > MAX_CLASSES:
        raise UsageError(
            f"y column {name!r} holds {k:,} distinct labels, more than {MAX_CLASSES} classes; "
            "is it the right column? (--task regress fits numbers)"
        )
    if args.task == "auto":
        _defer(args, f"note: classification: {why} ({k} classes; pass --task regress to override)")
    return "classify", codes.astype(np.int32), values


def _check_size(n_in: int, hidden: Sequence[int], n_out: int) -> None:
    from itertools import pairwise

    from ..io._tables import _available_memory

    params = sum((a + 1) * b for a, b in pairwise([n_in, *hidden, n_out]))
    need = params * 4 * 6  # parameters, gradients, two optimiser moments, best and last good
    avail = _available_memory()
    if params > MAX_INT32 or (avail is not None and need > avail):
        have = f"; {avail / 1e9:.1f} GB of memory are available" if avail else ""
        raise UsageError(
            f"--hidden {','.join(map(str, hidden))} gives a network of {params:,} parameters "
            f"(about {need / 1e9:.3g} GB to train){have}; choose smaller widths"
        )


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .._version import version as _version

    out = {"eqx_ffn": _version(), "python": platform.python_version()}
    for package in ("jax", "jaxlib", "equinox", "optax", "numpy", "pandas", "matplotlib"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _new_network(n_in: int, n_out: int, args: argparse.Namespace, key: Any) -> Any:
    """The untrained `FFN`, built in one compiled call (eagerly, each random draw compiles)."""
    global _BUILD
    if _BUILD is None:
        import equinox as eqx

        from ..model._ffn import FFN

        def build(n_in, n_out, hidden, activation, init, key):
            return FFN(n_in, n_out, hidden, activation=activation, init=init, key=key)

        _BUILD = eqx.filter_jit(build)  # one program per set of sizes, reused by later fits
    return _BUILD(n_in, n_out, tuple(args.hidden), args.activation, args.init, key)


_BUILD: Any = None


def _affine(scaler: Any) -> Callable[[Any], Any]:
    """A `Standardizer`'s `transform` in NumPy (the same float operations, nothing to compile)."""
    import numpy as np

    if scaler is None:
        return lambda a: a
    mean, scale = np.asarray(scaler.mean), np.asarray(scaler.scale)
    return lambda a: (a.astype(mean.dtype) - mean) / scale


def _train(
    args: argparse.Namespace, table: Any, y_all: Any, n_out: int, rows: tuple[Any, Any, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """Build, standardise and fit the network: `(model, history, facts)`."""
    import jax.random as jr

    from ..model._standardize import Standardized, Standardizer
    from ..training._fit import NonFiniteLossWarning, fit

    train, val, _ = rows
    classify = args.task == "classify"
    use_val = val.size > 0
    x_tr, y_tr = table.x[train], y_all[train]
    x_scaler = Standardizer.fit(x_tr) if args.standardize else None
    y_scaler = Standardizer.fit(y_tr) if args.standardize and not classify else None
    scale_x, scale_y = _affine(x_scaler), _affine(y_scaler)
    dtype = _float_dtype()
    key_model, key_fit = jr.split(jr.key(args.seed))
    net = _new_network(table.x.shape[1], n_out, args, key_model)
    lr = args.lr if args.lr is not None or args.optimizer in FULL_BATCH_OPTIMIZERS else DEFAULT_LR
    early = args.early_stopping and use_val

    def target(y: Any) -> Any:
        return y if classify else scale_y(y.astype(dtype))

    _flush(args)
    _note(
        args,
        f"training: {train.size} rows, {table.x.shape[1]} inputs -> {n_out} "
        f"{'classes' if classify else 'output' if n_out == 1 else 'outputs'}, "
        f"{args.optimizer}, up to {args.steps} steps (Ctrl-C stops; nothing is written then)",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inner, hist = fit(
            net,
            scale_x(x_tr.astype(dtype)),
            target(y_tr),
            optimizer=args.optimizer,
            learning_rate=lr,
            steps=args.steps,
            batch_size=args.batch_size,
            loss="softmax_cross_entropy" if classify else "mse",
            key=key_fit,
            validation=(scale_x(table.x[val].astype(dtype)), target(y_all[val]))
            if use_val
            else None,
            eval_every=args.eval_every if use_val else None,
            patience=args.patience if early else None,
            l2=args.l2,
            progress=args.progress,
        )
    for w in caught:
        if not issubclass(w.category, NonFiniteLossWarning):
            _note(args, f"warning: {_one_line(w.message)}")
    if hist.stop_reason == "interrupted":
        raise _Interrupted(f"interrupted after {hist.steps} steps; nothing written")
    if hist.stop_reason in ("non_finite_loss", "diverged"):
        what = (
            "the training loss became NaN or inf"
            if hist.stop_reason == "non_finite_loss"
            else "the fit diverged: the training loss rose 10,000-fold"
        )
        raise _Diverged(
            f"{what} ({_one_line(hist.message)}); nothing written. "
            f"Lower --lr (now {lr}){'' if args.standardize else ' or drop --no-standardize'}"
        )
    model = (
        inner if x_scaler is None and y_scaler is None else Standardized(inner, x_scaler, y_scaler)
    )
    facts = {
        "learning_rate": lr,
        "early_stopping": early,
        "validation": use_val,
        "fitted_loss": (lambda out, y: _fitted_loss(out, y, classify, scale_y, dtype)),
    }
    return model, hist, facts


def _fitted_loss(out: Any, y: Any, classify: bool, scale_y: Any, dtype: Any) -> float:
    """The loss `fit` minimised (without penalty), from the model's outputs (probabilities for
    a classifier), in fitting units."""
    import numpy as np

    if classify:
        picked = out[np.arange(len(y)), y].astype(np.float64)
        return float(-np.mean(np.log(np.maximum(picked, np.finfo(np.float64).tiny))))
    diff = scale_y(out.astype(dtype)).astype(np.float64) - scale_y(y.astype(dtype))
    return float(np.mean(diff**2))


def _score(
    model: Any, hist: Any, table: Any, y_all: Any, classes: list[Any], rows: Any, facts: Any
) -> dict[str, Any]:
    """Train/validation/test scores, from ONE prediction over every row."""
    import numpy as np

    from .._metrics import accuracy, confusion_matrix, mse, r2_per_output, r2_score
    from ..training._predict import predict

    classify = bool(classes)
    x = table.x.astype(_float_dtype())
    out = _predict_proba(model, x) if classify else np.asarray(predict(model, x))
    if not np.all(np.isfinite(out)):
        raise _Diverged("the trained model's predictions are not finite; nothing written")
    train, val, test = rows
    start, end = float(hist.loss[0]), facts["fitted_loss"](out[train], y_all[train])
    if not end <= start:  # also NaN
        raise _Diverged(
            f"the fit diverged: the training loss rose from {start:.4g} (initial model) to "
            f"{end:.4g} (returned model); nothing written. Lower --lr (now "
            f"{facts['learning_rate']})"
        )
    scores: dict[str, Any] = {"initial_training_loss": start, "returned_training_loss": end}
    parts = {"train": train, "test": test, **({"validation": val} if val.size else {})}
    for part, idx in parts.items():
        if classify:
            scores[f"{part}_accuracy"] = accuracy(y_all[idx], out[idx].argmax(axis=1))
        else:
            scores[f"{part}_mse"] = mse(y_all[idx], out[idx])
            scores[f"{part}_r2"] = r2_score(y_all[idx], out[idx])
            per = map(float, r2_per_output(y_all[idx], out[idx]))
            scores[f"{part}_r2_per_output"] = dict(zip(table.y_names, per, strict=True))
    if classify:
        counts = confusion_matrix(y_all[test], out[test].argmax(axis=1), len(classes))
        scores["classes"] = classes
        scores["test_confusion_matrix"] = counts.tolist()
    else:
        scores["test_predictions"] = out[test]
    return scores


def _fit(args: argparse.Namespace) -> int:

    import numpy as np

    from ..io._tables import read_table

    t_start = time.perf_counter()
    out = _check_out(args.out)
    if args.optimizer in FULL_BATCH_OPTIMIZERS and args.batch_size is not None:
        raise UsageError(
            f"--optimizer {args.optimizer} works on the full batch; leave out --batch-size"
        )
    table = read_table(
        args.data,
        args.x_cols,
        args.y_cols,
        delimiter=args.delimiter,
        drop_missing=args.drop_missing,
        labels=args.task != "regress" and (args.y_cols is None or len(args.y_cols) == 1),
        dtype=_float_dtype(),
    )
    if table.n_dropped:
        _defer(
            args,
            f"note: dropped {table.n_dropped} of {table.n_rows + table.n_dropped} rows with "
            "missing values (--drop-missing)",
        )
    if table.x.shape[1] == 0:
        raise UsageError("--x-cols names no column; a network needs at least one input")
    if table.y.shape[1] == 0:
        raise UsageError("--y-cols names no column; a network needs at least one output")
    task_option = args.task
    args.task, y_all, classes = _decide_task(args, table)
    classify = args.task == "classify"
    rows = split_rows(table.n_rows, args.test_fraction, args.validation_fraction, args.seed)
    if args.batch_size is not None and args.batch_size > rows[0].size:
        raise UsageError(
            f"--batch-size {args.batch_size} is larger than the {rows[0].size} training rows"
        )
    n_out = len(classes) if classify else table.y.shape[1]
    _check_size(table.x.shape[1], args.hidden, n_out)

    model, hist, facts = _train(args, table, y_all, n_out, rows)
    scores = _score(model, hist, table, y_all, classes, rows, facts)
    test_pred = scores.pop("test_predictions", None)
    metrics: dict[str, Any] = {
        "task": args.task,
        "n_train": int(rows[0].size),
        "n_validation": int(rows[1].size),
        "n_test": int(rows[2].size),
        "x_cols": list(table.x_names),
        "y_cols": list(table.y_names),
        **scores,
    }
    metrics["settings"] = {
        "data": str(args.data),
        "delimiter": table.delimiter,
        "drop_missing": args.drop_missing,
        "rows_dropped": table.n_dropped,
        "task": args.task,
        "task_option": task_option,
        "x_cols": list(table.x_names),
        "y_cols": list(table.y_names),
        "hidden": list(args.hidden),
        "activation": args.activation,
        "init": args.init,
        "optimizer": args.optimizer,
        "learning_rate": facts["learning_rate"]
        if facts["learning_rate"] is not None
        else "line search",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "loss": "softmax_cross_entropy" if classify else "mse",
        "l2": args.l2,
        "standardize": args.standardize,
        "test_fraction": args.test_fraction,
        "validation_fraction": args.validation_fraction,
        "early_stopping": facts["early_stopping"],
        "patience": args.patience if facts["early_stopping"] else None,
        "eval_every": args.eval_every if facts["validation"] else None,
        "seed": args.seed,
        "dtype": np.dtype(_float_dtype()).name,
    }
    metrics["history"] = {
        "stop_reason": hist.stop_reason,
        "steps": hist.steps,
        "best_step": hist.best_step,
        "message": hist.message,
        "final_training_loss": None if math.isnan(hist.final_loss) else hist.final_loss,
        "compile_time_s": hist.compile_time,
        "fit_wall_time_s": hist.wall_time,
    }
    metrics["versions"] = _versions()
    written = _write_fit(args, out, model, hist, table, classes, rows, test_pred, metrics, t_start)
    print(
        f"fit: {hist.steps} steps ({hist.stop_reason}), compile {hist.compile_time:.2f} s, "
        f"fit {hist.wall_time:.2f} s"
    )
    if classify:
        print(
            f"accuracy: train {metrics['train_accuracy']:.4f}, test {metrics['test_accuracy']:.4f}"
            f" ({len(classes)} classes)"
        )
    else:
        print(
            f"train MSE {metrics['train_mse']:.4g} (R^2 {metrics['train_r2']:.4f}), "
            f"test MSE {metrics['test_mse']:.4g} (R^2 {metrics['test_r2']:.4f})"
        )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _write_fit(
    args: argparse.Namespace,
    out: Path,
    model: Any,
    hist: Any,
    table: Any,
    classes: list[Any],
    rows: Any,
    test_pred: Any,
    metrics: dict[str, Any],
    t_start: float,
) -> list[Path]:
    """The model, figures and metrics.json, moved into --out only when all are written."""
    import json

    from ..io._model_file import save
    from ..plot._plot import plot_confusion, plot_loss, plot_parity, plot_residuals

    classify = bool(classes)
    stage = _Staging(out)
    try:
        meta: dict[str, Any] = {
            "x_cols": list(table.x_names),
            "y_cols": list(table.y_names),
            "task": args.task,
        }
        if classify:
            meta["classes"] = classes
        if table.delimiter is None:  # an .npz: predict reads the same arrays
            meta["x_arrays"] = [str(c) for c in (args.x_cols or ["x"])]
        save(stage.path("model.eqx"), model, metadata=meta)
        if classify:
            loss_name = "cross-entropy"
        else:
            loss_name = "MSE (standardised units)" if args.standardize else "MSE"
        curves = "training and validation" if rows[1].size else "training"
        plot_loss(
            hist,
            title=f"Loss of {', '.join(table.y_names)}: {curves}",
            ylabel=loss_name,
            path=stage.path("loss.png"),
        )
        if classify:
            plot_confusion(
                metrics["test_confusion_matrix"],
                [str(c) for c in classes],
                title=f"{table.y_names[0]}, test set",
                path=stage.path("confusion.png"),
            )
        else:
            y_te = table.y[rows[2]]
            for plot, name in ((plot_parity, "parity.png"), (plot_residuals, "residuals.png")):
                plot(None, None, y_te, pred=test_pred, names=table.y_names, path=stage.path(name))
        metrics["total_wall_time_s"] = time.perf_counter() - t_start
        stage.path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        return stage.commit()
    except BaseException:
        stage.abort()
        raise


# -- predict -----------------------------------------------------------------------------------


def _valid_names(value: Any, count: int | None, field: str) -> list[str]:
    from ..io._tables import _NAME_SAFE, MAX_NAME_CHARS

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of column names")
    if count is not None and len(value) != count:
        raise ValueError(f"{field} names {len(value)} columns but the network has {count}")
    for v in value:
        if not v or len(v) > MAX_NAME_CHARS or _NAME_SAFE.search(v):
            raise ValueError(f"{field} holds an invalid name {v[:40]!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{field} repeats a name")
    return value


def _model_metadata(path: Path, header: dict[str, Any], model: Any) -> dict[str, Any]:
    """The metadata `eqx-ffn fit` stores, checked against the network (`{}` when there is none)."""
    meta = header.get("metadata")
    if meta is None:
        return {}
    try:
        if not isinstance(meta, dict):
            raise ValueError("it is not a mapping")
        task = meta.get("task", "regress")
        if task not in ("regress", "classify"):
            raise ValueError(f"task is {task!r}, not 'regress' or 'classify'")
        out: dict[str, Any] = {"task": task}
        if "x_cols" in meta:
            out["x_cols"] = _valid_names(meta["x_cols"], model.in_size, "x_cols")
        if "x_arrays" in meta:
            out["x_arrays"] = _valid_names(meta["x_arrays"], None, "x_arrays")
        if task == "classify":
            classes = meta.get("classes")
            if not isinstance(classes, list) or not all(
                isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in classes
            ):
                raise ValueError("classes must be a list of labels (strings or numbers)")
            if len(classes) != model.out_size or len(set(classes)) != len(classes):
                raise ValueError(
                    f"classes must be {model.out_size} distinct labels (one per output)"
                )
            _valid_names([str(c) for c in classes], None, "classes")
            out["classes"] = classes
            out["y_cols"] = _valid_names(meta.get("y_cols", ["class"]), 1, "y_cols")
        elif "y_cols" in meta:
            out["y_cols"] = _valid_names(meta["y_cols"], model.out_size, "y_cols")
        return out
    except ValueError as e:
        raise UsageError(
            f"{path}: the model's metadata is malformed ({e}); was it written by eqx-ffn fit?"
        ) from None


def _load_model(path_text: str) -> tuple[Path, Any, dict[str, Any]]:
    from ..io._model_file import ModelFileError, load, read_header

    path = _check_regular_file(path_text, "model file")
    try:
        header = read_header(path)
        model = load(path)
    except ModelFileError as e:
        raise UsageError(_one_line(e)) from None
    except (RecursionError, MemoryError, UnicodeError, KeyError, TypeError) as e:
        raise UsageError(
            f"Cannot load {path}: not a valid model file ({type(e).__name__})"
        ) from None
    if not hasattr(model, "in_size") or not hasattr(model, "out_size"):
        raise UsageError(f"{path} holds a {type(model).__name__}, not a network eqx-ffn can use")
    return path, model, _model_metadata(path, header, model)


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io._tables import _write_rows, read_table, write_csv
    from ..training._predict import predict

    path, model, meta = _load_model(args.model)
    task = meta.get("task", "regress")
    if args.proba and task != "classify":
        raise UsageError(
            f"--proba needs a classifier, but {path} was fitted for regression; leave out --proba"
        )
    npz = Path(args.data).suffix.lower() == ".npz"
    x_cols = args.x_cols or meta.get("x_arrays" if npz and "x_arrays" in meta else "x_cols")
    if not x_cols:
        raise UsageError(f"{path} does not record its input columns; name them with --x-cols")
    fitted = f" (it was fitted on {', '.join(meta['x_cols'])})" if "x_cols" in meta else ""
    if len(x_cols) != model.in_size and not npz:
        raise UsageError(
            f"--x-cols names {len(x_cols)} columns but the model takes {model.in_size} "
            f"inputs{fitted}"
        )
    if args.out is not None:
        if not args.out.strip():
            raise UsageError("--out needs a file name; got an empty string")
        if Path(args.out).is_dir():
            raise UsageError(f"--out {args.out} is a folder; give a file name such as preds.csv")
    table = read_table(
        args.data,
        x_cols,
        [],
        delimiter=args.delimiter,
        drop_missing=args.drop_missing,
        dtype=_float_dtype(),
    )
    if table.x.shape[1] != model.in_size:  # arrays of an .npz: counted once read
        raise UsageError(
            f"--x-cols arrays {', '.join(map(str, x_cols))} give {table.x.shape[1]} columns but "
            f"the model takes {model.in_size} inputs{fitted}"
        )
    if table.n_dropped:
        _note(
            args,
            f"note: dropped {table.n_dropped} rows with missing values (--drop-missing); the "
            "predictions are for the other rows",
        )
    x = table.x.astype(_float_dtype())
    out = _predict_proba(model, x) if task == "classify" else np.asarray(predict(model, x))
    bad = np.asarray(~np.isfinite(out).all(axis=1))
    if bad.any():
        raise UsageError(
            f"{path} gives NaN or inf for {int(bad.sum())} of {bad.size} rows (the first is data "
            f"row {int(np.argmax(bad)) + 1}); its parameters or these inputs are out of range"
        )
    if task == "classify":
        classes = meta["classes"]
        name = meta["y_cols"][0]
        proba = out
        labels = np.asarray([str(c) for c in classes])[proba.argmax(axis=1)]
        header = [f"{name}_pred"]
        cols: list[Any] = [labels]
        if args.proba:
            header += [f"P({name}={c})" for c in classes]
            cols += list(proba.T)
    else:
        names = meta.get("y_cols") or [f"y{i + 1}" for i in range(model.out_size)]
        header = [f"{n}_pred" for n in names]
        cols = list(out.T)
    if args.out is None:
        _write_rows(sys.stdout, header, cols, ",")
        return 0
    target = Path(args.out)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _TEMPORARY.add(tmp)
    try:  # written whole or not at all (Ctrl-C, a full disk)
        write_csv(tmp, cols, header)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        _TEMPORARY.discard(tmp)
    print(f"wrote {len(cols[0])} predictions to {args.out}", file=sys.stderr)
    return 0


# -- main --------------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _demo,
    "fit": _fit,
    "predict": _predict,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run `eqx-ffn` with `argv` (default `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    except UsageError as e:
        print(f"eqx-ffn: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        parser.print_help()
        print("eqx-ffn: error: choose a command: demo, fit or predict", file=sys.stderr)
        return EXIT_USAGE
    prog = _prog(args)
    global _CTRL_C
    if argv is None:  # the eqx-ffn program itself
        _CTRL_C = _CtrlC(prog)
        _CTRL_C.install()
    try:
        _setup(args)
        code = COMMANDS[args.command](args)
        if _CTRL_C is not None and _CTRL_C.pending:  # Ctrl-C during the last renames
            _leave(f"{prog}: interrupted after the outputs were complete; they were written")
        return code
    except (KeyboardInterrupt, _Interrupted) as e:
        text = str(e) if isinstance(e, _Interrupted) else "interrupted; nothing written"
        if _CTRL_C is not None:
            _leave(f"{prog}: {text}")
        print(f"{prog}: {text}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Diverged as e:
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except BrokenPipeError:  # `eqx-ffn predict ... | head`: the reader has gone; say nothing
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_BROKEN_PIPE
    except (ValueError, OSError) as e:  # bad input, incl. UsageError and ModelFileError
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"{prog}: error: out of memory; use a smaller table or network", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("EQX_FFN_DEBUG"):
            raise
        print(
            f"{prog}: internal error: {type(e).__name__}: {_one_line(e, 500)} (please report it; "
            "EQX_FFN_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_DIVERGED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
