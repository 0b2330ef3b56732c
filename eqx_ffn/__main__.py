"""`python -m eqx_ffn` is the `eqx-ffn` command."""

import sys

from .cli._main import main

sys.exit(main())
