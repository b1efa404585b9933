"""The report's six parameter groups and which parameter falls in which, without torch.

The launch form's LR preview reads each group's peak rate from here, and the server decides from
parameter names alone whether a model has ResNet's stages, so neither loads PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.config import OptimConfig

PARAM_GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")
WHOLE_MODEL = "model"  # the one group of a model without ResNet stages
NO_STAGES = (
    "has neither ResNet's stages (conv1/bn1, layer1..4, fc) nor a timm group_matcher() to give per-stage rates to; "
    "give every divisor the same value to train it as one group at optim.lr / divisor"
)


def group_peak_lrs(optim: OptimConfig, *, lr_scale: float = 1.0) -> dict[str, float]:
    """Each group's peak rate, ``optim.lr * lr_scale / divisor``; the LR preview reads the same numbers.

    ``lr_scale`` is ``RunConfig.lr_scale``: batch_size / 256 under linear scaling, else 1.
    """
    return {name: optim.lr * lr_scale / getattr(optim.layer_lr_divisors, name) for name in PARAM_GROUPS}


def stage_of(param_name: str) -> str | None:
    """The group of PARAM_GROUPS a parameter belongs to, by its name; None outside ResNet's stages."""
    prefix = param_name.split(".", 1)[0]
    if prefix in ("conv1", "bn1"):
        return "stem"
    return prefix if prefix in PARAM_GROUPS else None


def has_resnet_stages(param_names: Iterable[str]) -> bool:
    """Whether every parameter belongs to a group of PARAM_GROUPS."""
    return all(stage_of(name) is not None for name in param_names)
