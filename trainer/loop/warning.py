"""The warning signal (SIGUSR2, which a Slurm job asks for before its time limit or a preemption): the
handler only sets a flag; the loop reads it after its next step, stops there and writes a mid-epoch
checkpoint (``trainer.loop.run``), from which the job's next start continues at the following step.
Under torchrun the ranks agree on the step they stop at."""

from __future__ import annotations

import signal
import threading

import torch

from trainer.parallel.distributed import World
from trainer.protocol import WARNING_SIGNAL, Warned

_received = threading.Event()


def listen() -> None:
    """Set the flag on the warning signal, from now on (the main thread only may install a handler); a
    signal before this call is forgotten."""
    _received.clear()
    signal.signal(signal.Signals[WARNING_SIGNAL], lambda *_: _received.set())


def warned(world: World, device: torch.device) -> bool:
    """Whether any rank has had the signal; every rank asks at the same step (``device``: where the ranks'
    collectives run, a GPU under NCCL)."""
    received = _received.is_set()
    if world.distributed:
        flag = torch.tensor([1.0 if received else 0.0], device=device)
        received = world.all_sum(flag).item() > 0
    return received


def stopped(*, epoch: int, batch: int, step: int) -> Warned:
    """What the trainer raises once its mid-epoch checkpoint is written."""
    return Warned(
        f"{WARNING_SIGNAL} received: checkpointed after batch {batch} of epoch {epoch} (step {step}), "
        "to resume at the next step"
    )
