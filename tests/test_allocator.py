"""The C heap set up for training: a freed block is reused without new page faults (glibc only)."""

import subprocess
import sys

import pytest

from growlib.harness.allocator import _libc

# In a fresh process: a 64 MB tensor allocated, filled and freed, then a second one of the same size;
# prints the minor page faults the second one caused.
_PROBE = """
import resource, sys, torch
from growlib.harness.allocator import keep_freed_memory_for_reuse
if sys.argv[1] == "keep":
    assert keep_freed_memory_for_reuse()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = torch.empty(16 * 2**20).fill_(1.0)
del a
before = faults()
b = torch.empty(16 * 2**20).fill_(2.0)
print(faults() - before)
"""


def _second_allocation_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_libc() is None, reason="mallopt and malloc_trim are glibc's")
def test_kept_heap_reuses_a_freed_block_without_page_faults():
    pages = 64 * 2**20 // 4096  # 16,384 pages of 4 KiB
    assert _second_allocation_faults("default") > pages // 2  # mapped afresh: the kernel zeroes every page
    assert _second_allocation_faults("keep") < 100  # the freed block, still resident, is reused
