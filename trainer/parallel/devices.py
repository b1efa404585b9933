"""Which device a process trains on: ``runtime.device`` checked against what this machine has.

- ``cuda`` / ``cuda:N`` where CUDA cannot be used fails at once, with PyTorch's own reason (a driver
  too old for this PyTorch, no driver, a CPU-only build, an empty CUDA_VISIBLE_DEVICES); ``cuda:N``
  beyond the visible GPUs fails with their count instead of "invalid device ordinal" mid-run.
- ``auto`` trains on the CPU when CUDA cannot be used, and says why (``DeviceChoice.fallback``):
  the run's start event and its page carry the note, so a GPU machine that trains on its CPU is seen.
- With several processes, ``cuda`` is the GPU of the process's local rank.

``check_cuda`` is what a GPU worker asks before it claims a run (``python -m trainer run --check-cuda N``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch

from trainer.parallel.distributed import World


class DeviceError(RuntimeError):
    """``runtime.device`` names a device this process cannot use; the message says why."""


@dataclass(frozen=True)
class CudaState:
    """What this process can see of CUDA: ``problem`` is None when it can be used."""

    problem: str | None
    count: int


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    fallback: str | None = None  # why ``auto`` trains on the CPU; None when it trains where asked


def _visible() -> str:
    return f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}"


def cuda_state() -> CudaState:
    """Whether CUDA can be used here, and why not in PyTorch's words: ``is_available()`` only says False,
    while initialising CUDA raises the reason (no driver, a driver too old, no GPU visible)."""
    if torch.version.cuda is None:
        return CudaState(f"this PyTorch ({torch.__version__}) is built without CUDA", 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            return CudaState(None, torch.cuda.device_count())
    try:
        torch.cuda.init()
    except (RuntimeError, AssertionError) as exc:
        reason = str(exc).strip()
    else:
        reason = "; ".join(str(warning.message) for warning in caught) or "no CUDA device is visible"
    return CudaState(f"{reason} ({_visible()})", 0)


def choose_device(name: str, world: World, cuda: CudaState | None = None) -> DeviceChoice:
    """``runtime.device`` for this process; ``cuda``: the CUDA state (default: probed here)."""
    if name == "cpu":
        return DeviceChoice(torch.device("cpu"))
    cuda = cuda or cuda_state()
    if cuda.problem is not None:
        if name == "auto":
            return DeviceChoice(
                torch.device("cpu"), fallback=f"runtime.device is auto and CUDA cannot be used: {cuda.problem}"
            )
        raise DeviceError(f"runtime.device is {name!r} but CUDA cannot be used: {cuda.problem}")
    if name == "auto":
        name = "cuda"
    if world.distributed:
        if name != "cuda":
            raise DeviceError(
                f"runtime.device is {name!r}, one GPU, but {world.size} processes train: use 'cuda' or 'auto', "
                "and each process takes the GPU of its local rank"
            )
        if world.local_rank >= cuda.count:
            raise DeviceError(
                f"local rank {world.local_rank} has no GPU of its own: {cuda.count} are visible ({_visible()})"
            )
        return DeviceChoice(torch.device("cuda", world.local_rank))
    device = torch.device(name)
    if device.index is not None and device.index >= cuda.count:
        raise DeviceError(
            f"runtime.device is {name!r} but this process sees {cuda.count} GPU(s) ({_visible()}): "
            f"GPUs are numbered from 0 among the visible ones, so use cuda:0 to cuda:{cuda.count - 1}"
        )
    return DeviceChoice(device)


def use_device(device: torch.device) -> None:
    """Make ``device`` this process's current GPU, before anything touches CUDA: a pinned copy, a
    DataLoader's pin thread or an allocation without an index would otherwise open a context on GPU 0."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def check_cuda(processes: int) -> str:
    """A line naming the GPUs ``processes`` processes would train on; DeviceError when there are not enough."""
    cuda = cuda_state()
    if cuda.problem is not None:
        raise DeviceError(f"CUDA cannot be used: {cuda.problem}")
    if cuda.count < processes:
        raise DeviceError(f"{processes} GPU(s) are needed but {cuda.count} are visible ({_visible()})")
    names = ", ".join(f"cuda:{index} {torch.cuda.get_device_name(index)}" for index in range(processes))
    return f"{names}; PyTorch {torch.__version__}, CUDA {torch.version.cuda}, {_visible()}"
