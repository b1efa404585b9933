"""Room in the runs folder for the run a worker is about to claim: what its checkpoints will take,
from the arch's parameter count and the optimizer's state, against the free space. Torch-free: the
parameter counts come from the trainer's measured table (``trainer.models.footprint``), not from
building the model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trainer.models.footprint import OPTIMIZER_STATES, footprint

UNKNOWN_ARCH = "resnet50"  # an arch the table does not hold counts as a ResNet-50
LOGS_BYTES = 16 * 2**20  # metrics, events, TensorBoard files: a few MB even for a long run


def run_needs(config: dict[str, Any]) -> int:
    """Bytes a run's folder takes at its peak: the best checkpoint (weights), the last one (weights and
    optimizer state) twice while its replacement is written beside it, and the logs."""
    arch = str(config.get("model", {}).get("arch", ""))
    found = footprint(arch) or footprint(UNKNOWN_ARCH)
    weights = (found.params if found else 0) * 4
    states = OPTIMIZER_STATES.get(str(config.get("optim", {}).get("name", "adam")), 2)
    last = weights * (1 + states)
    return weights + 2 * last + LOGS_BYTES


def written(run_dir: Path) -> int:
    """Bytes the run's folder holds already (a requeued run's checkpoints count towards its need)."""
    if not run_dir.is_dir():
        return 0
    return sum(path.stat().st_size for path in run_dir.rglob("*") if path.is_file())


def shortage(runs_dir: Path, run_dir: Path, config: dict[str, Any], *, at_least: int = 0) -> str | None:
    """Why the run cannot be started in ``runs_dir`` for want of space, or None when it fits.
    ``at_least``: free bytes required whatever the estimate (after a write already failed)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(runs_dir).free
    need = max(run_needs(config) - written(run_dir), at_least)
    if free >= need:
        return None
    arch = config.get("model", {}).get("arch", "?")
    return (
        f"runs folder {runs_dir} has {_mb(free)} free; a run of {arch} needs about {_mb(need)}: "
        "free space there (`tricklab gc` removes the checkpoints of old finished runs) and the worker resumes "
        "by itself"
    )


def free_bytes(runs_dir: Path) -> int:
    return shutil.disk_usage(runs_dir).free


def _mb(count: int) -> str:
    return f"{count / 1e6:,.0f} MB" if count >= 10e6 else f"{count / 1e6:.1f} MB"
