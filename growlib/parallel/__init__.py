"""Training across processes on PyTorch's own stack: torchrun, FSDP2, DDP, DCP.

Taught in notebook 05. ``torchrun --nproc-per-node N -m growlib run ...`` starts N
copies of the run; :func:`~growlib.parallel.group.from_torchrun` joins them into one
process group. Every process draws the same global batch and trains on its own
rows of it (:meth:`Parallel.rows`), so what is trained does not depend on N.

- :mod:`.group`: the process group, the batch rows of each process, the reductions.
- :mod:`.sharding`: a model shared out from rank 0 (FSDP2 shards, DDP replicas),
  gathered back to rank 0 between phases (growth runs there on full tensors).
- :mod:`.dcp`: sharded resume checkpoints (``torch.distributed.checkpoint``),
  loadable by any number of processes, one included.
"""

from .group import SINGLE, Parallel, from_torchrun, in_torchrun

__all__ = ["SINGLE", "Parallel", "from_torchrun", "in_torchrun"]
