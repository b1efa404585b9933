"""A run that runs out of device memory, told in one line a user can act on: what did not fit (arch,
batch, image size, precision), on what (the device and its memory), and what to change."""

from __future__ import annotations

import os
import re

import torch

from trainer.config import RunConfig
from trainer.loop.setup import RunError

_TRIED = re.compile(r"Tried to allocate ([\d.]+ [KMGT]?i?B)")


def out_of_memory(
    config: RunConfig, error: torch.OutOfMemoryError, *, device: torch.device, world_size: int
) -> RunError:
    """The RunError for ``error``, raised by training ``config`` on ``device`` with ``world_size`` processes."""
    on_cuda = device.type == "cuda"
    batch = f"batch_size {config.batch_size}"
    if world_size > 1:
        batch += f" ({config.batch_size // world_size} per process)"
    precision = ("bf16 autocast" if config.runtime.amp else "fp32 (runtime.amp off)") if on_cuda else "fp32"
    tried = _TRIED.search(str(error))
    allocation = f", an allocation of {tried[1]} failed" if tried else ""
    changes = [f"lower batch_size (e.g. {max(1, config.batch_size // 2)})"]
    if config.data.image_size > 64:
        changes.append(f"a smaller data.image_size (e.g. {config.data.image_size * 3 // 4})")
    if on_cuda and not config.runtime.amp:
        changes.append("turn runtime.amp on (bf16 activations take half the memory)")
    return RunError(
        f"out of memory on {_device_memory(device)}{allocation}: {config.model.arch} with {batch}, "
        f"{config.data.image_size} px images and {precision} does not fit; {', or '.join(changes)}"
    )


def _device_memory(device: torch.device) -> str:
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return f"{device} ({properties.name}, {_gib(properties.total_memory)} GiB)"
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{device} (host memory, {_gib(host)} GiB)"


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f}"
