"""DDP set-up under `torchrun` (gloo on CPU, nccl on GPU) and small collective helpers.

A process is distributed when torchrun's `WORLD_SIZE`/`RANK`/`LOCAL_RANK` variables say
so; otherwise every helper degrades to the single-process case.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands.

    Attributes:
      world_size: number of training processes.
      rank: this process's global rank (0 writes checkpoints and logs).
      local_rank: rank on this machine (selects the GPU).
      device: the device this process trains on.
    """

    world_size: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun; pick this process's device.

    In check mode (`asrtools --check`, run by a job runner on its submit host before it
    submits the job) nothing is initialised and the device is the CPU: the training stage is
    only fingerprinted, with the world size the job will have, `ASRTOOLS_CHECK_WORLD_SIZE`
    (set by the runner; default 1).

    Args:
      device: "cpu" or "cuda".
    """
    from asrtools.pipeline import current_stage_mode

    if current_stage_mode().check:
        return DistInfo(int(os.environ.get("ASRTOOLS_CHECK_WORLD_SIZE", "1")), 0, 0, torch.device("cpu"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return DistInfo(world_size, rank, local_rank, torch_device)


def cleanup_distributed() -> None:
    """Destroy the process group if one was created."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank (no-op without a process group, e.g. in check mode)."""
    if not info.distributed or not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not info.distributed:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True if `flag` is True on any rank."""
    if not info.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def sum_over_ranks(values: List[float], info: DistInfo) -> List[float]:
    """Element-wise sum of `values` over ranks."""
    if not info.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.distributed:
        dist.barrier()
