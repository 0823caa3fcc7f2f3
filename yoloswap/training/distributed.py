"""Many GPUs the standard way: ``torchrun --nproc_per_node N -m yoloswap train ...`` and ``torch.distributed``.

One process per device; torchrun sets RANK / LOCAL_RANK / WORLD_SIZE. Without them everything here is a no-op,
so the same training code serves CPU, one GPU and many.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from yoloswap.errors import UsageError
from yoloswap.procs import die_with_parent


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
    """Join the process group (NCCL on CUDA, Gloo on CPU); each rank gets its own GPU (that of its LOCAL_RANK)."""
    if not d.enabled:
        return device
    if device.type == "cuda":
        if device.index is not None:
            raise UsageError(
                f"--device {device} under torchrun: each process takes the GPU of its local rank; pass --device cuda "
                "(choose the GPUs with CUDA_VISIBLE_DEVICES)"
            )
        if d.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"more processes than GPUs: local rank {d.local_rank} has none (only {torch.cuda.device_count()} "
                f"visible on this machine); use torchrun --nproc_per_node {torch.cuda.device_count()} or fewer"
            )
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        stop_with_launcher()
        dist.init_process_group(backend=backend_for(device))
    return device


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def stop_with_launcher() -> None:
    """Die when the launcher does: workers run in their own process group, so a ``kill -9`` of torchrun never
    reaches them. SIGTERM stops a rank at its next safe point, as a scheduler's preemption would."""
    die_with_parent(signal.SIGTERM)


def describe(d: Dist, device: torch.device, batch_size: int) -> str:
    """The start line of a run: processes, backend and what --batch-size means per process."""
    if not d.enabled:
        return f"processes: 1 (device {device}); batch {batch_size}"
    per = per_process_batch(batch_size, d.world_size)
    note = "" if per * d.world_size == batch_size else f"; {per * d.world_size} in all, not {batch_size}"
    return (f"processes: {d.world_size} ({backend_for(device)}, rank 0 writes the run folder); batch {batch_size} "
            f"over all of them = {per} per process{note}")


def per_process_batch(batch_size: int, world_size: int) -> int:
    """``--batch-size`` is the total over all processes; each takes its share (at least 1)."""
    return max(batch_size // world_size, 1)


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
