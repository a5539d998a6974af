"""The C heap under PyTorch's CPU tensors: how a training process sets it up, and what it gives back.

PyTorch takes CPU tensors from the C library's ``malloc``. glibc serves a request from its
heap, or, above a threshold, with a fresh ``mmap`` that ``free`` unmaps. The threshold moves:
after a mapped block is freed it rises to that block's size (at most 32 MiB), so most of a
step's tensors end up in the heap, where a freed block stays resident and is reused only by a
request it can hold. Blocks over 32 MiB (the recipe's expert gradients; the activations of its
wide layers) are mapped afresh at every step, and the kernel zeroes each page again at its
first touch: gigabytes of page faults per step of the recipe's MoE.

:func:`keep_freed_memory_for_reuse` makes the heap take every block (``M_MMAP_MAX = 0``) and
keep what is freed (``M_TRIM_THRESHOLD`` high): once the heap has settled, a step reuses the
pages of the step before and faults none. The price is the heap's slack, freed blocks that no
request of the next step fits, which the memory plan counts (``growlib.memory.HEAP_SLACK``).
Between phases :func:`release_freed_memory` hands every free page back to the system.

An FSDP process (growlib.parallel) allocates and frees its blocks' gathered weights and their
gradients' reduce buffers at every step, between activations that live longer; kept in the heap
they fragment it step after step, and the process's memory climbs while its live tensors do
not. :func:`map_large_blocks` maps every block over 4 MiB instead (page faults again, for blocks
this size and up, in exchange for a peak that stays put).

Only glibc (Linux) has these controls; elsewhere both functions do nothing but collect garbage.
``python -m growlib bench memory`` measures the peaks this gives; docs/memory.md records them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
FSDP_MMAP_THRESHOLD = 4 * 2**20  # bytes: larger blocks are mapped and unmapped (map_large_blocks)
_NEVER_TRIM = 2**31 - 1  # bytes free at the heap's top before free() returns them: in effect never


@functools.cache
def _libc():
    """glibc's entry points, or None where this C library has no mallopt/malloc_trim (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def has_heap_controls() -> bool:
    """True where the C library is glibc, so a CPU training process keeps its heap (and the plan
    counts the heap's slack); changes nothing."""
    return _libc() is not None


def keep_freed_memory_for_reuse() -> bool:
    """Serve every CPU tensor from the heap and keep freed blocks there; True where glibc took it.

    Process-wide and lasting (it affects every later allocation); a training entry point calls it
    once (``python -m growlib run``, the notebooks' sessions, the benchmarks).
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))


@functools.cache
def map_large_blocks(threshold: int = FSDP_MMAP_THRESHOLD) -> bool:
    """Map every block over ``threshold`` bytes afresh and unmap it when freed (a fixed threshold);
    True where glibc took it. For FSDP processes: see the module's docstring."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def release_freed_memory() -> None:
    """Give back to the system what Python and the C heap hold but no longer use.

    A new phase allocates other sizes (a model twice as wide) and can reuse little of what the
    last phase left in the heap, so that would count in the new phase's peak. ``malloc_trim``
    returns every free page of every heap (a few milliseconds).
    """
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
