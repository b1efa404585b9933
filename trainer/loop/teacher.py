"""A distillation teacher: a finished run folder's kept checkpoint (lowest valid loss), checked and frozen."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from trainer.config import ConfigError, RunConfig
from trainer.models.build import build_model, head_name
from trainer.protocol import RunFolder


class TeacherError(ValueError):
    """The distillation teacher run cannot be used; the message says why."""


def load_teacher(run_dir: str | Path, *, num_classes: int, device: torch.device | str) -> nn.Module:
    """The kept checkpoint of a finished run, frozen in eval mode on ``device``."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    config_path, checkpoint_path = folder.config, folder.kept_checkpoint
    if not run_dir.is_dir():
        raise TeacherError(f"teacher run folder {run_dir} does not exist")
    for path in (config_path, checkpoint_path):
        if not path.is_file():
            raise TeacherError(
                f"teacher run {run_dir} has no {path.relative_to(run_dir)}: is the teacher run finished?"
            )
    try:
        arch = RunConfig.load(config_path).model.arch
    except ConfigError as exc:
        raise TeacherError(f"teacher config {config_path} is not a valid run config: {exc}") from exc

    # weights_only: a teacher folder may come from a user-typed path, so never unpickle code.
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TeacherError(f"{checkpoint_path} holds more than tensors, dicts and numbers: {exc}") from exc
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    model = build_model(arch, num_classes, pretrained=False)
    head = f"{head_name(model)}.weight"
    if not isinstance(state, dict) or head not in state:
        raise TeacherError(f"{checkpoint_path} holds no {arch} state_dict (with {head}) under the key 'model'")
    teacher_classes = state[head].shape[0]
    if teacher_classes != num_classes:
        raise TeacherError(
            f"teacher {run_dir} predicts {teacher_classes} classes but the student has {num_classes}: "
            "distillation needs the same classes"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise TeacherError(f"{checkpoint_path} does not fit a {arch} (from {config_path}): {exc}") from exc
    return model.eval().requires_grad_(False).to(device)
