"""What every `eqx-ffn` command shares: exit statuses, one-line errors and notes, the output
folder written whole or not at all (Ctrl-C included), the compilation cache.

Standard library only at import time (`eqx-ffn --help` loads no JAX).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # as if killed by SIGPIPE, the shell's convention

MAX_INT32 = 2**31 - 1
MAX_SEED = 2**32 - 1


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit status 2."""


class Interrupted(Exception):
    """The fit was stopped by Ctrl-C; nothing is written."""


class Diverged(Exception):
    """The training loss became NaN or inf; nothing is written."""


# -- notes and errors on stderr ----------------------------------------------------------------


def prog(args: argparse.Namespace) -> str:
    """`eqx-ffn <command>`, the prefix of every line on stderr."""
    return f"eqx-ffn {args.command}"


def note(args: argparse.Namespace, text: str) -> None:
    """Print `text` on stderr now, prefixed with the command."""
    print(f"{prog(args)}: {text}", file=sys.stderr, flush=True)


def defer(args: argparse.Namespace, text: str) -> None:
    """A note printed once every check has passed (so a failure stays one line on stderr)."""
    args.deferred = [*getattr(args, "deferred", []), text]


def flush_notes(args: argparse.Namespace) -> None:
    """Print the deferred notes."""
    for text in getattr(args, "deferred", []):
        note(args, text)
    args.deferred = []


def one_line(e: object, limit: int = 2000) -> str:
    """`str(e)` on one line, cut at `limit` characters."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


def summary_line(label: str, history: Any) -> str:
    """One line on a `History`: steps, final loss, speed, compile and total time."""
    rate = history.steps / history.run_time if history.run_time > 0 else float("inf")
    return (
        f"{label}: {history.steps} steps, final training MSE {history.final_loss:.4g}, "
        f"{rate:,.0f} steps/s, compile {history.compile_time:.2f} s, "
        f"total {history.wall_time:.2f} s ({history.stop_reason})"
    )


# -- files -------------------------------------------------------------------------------------


def check_file(path: str, what: str) -> Path:
    """A readable regular file, or a `UsageError` naming `what` and the path (one line)."""
    from .._validation import check_regular_file

    try:
        check_regular_file(path, what)
    except (OSError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    return Path(path)


def check_out(out: str) -> Path:
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


# -- Ctrl-C and staged outputs -----------------------------------------------------------------


class CtrlC:
    """Ctrl-C for the eqx-ffn program (not for `main([...])` called from Python).

    The first SIGINT raises `KeyboardInterrupt` as usual, and starts a watchdog: if the process
    is still running `grace` seconds later (a KeyboardInterrupt raised inside compiled code's
    Python callbacks can be swallowed there), the watchdog says so and exits with status 130.
    Nothing is written meanwhile: outputs are staged and moved into place by `Staging.commit`,
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
        leave(f"{self.prog}: interrupted; nothing written")


CTRL_C: CtrlC | None = None
"""The program's Ctrl-C handler; set by `install_ctrl_c` when `main` runs as the program."""


def install_ctrl_c(prog: str) -> None:
    """Handle Ctrl-C as the eqx-ffn program does (`CtrlC`)."""
    global CTRL_C
    CTRL_C = CtrlC(prog)
    CTRL_C.install()


def ctrl_c_handled() -> bool:
    """Whether the program's Ctrl-C handler is installed."""
    return CTRL_C is not None


def ctrl_c_pending() -> bool:
    """Whether Ctrl-C was pressed while the outputs were being moved into place."""
    return CTRL_C is not None and CTRL_C.pending


TEMPORARY: set[Path] = set()
"""Staged outputs, removed if the watchdog ends the process."""


def leave(message: str) -> None:
    """Remove the temporary outputs, print `message` and end the process with status 130 at
    once: Ctrl-C can land while XLA compiles on other threads, and tearing the interpreter down
    under them crashes (SIGSEGV)."""
    import shutil

    for path in list(TEMPORARY):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


