"""Checkpoints: written to a temporary file, then renamed, so a crash never leaves half a file."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.files import write_atomic_with


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_with(path, lambda handle: torch.save(state, handle), fsync=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint read onto the CPU, whatever device wrote it: the caller moves what belongs on a GPU
    (``load_state_dict`` does), and the generator states stay CPU tensors, as they must."""
    # Our own files hold numpy RNG state and plain dicts, which the safe loader refuses.
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        # This process's GPU only: touching the others would open a CUDA context on each of them
        # from every rank of a multi-GPU run.
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Every generator as ``states`` (from ``load_checkpoint``: CPU tensors) holds it."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        cuda = states["cuda"]
        # Older checkpoints hold every visible GPU's state; a run's own GPU came first.
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, list) else cuda)
