"""The C heap set up for training: a step's freed blocks are reused by the next step without page faults (glibc only)."""

import subprocess
import sys

import pytest

from growlib.harness.memory.heap import _libc

# In a fresh process: "steps" that each make tensors of a few sizes (two of 64 MB), use them and
# free them all, as a training step does with its activations; prints the minor page faults of
# the fourth step. (A single block freed and asked for again is not a fair probe: PyTorch's
# aligned allocation asks for a little more than the block it freed.)
_PROBE = """
import resource, sys, torch
from growlib.harness.memory.heap import keep_freed_memory_for_reuse
if sys.argv[1] == "keep":
    assert keep_freed_memory_for_reuse()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    tensors = [torch.empty(n).fill_(1.0) for n in (16 * 2**20, 4 * 2**20, 16 * 2**20, 2**20)]
    return sum(float(t[0]) for t in tensors)
for _ in range(3):
    step()
before = faults()
step()
print(faults() - before)
"""


def _fourth_step_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_libc() is None, reason="mallopt and malloc_trim are glibc's")
def test_kept_heap_serves_the_next_step_without_page_faults():
    large_pages = 2 * 64 * 2**20 // 4096  # the two 64 MB tensors: 32,768 pages of 4 KiB
    assert _fourth_step_faults("default") > large_pages // 2  # mapped afresh: the kernel zeroes every page
    assert _fourth_step_faults("keep") < 100  # the last step's freed blocks, still resident, are reused


# In a fresh process: a 16 MB tensor made, used and freed; prints the resident memory (MB) it left
_RETURNED = """
import sys, torch
from growlib.harness.memory.heap import keep_freed_memory_for_reuse, map_large_blocks
from growlib.process_memory import current_rss
assert (map_large_blocks() if sys.argv[1] == "map" else keep_freed_memory_for_reuse())
before = current_rss()
t = torch.empty(4 * 2**20).fill_(1.0)  # 16 MB
del t
print(round((current_rss() - before) / 2**20))
"""


@pytest.mark.skipif(_libc() is None, reason="mallopt is glibc's")
def test_fsdp_processes_hand_large_blocks_back_when_freed():
    left = {mode: int(subprocess.run([sys.executable, "-c", _RETURNED, mode], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1]) for mode in ("map", "keep")}
    assert left["map"] < 2  # unmapped at once: nothing to fragment the heap with
    assert left["keep"] >= 15  # the kept heap holds on to it for the next step
