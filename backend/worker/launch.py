"""What an attempt's trainer child starts with: its run folder written (config, sweep, the ATTEMPT
fence), its command (alone, or under torchrun), its environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

from backend.placement import Placement
from backend.services.queue import Claim
from backend.settings import Settings
from trainer.config import RunConfig
from trainer.lr_finder.sweep import LRSweep
from trainer.protocol import RunFolder, launch_command, write_attempt


def prepare_attempt(claim: Claim, run_dir: Path, *, settings: Settings, placement: Placement) -> dict[str, str]:
    """Write the run folder for ``claim`` and return the child's environment; ConfigError or OSError
    when the attempt cannot start."""
    config = json.loads(json.dumps(claim.config))
    teacher = config["tricks"]["kd"]["teacher"]
    if isinstance(teacher, int):
        config["tricks"]["kd"]["teacher"] = str(settings.run_dir(teacher))
    if placement.runtime_device is not None:
        config["runtime"]["device"] = placement.runtime_device
    run_config = RunConfig.from_dict(config)
    # Before the folder is touched: a batch this worker cannot split fails the attempt, by name.
    run_config.rank_batch_size(placement.processes)
    folder = RunFolder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_attempt(folder, claim.attempt)  # first: a trainer of an older attempt stops writing
    run_config.save(folder.config)
    if claim.sweep is not None:
        # Its presence makes the child an LR range test of the config.
        LRSweep.from_dict(claim.sweep).save(folder.sweep)
    return {**os.environ, "PYTHONUNBUFFERED": "1", **placement.env}


def trainer_command(claim: Claim, run_dir: Path, *, settings: Settings, placement: Placement) -> list[str]:
    """The trainer alone, or under torchrun with one process per owned device, on ``run_dir``."""
    if placement.distributed:
        launcher = launch_command(
            settings.trainer_command,
            nproc_per_node=placement.processes,
            log_dir=RunFolder(run_dir).rank_logs(claim.attempt),
        )
    else:
        launcher = list(settings.trainer_command)
    return [*launcher, str(run_dir), "--attempt", str(claim.attempt)]
