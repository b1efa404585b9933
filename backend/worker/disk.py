"""Room in the runs folder for the run a worker is about to claim: what its checkpoints will take,
from the arch's parameter count and the optimizer's state, against the free space. Torch-free: the
parameter counts are written down here, not measured by building the model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# Parameters (millions) with ImageNet's 1000-class head, an upper bound for the study's 200 classes.
PARAMS_M = {
    "resnet18": 11.7,
    "resnet34": 21.8,
    "resnet50": 25.6,
    "resnet101": 44.5,
    "resnet152": 60.2,
    "resnext50_32x4d": 25.0,
    "resnext101_32x8d": 88.8,
    "resnext101_64x4d": 83.5,
    "wide_resnet50_2": 68.9,
    "wide_resnet101_2": 126.9,
    "test_resnet": 0.37,
}
UNKNOWN_PARAMS_M = 25.6  # an arch not listed counts as a ResNet-50
OPTIMIZER_STATES = {"adam": 2, "sgd": 1}  # tensors per parameter: Adam's two moments, SGD's momentum
LOGS_BYTES = 16 * 2**20  # metrics, events, TensorBoard files: a few MB even for a long run


def run_needs(config: dict[str, Any]) -> int:
    """Bytes a run's folder takes at its peak: the best checkpoint (weights), the last one (weights and
    optimizer state) twice while its replacement is written beside it, and the logs."""
    arch = str(config.get("model", {}).get("arch", ""))
    weights = int(PARAMS_M.get(arch, UNKNOWN_PARAMS_M) * 1e6 * 4)
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
