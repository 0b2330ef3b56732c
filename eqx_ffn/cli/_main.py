"""The `eqx-ffn` command: `demo`, `fit`, `predict`, `export` (`main` parses and dispatches).

Building the parser needs only the standard library, so `eqx-ffn --help` (and every command's
`--help`) answers without importing JAX; each command imports what it uses.

Exit status: 0 success; 1 a fit whose loss became NaN/inf or rose (nothing is written), or an
internal error; 2 bad input (a bad option, an unreadable or malformed file, ...), reported in one
line on stderr, never a traceback; 130 interrupted by Ctrl-C (nothing is written); 141 standard
output closed early (`eqx-ffn predict ... | head`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ._common import (
    EXIT_BROKEN_PIPE,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Diverged,
    Interrupted,
    UsageError,
    ctrl_c_handled,
    ctrl_c_pending,
    install_ctrl_c,
    leave,
    one_line,
    prog,
    setup_cache,
)
from ._demo import demo
from ._export import export
from ._fit import fit
from ._parser import build_parser
from ._predict import predict
from ._sysid import sysid

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": demo,
    "fit": fit,
    "predict": predict,
    "export": export,
    "sysid": sysid,
}


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status (--help, --version, a bad option, no command)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    except UsageError as e:
        print(f"eqx-ffn: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        parser.print_help()
        print(
            "eqx-ffn: error: choose a command: demo, fit or predict; or export (a saved model "
            "as StableHLO)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run `eqx-ffn` with `argv` (default `sys.argv[1:]`); returns the exit status."""
    args = _parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    name = prog(args)
    if argv is None:  # the eqx-ffn program itself
        install_ctrl_c(name)
    try:
        setup_cache(args)
        code = COMMANDS[args.command](args)
        if ctrl_c_pending():  # Ctrl-C during the last renames
            leave(f"{name}: interrupted after the outputs were complete; they were written")
        return code
    except (KeyboardInterrupt, Interrupted) as e:
        text = str(e) if isinstance(e, Interrupted) else "interrupted; nothing written"
        if ctrl_c_handled():
            leave(f"{name}: {text}")
        print(f"{name}: {text}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Diverged as e:
        print(f"{name}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except BrokenPipeError:  # `eqx-ffn predict ... | head`: the reader has gone; say nothing
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_BROKEN_PIPE
    except (ValueError, OSError) as e:  # bad input, incl. UsageError and ModelFileError
        print(f"{name}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"{name}: error: out of memory; use a smaller table or network", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("EQX_FFN_DEBUG"):
            raise
        print(
            f"{name}: internal error: {type(e).__name__}: {one_line(e, 500)} (please report it; "
            "EQX_FFN_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_DIVERGED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