class Staging:
    """Write outputs into a temporary folder; move them into place only when all succeeded."""

    def __init__(self, out: str | Path):
        import tempfile

        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} exists and is not a folder")
        parent = self.out.parent if str(self.out.parent) else Path(".")
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=parent))
        TEMPORARY.add(self.tmp)
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        """Where to write the output `name` (staged)."""
        self.names.append(name)
        return self.tmp / name

    def commit(self) -> list[Path]:
        """Move every staged output into the folder; returns their final paths."""
        import shutil

        if CTRL_C is not None:
            if CTRL_C.pending:
                raise KeyboardInterrupt
            CTRL_C.committing = True
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            done = []
            for name in self.names:
                os.replace(self.tmp / name, self.out / name)
                done.append(self.out / name)
        finally:
            if CTRL_C is not None:
                CTRL_C.committing = False
        shutil.rmtree(self.tmp, ignore_errors=True)
        TEMPORARY.discard(self.tmp)
        return done

    def abort(self) -> None:
        """Remove the staged outputs."""
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
        TEMPORARY.discard(self.tmp)


# -- JAX-side helpers (imported when a command runs) -------------------------------------------


def setup_cache(args: argparse.Namespace) -> None:
    """Turn the persistent compilation cache on, unless `--no-cache` (a bad folder: one line)."""
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
            f"cannot use the compilation cache folder {folder} ({one_line(e)}); point "
            "--cache-dir or EQX_FFN_CACHE_DIR at a folder of your own, or pass --no-cache"
        ) from None
    for w in caught:
        note(args, f"warning: {one_line(w.message)}")


def float_dtype() -> Any:
    """The float dtype JAX computes in here: float32, or float64 under JAX_ENABLE_X64."""
    import jax
    import numpy as np

    return np.float64 if jax.config.read("jax_enable_x64") else np.float32


def predict_proba(model: Any, x: Any) -> Any:
    """Class probabilities `(N, K)`: the softmax of the network's outputs, as NumPy."""
    import numpy as np

    from ..training._predict import predict_proba

    return np.asarray(predict_proba(model, x))


def number(text: str) -> float:
    """An option's finite number (argparse `type=`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def nonnegative_number(text: str) -> float:
    """An option's finite number >= 0 (argparse `type=`), e.g. `--checkpoint-every` seconds."""
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


# -- checkpoints: `eqx-ffn fit` and `eqx-ffn sysid fit` --------------------------------------

CHECKPOINT_NAME = "fit.ckpt"
"""The checkpoint file in `--checkpoint DIR`."""

CHECKPOINT_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--checkpoint",), dict(default=None, metavar="DIR", help="write the fit's state to "
        "DIR/fit.ckpt (atomically) every --checkpoint-every seconds, when it ends and on Ctrl-C, "
        "which then keeps it; continue with the same command plus --resume DIR")),
    (("--checkpoint-every",), dict(type=nonnegative_number, default=60.0, metavar="SECONDS",
        help="seconds between checkpoints (default 60; 0: after every program call)")),
    (("--resume",), dict(default=None, metavar="DIR", help="continue the fit checkpointed in "
        "DIR/fit.ckpt: give the same data and options as the command that wrote it (checked); "
        "the result is the uninterrupted fit's, and checkpoints go on into DIR")),
)  # fmt: skip
"""`--checkpoint DIR`, `--checkpoint-every SECONDS`, `--resume DIR` (argparse's arguments)."""


def checkpoint_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The fit's `checkpoint`, `checkpoint_every` and `resume` from the checkpoint options:
    the file `DIR/fit.ckpt` of `--checkpoint DIR` (else of `--resume DIR`)."""
    folder = args.checkpoint or args.resume
    return dict(
        checkpoint=None if folder is None else os.path.join(folder, CHECKPOINT_NAME),
        checkpoint_every=args.checkpoint_every,
        resume=False if args.resume is None else os.path.join(args.resume, CHECKPOINT_NAME),
    )


def interrupted(args: argparse.Namespace, steps: int) -> Interrupted:
    """The error an interrupted fit stops the command with (exit 130): what keeps the fit."""
    kept = checkpoint_settings(args)["checkpoint"]
    if kept is None:
        return Interrupted(f"interrupted after {steps} steps; nothing written")
    return Interrupted(
        f"interrupted after {steps} steps; the checkpoint {kept} keeps the fit: run the same "
        f"command with --resume {args.checkpoint or args.resume} to continue"
    )
