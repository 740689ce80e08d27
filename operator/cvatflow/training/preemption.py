"""SIGTERM during training (a stopped run, a preempted pod): finish the step, write last.pt, exit 143."""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Self

from cvatflow.training import distributed
from cvatflow.training.distributed import World

# 128 + SIGTERM: the status a pod ended by SIGTERM reports, which the templates' retryStrategy retries.
EXIT_CODE = 128 + signal.SIGTERM


class Preemption:
    """While entered, SIGTERM only sets a flag; `asked(world)` says at a step's end whether any rank got it.

    Kubernetes sends SIGTERM and waits terminationGracePeriodSeconds (30 s by default) before SIGKILL; the local
    executor's Stop and Terminate do the same (CVATFLOW_STOP_GRACE). One step and a last.pt fit in that time on
    a GPU; a step that does not is SIGKILLed, and the run resumes from the last checkpoint written before.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def asked(self, world: World, device=None) -> bool:
        """Whether any rank has received SIGTERM; under DDP every rank calls this at the same step (an
        all-reduce of one float on `device`, the process group's device)."""
        if not world.distributed:
            return self.received
        import torch

        flag = torch.tensor([1.0 if self.received else 0.0], device=device)
        return bool(distributed.sum_all(world, flag).item() > 0)


def ignore_in_workers() -> None:
    """DataLoader workers share the trainer's process group and would die of its SIGTERM, failing the step
    that is to finish; they ignore it and end with the trainer."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
