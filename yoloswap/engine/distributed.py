"""Many GPUs the standard way: ``torchrun --nproc_per_node N -m yoloswap train ...`` and ``torch.distributed``.

One process per device; torchrun sets RANK / LOCAL_RANK / WORLD_SIZE. Without them everything here is a no-op,
so the same training code serves CPU, one GPU and many.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0 evaluates, logs and writes the run folder."""
        return self.rank == 0


def from_env() -> Dist:
    return Dist(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def setup(d: Dist, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, Gloo on CPU); each rank gets its own GPU."""
    if not d.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast(d: Dist, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a run folder, a refitted epoch count)."""
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(d: Dist, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP with SyncBatchNorm on CUDA. Frozen parameters have ``requires_grad=False``, so DDP never waits for
    their gradients (no "unused parameters" error with frozen stages)."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
