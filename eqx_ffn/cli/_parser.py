"""The `eqx-ffn` argument parser, declared as tables: each command's options with their help.

Building it needs only the standard library, so `eqx-ffn --help` (and every command's `--help`)
answers without importing JAX; each command imports what it uses.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ._common import CHECKPOINT_OPTIONS, MAX_INT32, MAX_SEED, UsageError
from ._common import nonnegative_number as _nonnegative_float
from ._common import number as _number
from ._sysid import add_parser as add_sysid_parser

EXAMPLES = ("sine", "sine2", "minibatch", "2d", "tanks")

# The names the library accepts, spelled out so that --help needs no JAX; tests check them
# against eqx_ffn.OPTIMIZERS, eqx_ffn.ACTIVATIONS and eqx_ffn.INITS. A new optimizer is offered
# on the command line by adding its name to OPTIMIZERS.
OPTIMIZERS: tuple[str, ...] = (
    "adam", "adamw", "sgd", "rmsprop", "lbfgs", "levenberg_marquardt", "lm", "gauss_newton"
)  # fmt: skip
ACTIVATIONS: tuple[str, ...] = (
    "elu", "gelu", "identity", "relu", "sigmoid", "silu", "softplus", "tanh"
)  # fmt: skip
INITS: tuple[str, ...] = (
    "normal", "equinox", "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal",
    "lecun_normal",
)  # fmt: skip
TASKS = ("auto", "classify", "regress")
# Optimizers that find their own step size and work on the full batch only (L-BFGS's line
# search, Levenberg-Marquardt's and Gauss-Newton's damping): --lr defaults to theirs,
# --batch-size is refused.
FULL_BATCH_OPTIMIZERS: tuple[str, ...] = ("lbfgs", "levenberg_marquardt", "lm", "gauss_newton")

# `eqx-ffn fit`'s defaults, chosen on scikit-learn's diabetes (regression) and wine
# (classification) tables and a smooth 2-input function; tests/cli/test_cli.py checks the first
# two.
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


# -- argument types: text -> value, or argparse's one-line error --------------------------------


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


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
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


PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # the platforms jax.export lowers for


def _platforms(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(","))
    for name in names:
        if name not in PLATFORMS:
            raise argparse.ArgumentTypeError(
                f"expected platform names from {', '.join(PLATFORMS)}, comma separated (e.g. "
                f"cpu,cuda); got {text!r}"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a platform is named twice in {text!r}")
    return names


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


# -- the options, as tables: (flags, add_argument's keywords) ----------------------------------

Option = tuple[tuple[str, ...], dict[str, Any]]
_SWITCH = argparse.BooleanOptionalAction

CACHE: tuple[Option, ...] = (
    (("--no-cache",), dict(action="store_true", help="do not use the persistent compilation "
        "cache (default: on, so a second run skips compiling)")),
    (("--cache-dir",), dict(default=None, help="the compilation cache folder (default: "
        "$EQX_FFN_CACHE_DIR, else ~/.cache/eqx_ffn/jax); it must be private to you, never a "
        "shared folder")),
)  # fmt: skip
PROGRESS: tuple[Option, ...] = (
    (("--progress",), dict(action=_SWITCH, default=None, help="show a progress bar (default: "
        "when stderr is a terminal)")),
)  # fmt: skip
TABLE: tuple[Option, ...] = (
    (("--delimiter",), dict(type=_delimiter, default=None, help="CSV cell separator: one "
        "character, or tab (default: guessed from the header line among , tab ; |)")),
    (("--drop-missing",), dict(action="store_true", help="drop rows with a missing value (an "
        "empty cell, NA, NaN, ...) in a used column and say how many (default: stop with the "
        "row and column named)")),
)  # fmt: skip

DEMO: tuple[Option, ...] = (
    (("--example",), dict(choices=EXAMPLES, default="sine", help="sine: the 1-D problem with "
        "the lecture's settings (default); sine2: two hidden layers; minibatch: 20,000 points, "
        "batches of 32, against full batch; 2d: the 2-D example with test-set residuals and "
        "surfaces; tanks: the course's next lecture (a neural state-space model of the Cascaded "
        "Tanks benchmark by its simulation error)")),
    (("--out",), dict(default="eqx_ffn_out", help="output folder (default eqx_ffn_out)")),
    (("--steps",), dict(type=_positive_int, help="override the example's step count")),
)  # fmt: skip

FIT: tuple[Option, ...] = (
    (("data",), dict(help="CSV file with a header row, or an .npz archive")),
    (("--out",), dict(required=True, help="output folder")),
    (("--x-cols",), dict(type=_columns, help="input columns, comma separated names or 0-based "
        "indices (default: all but the outputs)")),
    (("--y-cols",), dict(type=_columns, help="output columns (default: the last column)")),
    (("--task",), dict(choices=TASKS, default="auto", help="classify: the y column holds class "
        "labels (text or integers; refused for a continuous column or an id column, most of "
        "whose labels are on one row); regress: numbers to predict; auto (default): classify "
        "when y holds text, or few distinct integers (at most 20, and at most one per 5 rows), "
        "else regress (a note says which when the choice was close)")),
    (("--hidden",), dict(type=_sizes, default=DEFAULT_HIDDEN, help="hidden widths, e.g. 16,16, "
        f"or none (default {','.join(map(str, DEFAULT_HIDDEN))})")),
    (("--activation",), dict(choices=ACTIVATIONS, default=DEFAULT_ACTIVATION,
        help=f"hidden activation (default {DEFAULT_ACTIVATION})")),
    (("--init",), dict(choices=INITS, default=DEFAULT_INIT,
        help=f"weight init (default {DEFAULT_INIT})")),
    (("--optimizer",), dict(choices=OPTIMIZERS, default=DEFAULT_OPTIMIZER,
        help=f"default {DEFAULT_OPTIMIZER}")),
    (("--lr",), dict(type=_positive_float, default=None, help="learning rate, a finite number "
        f"> 0 (default {DEFAULT_LR:g}; lbfgs: its line search)")),
    (("--steps",), dict(type=_positive_int, default=DEFAULT_STEPS, help="most optimisation "
        f"steps (default {DEFAULT_STEPS}; early stopping, or for lm and gauss_newton a "
        "converged loss, may end sooner)")),
    (("--tol",), dict(type=_nonnegative_float, default=None, help="convergence tolerance: "
        "the fit stops (converged) once the optimizer's test passes; lbfgs: largest gradient "
        "entry, lm and gauss_newton: relative gradient, step or decrease, the others: the "
        "epoch's mean loss no longer improving (default: the optimizer's own, as eqx_ffn.fit "
        "uses: lm and gauss_newton 1e-7, lbfgs 1e-5, the others 0, never; 0 runs every step)")),
    (("--batch-size",), dict(type=_positive_int, default=None,
        help="mini-batch size (default: full batch)")),
    (("--l2",), dict(type=_nonnegative_float, default=DEFAULT_L2, help="L2 penalty on the "
        f"weights, in standardised units (default {DEFAULT_L2:g}; 0 for none)")),
    (("--standardize",), dict(action=_SWITCH, default=True, help="standardise the inputs (and, "
        "for regression, the outputs) with the training rows' mean and spread, stored in the "
        "model (default: on)")),
    (("--validation-fraction",), dict(type=_fraction_or_zero,
        default=DEFAULT_VALIDATION_FRACTION, help="share of the training rows held out to "
        f"watch the validation loss (default {DEFAULT_VALIDATION_FRACTION}; 0 for none, which "
        "also turns early stopping off)")),
    (("--early-stopping",), dict(action=_SWITCH, default=True, help="stop when the validation "
        "loss has not improved for --patience evaluations and keep the best model (default: "
        "on)")),
    (("--patience",), dict(type=_positive_int, default=DEFAULT_PATIENCE, help="evaluations "
        f"without improvement before stopping (default {DEFAULT_PATIENCE})")),
    (("--eval-every",), dict(type=_positive_int, default=DEFAULT_EVAL_EVERY,
        help=f"steps between validation evaluations (default {DEFAULT_EVAL_EVERY})")),
    (("--test-fraction",), dict(type=_fraction, default=DEFAULT_TEST_FRACTION,
        help=f"share of rows held out for testing (default {DEFAULT_TEST_FRACTION})")),
    (("--seed",), dict(type=_seed, default=0, help="random seed for the split, the initial "
        f"weights and the batches, 0 to {MAX_SEED} (default 0)")),
    *CHECKPOINT_OPTIONS,
    (("--tensorboard",), dict(default=None, metavar="DIR", help="write the per-step losses "
        "(loss, data_loss, val_loss, as in history.csv) to a TensorBoard event file in DIR while "
        "the fit runs; needs tensorboardX: pip install \"eqx_ffn[tensorboard]\"")),
)  # fmt: skip

PREDICT: tuple[Option, ...] = (
    (("model",), dict(help="model file (model.eqx)")),
    (("data",), dict(help="CSV file with a header row, or an .npz archive")),
    (("--x-cols",), dict(type=_columns, help="input columns (default: the model's)")),
    (("--proba",), dict(action="store_true", help="classifiers: also write each class's "
        "probability, one column per class")),
    (("--out",), dict(default=None, help="CSV to write (default: standard output)")),
)  # fmt: skip

EXPORT: tuple[Option, ...] = (
    (("model",), dict(help="model file (model.eqx, written by eqx-ffn fit or eqx_ffn.save)")),
    (("output",), dict(help="file to write, e.g. model.stablehlo (replaced atomically)")),
    (("--platforms",), dict(type=_platforms, default=None, help="platforms to lower for, "
        f"comma separated from {', '.join(PLATFORMS)} (default: the one JAX runs on here); "
        "the program runs on each")),
)  # fmt: skip

# command -> (its one-line help, its description, its option tables)
COMMAND_TABLE: dict[str, tuple[str, str, tuple[tuple[Option, ...], ...]]] = {
    "demo": (
        "run one of the lecture's examples end to end",
        "Run one of the lecture's examples: train, print a summary, write the figures (PNG) and "
        "the trained model to --out.",
        (CACHE, PROGRESS, DEMO),
    ),
    "fit": (
        "fit a network to a CSV (or NPZ) table",
        "Fit a feedforward network to columns of a table: regression, or classification of a "
        "label column. Holds out --test-fraction of the rows for testing and "
        "--validation-fraction of the rest for early stopping; standardises the data. Writes "
        "model.eqx, metrics.json (every setting, versions, scores), history.csv (the per-step "
        "losses, with and without the penalty), loss.png and, for "
        "regression, parity.png and residuals.png, for classification confusion.png, to --out. "
        "Ctrl-C stops with exit status 130 and writes nothing.",
        (CACHE, PROGRESS, TABLE, FIT),
    ),
    "predict": (
        "predict with a saved model",
        "Predict with a model saved by `eqx-ffn fit` (or eqx_ffn.save). The input columns "
        "default to those the model was fitted on. A classifier writes the class labels (and "
        "with --proba one probability column per class).",
        (CACHE, TABLE, PREDICT),
    ),
    "export": (
        "write a saved model as a StableHLO program that runs without eqx_ffn",
        "Export a model saved by `eqx-ffn fit` (or eqx_ffn.save) through jax.export: a "
        "serialised StableHLO program for inputs (batch, in_size) with a symbolic batch size, "
        "the parameters and, for a standardised model, the scalers inside (a classifier gives "
        "its logits). Read it with JAX alone: jax.export.deserialize(data).call(x). Needs "
        'flatbuffers: pip install "eqx_ffn[export]".',
        (EXPORT,),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The `eqx-ffn` argument parser (standard library only: no JAX is imported)."""
    parser = _Parser(
        prog="eqx-ffn",
        description="Feedforward neural networks on JAX and Equinox: run the lecture's examples, "
        "fit a network to a CSV table (regression or classification), predict with a saved "
        "model, export a model as StableHLO.",
        epilog="Exit status: 0 success; 1 the fit diverged (NaN/inf or rising loss; nothing "
        "written); 2 bad input (one line on stderr); 130 interrupted by Ctrl-C (nothing written); "
        "141 standard output closed early.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (summary, description, tables) in COMMAND_TABLE.items():
        command = sub.add_parser(name, help=summary, description=description)
        for flags, keywords in (option for table in tables for option in table):
            command.add_argument(*flags, **keywords)
    add_sysid_parser(sub)
    return parser
