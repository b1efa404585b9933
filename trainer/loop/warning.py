"""The warning signal (SIGUSR2, which a Slurm job asks for before its time limit or a preemption): the
handler only sets a flag; the loop reads it at its next step and stops there, and the run resumes from
its last checkpoint in the job's next start. Under torchrun the ranks agree on the step they stop at."""

from __future__ import annotations

import signal
import threading

import torch

from trainer.parallel.distributed import World
from trainer.protocol import WARNING_SIGNAL, Warned

_received = threading.Event()


def listen() -> None:
    """Set the flag on the warning signal, from now on (the main thread only may install a handler)."""
    signal.signal(signal.Signals[WARNING_SIGNAL], lambda *_: _received.set())


def stop_if_warned(world: World, device: torch.device) -> None:
    """Raise Warned once any rank has had the signal; every rank calls this at the same step (``device``:
    where the ranks' collectives run, a GPU under NCCL)."""
    warned = _received.is_set()
    if world.distributed:
        flag = torch.tensor([1.0 if warned else 0.0], device=device)
        warned = world.all_sum(flag).item() > 0
    if warned:
        raise Warned(f"{WARNING_SIGNAL} received: stopping to resume from the last checkpoint")
