"""Many processes, one training run: torchrun's process group, rank-0-only output, collectives, self-launch."""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any

from cvatflow.errors import TrainingError


@dataclass(frozen=True)
class World:
    """Where this process stands: `rank` of `size` processes (size 1: no process group, the plain path)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files, events and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def launched() -> World:
    """The World torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK), or SINGLE."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise TrainingError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({exc}); launch with torchrun") from None
    if size <= 1:
        return SINGLE
    return World(rank=rank, size=size, local_rank=local)


def join(world: World, device, timeout_minutes: float) -> None:
    """Join the process group of `world`: nccl on CUDA devices, gloo on CPU, collectives time out after
    `timeout_minutes` (the `dist_timeout` hyperparameter); ranks other than 0 are silenced."""
    import torch.distributed as dist

    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        kwargs["device_id"] = device  # binds the NCCL communicator to this rank's GPU
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
    silence(world)


def silence(world: World) -> None:
    """Ranks other than 0 stop printing to stdout: events and logs come once, from rank 0 (errors still reach
    stderr)."""
    if not world.main and sys.stdout is sys.__stdout__:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def leave() -> None:
    """Destroy the process group (so torchrun's workers exit cleanly)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Wait for every rank (after rank 0 saved a checkpoint: nobody runs ahead of a file being written)."""
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def sum_all(world: World, tensor):
    """`tensor` summed over ranks (in place; a float tensor on the process group's device); itself at size 1."""
    if world.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather(world: World, value: Any) -> list[Any] | None:
    """Every rank's `value` (picklable) on rank 0, in rank order; None on other ranks; [value] at size 1."""
    if not world.distributed:
        return [value]
    import torch.distributed as dist

    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(value, out, dst=0)
    return out


def share(world: World, value: Any) -> Any:
    """Rank 0's `value` (picklable) on every rank."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_state(world: World, module) -> None:
    """Rank 0's parameters and buffers copied into every rank's `module` (after rank 0 loaded best.pt)."""
    if world.distributed:
        import torch.distributed as dist

        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def broadcast_buffers(world: World, module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) into every rank's `module`: DDP syncs them at each forward
    from rank 0's, but each rank's last forward then updated its own; evaluation and checkpoints use rank 0's."""
    if world.distributed:
        import torch.distributed as dist

        for tensor in module.buffers():
            dist.broadcast(tensor, src=0)


def nproc_auto() -> int:
    """`--nproc-per-node auto`: the GPUs of this machine, 1 without a GPU (one CPU process uses every core)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def relaunch(nproc: int, module: str, args: list[str]) -> int:
    """Run `python -m <module> <args>` in `nproc` processes on this machine under torchrun (`--standalone`: a
    local rendezvous on a free port), this process being its launcher; returns the exit status
    (cvatflow.training.launch: 128 + signal for a killed worker). `args` is a list, never a shell string."""
    from cvatflow.training.launch import main as launch

    return launch(["--standalone", f"--nproc-per-node={nproc}", "-m", module, *args])


def strip_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE` (the self-launch must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out
