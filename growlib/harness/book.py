"""``python -m growlib book``: build the tutorial series as a static website in ``build/book/``.

It runs ``scripts/build_book.sh`` of the source checkout this package is imported from (the book
is built from the checkout's notebooks and pages, which an installed wheel does not carry).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_book.sh"


def build_book(script: Path = BUILD_SCRIPT) -> int:
    """Run the book's build script with this interpreter; its exit status."""
    if not script.is_file():
        raise ValueError(f"python -m growlib book builds from a source checkout of growlib (pip install -e .); "
                         f"its build script {script} does not exist")
    return subprocess.run(["bash", str(script)], env={**os.environ, "PYTHON": sys.executable}).returncode
