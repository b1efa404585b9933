"""torchvision ResNets with a new head, ImageNet weights that fail clearly offline, and the KD teacher."""

from __future__ import annotations

import http.client
import pickle
from pathlib import Path

import torch
import torchvision
from torch import nn

from trainer.config import ARCHS, ConfigError, RunConfig
from trainer.protocol import RunFolder
from trainer.weights import unavailable_message


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable; the message says how to provide them."""


class TeacherError(ValueError):
    """The distillation teacher run cannot be used; the message says why."""


def _imagenet_state_dict(arch: str, weights_path: str | None) -> dict[str, torch.Tensor]:
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"model.weights_path: no such file {path}")
        return torch.load(path, map_location="cpu", weights_only=True)

    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    try:
        # Reads torchvision's cache, downloading only when the file is not there yet.
        return weights.get_state_dict(progress=False, weights_only=True)
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsUnavailable(unavailable_message(arch, exc)) from exc


def build_model(
    arch: str,
    num_classes: int,
    *,
    pretrained: bool,
    weights_path: str | None = None,
    zero_init_residual: bool = False,
) -> nn.Module:
    """A torchvision ResNet; ``pretrained`` loads IMAGENET1K_V1, then the fc is replaced for ``num_classes``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")
    if pretrained and zero_init_residual:
        raise ValueError("zero_init_residual only applies without pretrained weights, which would overwrite it")
    model = getattr(torchvision.models, arch)(weights=None, zero_init_residual=zero_init_residual)
    if pretrained:
        model.load_state_dict(_imagenet_state_dict(arch, weights_path))
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def load_teacher(run_dir: str | Path, *, num_classes: int, device: torch.device | str) -> nn.Module:
    """The best checkpoint of a finished run, frozen in eval mode on ``device``."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    config_path, checkpoint_path = folder.config, folder.best_checkpoint
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
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise TeacherError(f"{checkpoint_path} holds no ResNet state_dict under the key 'model'")
    teacher_classes = state["fc.weight"].shape[0]
    if teacher_classes != num_classes:
        raise TeacherError(
            f"teacher {run_dir} predicts {teacher_classes} classes but the student has {num_classes}: "
            "distillation needs the same classes"
        )

    model = build_model(arch, num_classes, pretrained=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise TeacherError(f"{checkpoint_path} does not fit a {arch} (from {config_path}): {exc}") from exc
    return model.eval().requires_grad_(False).to(device)
