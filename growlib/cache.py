"""``data/cache``: what growlib makes once and reuses (tokenizers, token files, the bundled text).

Each thing in it appears complete or not at all, and when several processes
need the same thing one makes it while the others wait (:func:`exclusive`).
``GROWLIB_DATA_DIR`` moves the whole ``data`` folder.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

DATA_DIR = Path(os.environ.get("GROWLIB_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


def cache_dir() -> Path:
    """``$GROWLIB_DATA_DIR/cache`` (read now, so a test can point it elsewhere), else ``data/cache``."""
    return Path(os.environ.get("GROWLIB_DATA_DIR", DATA_DIR)) / "cache"


@contextmanager
def exclusive(path: Path):
    """Hold an exclusive lock on the file ``path`` (created if needed) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks while another process holds it
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def temporary_beside(path: Path) -> Path:
    """A name next to ``path`` for this process to write before renaming it into place."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def written_in_place(path: Path, sync: bool = False):
    """Yield a temporary name beside ``path``; when the block ends without error, rename it onto ``path``.

    Readers see the old file or the new one, never half of either: a rename within one folder is
    atomic. ``sync`` flushes the new file to disk first, so a crash right after cannot leave an
    empty file behind the new name. On an error the temporary file is removed and ``path`` kept.
    """
    tmp = temporary_beside(path)
    try:
        yield tmp
        if sync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists() and tmp.is_file():
            tmp.unlink()
