"""``python -m growlib``: see :mod:`growlib.harness.cli`."""

import sys

from .harness.cli import main

sys.exit(main())
