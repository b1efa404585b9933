"""The optimizer with the report's discriminative learning rates, one parameter group per ResNet stage.

torchvision's and timm's ResNets name their stages alike (timm's deep stem is ``conv1.0`` ...
``conv1.6``), so both get the six groups. A model without those stages (a ViT, an EfficientNet) has no
stage to give each divisor to: it trains as one group when every divisor is the same, and is refused
otherwise, since silently dropping the rates a user set would change the experiment behind their back.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.archs import NO_STAGES
from trainer.config import OptimConfig

PARAM_GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")
WHOLE_MODEL = "model"  # the one group of a model without ResNet stages


def group_peak_lrs(optim: OptimConfig, *, lr_scale: float = 1.0) -> dict[str, float]:
    """Each group's peak rate, ``optim.lr * lr_scale / divisor``; the LR preview reads the same numbers.

    ``lr_scale`` is ``RunConfig.lr_scale``: batch_size / 256 under linear scaling, else 1.
    """
    return {name: optim.lr * lr_scale / getattr(optim.layer_lr_divisors, name) for name in PARAM_GROUPS}


def _stage_of(param_name: str) -> str | None:
    prefix = param_name.split(".", 1)[0]
    if prefix in ("conv1", "bn1"):
        return "stem"
    return prefix if prefix in PARAM_GROUPS else None


def has_resnet_stages(model: nn.Module) -> bool:
    """Whether every parameter belongs to a group of PARAM_GROUPS."""
    return all(_stage_of(name) is not None for name, _ in model.named_parameters())


def _one_group_lr(model: nn.Module, optim: OptimConfig) -> float:
    divisors = set(optim.layer_lr_divisors.model_dump().values())
    if len(divisors) > 1:
        outside = [name for name, _ in model.named_parameters() if _stage_of(name) is None][:3]
        raise ValueError(f"optim.layer_lr_divisors: the model (with {', '.join(outside)}, ...) {NO_STAGES}")
    return optim.lr / divisors.pop()


def build_optimizer(model: nn.Module, optim: OptimConfig, *, lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Adam or SGD over one group per PARAM_GROUPS name (or one WHOLE_MODEL group, see the module).

    Every group carries ``name`` and ``peak_lr`` so that the schedule can scale it by step. With
    ``no_bias_decay`` the 1-d parameters (biases, BatchNorm weights and biases) of each stage go to
    a ``<stage>.no_decay`` group with weight decay 0, as in Bag of Tricks section 3.1.
    """
    by_stage = has_resnet_stages(model)
    peak_lrs = (
        group_peak_lrs(optim, lr_scale=lr_scale) if by_stage else {WHOLE_MODEL: _one_group_lr(model, optim) * lr_scale}
    )
    buckets: dict[str, list[nn.Parameter]] = {}
    for param_name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = (_stage_of(param_name) if by_stage else None) or WHOLE_MODEL
        if optim.no_bias_decay and param.ndim <= 1:
            name += ".no_decay"
        buckets.setdefault(name, []).append(param)

    groups = []
    for stage in peak_lrs:
        for name, weight_decay in ((stage, optim.weight_decay), (f"{stage}.no_decay", 0.0)):
            if name in buckets:
                peak_lr = peak_lrs[stage]
                groups.append(
                    {
                        "name": name,
                        "params": buckets[name],
                        "peak_lr": peak_lr,
                        "lr": peak_lr,
                        "weight_decay": weight_decay,
                    }
                )

    if optim.name == "adam":
        return torch.optim.Adam(groups, lr=optim.lr * lr_scale, weight_decay=optim.weight_decay)
    return torch.optim.SGD(
        groups, lr=optim.lr * lr_scale, momentum=optim.momentum, nesterov=False, weight_decay=optim.weight_decay
    )
