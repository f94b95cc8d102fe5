"""Multi-process plumbing for ``torchrun``: process groups, deterministic sharding, reductions.

``torchrun --nproc_per_node=K -m msl_recon.cli.main train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and
starts a process group (NCCL on CUDA, gloo on CPU). Without them everything degrades to a single
process and the functions here are no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "cleanup_distributed",
    "init_distributed",
    "parameter_checksum",
    "replica_checksums",
    "shard_batch",
    "stream_indices",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes
    ----------
    rank, world_size, local_rank : int
        Global rank, number of processes, rank on this node.
    backend : str or None
        ``"nccl"``, ``"gloo"`` or ``None`` (single process).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True when a process group with more than one process is active."""
        return self.backend is not None and self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0: the only rank that writes files and shows progress."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Start the process group if launched by ``torchrun`` (or any launcher setting the env).

    Parameters
    ----------
    device : torch.device
        The training device; CUDA selects NCCL and pins ``cuda:LOCAL_RANK``, CPU selects gloo.

    Returns
    -------
    DistInfo
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group started by :func:`init_distributed` (no-op otherwise)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Synchronise all ranks (no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over ranks (returns a new tensor; identity for a single process)."""
    if not info.enabled:
        return value.detach().clone()
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def shard_batch(global_indices: np.ndarray, info: DistInfo) -> np.ndarray:
    """This rank's share of one global batch: the contiguous block ``rank`` of ``world_size``.

    Parameters
    ----------
    global_indices : ndarray of int, shape ``(batch_size * world_size,)``
        Sample indices of the global batch, in stream order.
    info : DistInfo

    Returns
    -------
    ndarray, shape ``(batch_size,)``
        Disjoint across ranks; their concatenation in rank order is ``global_indices``.
    """
    n = global_indices.shape[0]
    if n % info.world_size:
        raise ValueError(f"global batch of {n} does not split over {info.world_size} ranks")
    per = n // info.world_size
    return global_indices[info.rank * per : (info.rank + 1) * per]


def parameter_checksum(module: torch.nn.Module) -> int:
    """A bit-exact checksum of a module's parameters and buffers (any change of any bit shows).

    Each tensor is reinterpreted as integers of its element size and summed with position
    weights, tensor by tensor (no copy of the whole model).
    """
    total = 0
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    tensors = list(module.parameters()) + list(module.buffers())
    for k, t in enumerate(tensors):
        flat = t.detach().contiguous().reshape(-1)
        if flat.numel() == 0:
            continue
        bits = flat.view(ints[flat.element_size()]).to(torch.int64)
        w = torch.arange(flat.numel(), device=flat.device, dtype=torch.int64) % 9973 + 1
        total += (k + 1) * int((bits * w).sum().item())
    return total % (2**61 - 1)


def replica_checksums(module: torch.nn.Module, info: DistInfo) -> list[int]:
    """:func:`parameter_checksum` of every rank (``[own]`` for a single process)."""
    own = parameter_checksum(module)
    if not info.enabled:
        return [own]
    out: list[int] = [0] * info.world_size
    dist.all_gather_object(out, own)
    return [int(v) for v in out]


def stream_indices(seed: int, n: int, start: int, count: int) -> np.ndarray:
    """Entries ``start .. start+count`` of the data stream (concatenated epoch permutations).

    Epoch ``e`` is ``default_rng([seed, e]).permutation(n)``: a pure function of (seed, epoch).
    """
    out = np.empty(count, dtype=np.int64)
    pos, filled = start, 0
    while filled < count:
        epoch, off = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = min(n - off, count - filled)
        out[filled : filled + take] = perm[off : off + take]
        filled += take
        pos += take
    return out
