"""``python -m growlib``: see :mod:`growlib.cli`."""

import sys

from .cli import main

sys.exit(main())
