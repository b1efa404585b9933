"""The warning signal (SIGUSR2, which a Slurm job asks for before its time limit or a preemption): the
handler only sets a flag; the loop reads it after its next step, stops there and writes a mid-epoch
checkpoint (``trainer.loop.run``), from which the job's next start continues at the following step.

Under torchrun the ranks must stop at the same step, and agreeing on it is a collective with a read on
the host: asked at every step, it would hold each step's CPU until the slowest rank got there (and, on
the GPU, until its queued work had run). So the ranks agree only every ``AGREE_EVERY`` steps and at each
epoch's last step, over a CPU tensor (``World.any``), and stop at the first agreement after the signal.
A run alone reads its flag at every step, with no collective at all."""

from __future__ import annotations

import signal
import threading

from trainer.parallel.distributed import World
from trainer.protocol import WARNING_SIGNAL, Warned

# Steps between the ranks' agreements. The warning comes minutes before the kill (the dispatcher's
# --warning-lead, 180 s by default): 20 steps, then the checkpoint, take seconds on a GPU, and well
# under a minute even at a large model's slow steps.
AGREE_EVERY = 20

_received = threading.Event()


def listen() -> None:
    """Set the flag on the warning signal, from now on (the main thread only may install a handler); a
    signal before this call is forgotten."""
    _received.clear()
    signal.signal(signal.Signals[WARNING_SIGNAL], lambda *_: _received.set())


def warned(world: World, *, step: int, steps_per_epoch: int) -> bool:
    """Whether to stop after global step ``step`` (the steps done, from 1): this process had the signal,
    or, with several ranks, some rank had it by this agreement. Every rank asks after each step."""
    if not world.distributed:
        return _received.is_set()
    if step % AGREE_EVERY and step % steps_per_epoch:
        return False
    return world.any(_received.is_set())


def stopped(*, epoch: int, batch: int, step: int) -> Warned:
    """What the trainer raises once its mid-epoch checkpoint is written."""
    return Warned(
        f"{WARNING_SIGNAL} received: checkpointed after batch {batch} of epoch {epoch} (step {step}), "
        "to resume at the next step"
    )
