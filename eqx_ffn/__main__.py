"""`python -m eqx_ffn` is the `eqx-ffn` command."""

import sys

from ._cli import main

sys.exit(main())
