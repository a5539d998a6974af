"""This process's memory, as the operating system reports it: resident now, its peak, fresh pages.

The readings every memory figure in growlib starts from (Linux's ``/proc`` and ``getrusage``,
whose ``ru_maxrss`` is in KiB on Linux and in bytes on macOS: converted here, once).
"""

from __future__ import annotations

import os
import resource
import sys

_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # bytes per ru_maxrss unit


def current_rss() -> float:
    """Resident memory of this process now, in bytes (Linux); where there is no /proc (macOS), its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return lifetime_peak_rss()


def lifetime_peak_rss(children: bool = False) -> float:
    """The largest resident memory this process has had (``children``: or any of its finished children), bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return float(peak) * _MAXRSS_UNIT


def minor_page_faults() -> int:
    """Fresh pages this process has touched so far (minor page faults; each one a page the kernel zeroed)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
