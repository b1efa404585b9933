"""The optimizer with the report's discriminative learning rates, one parameter group per ResNet stage."""

from __future__ import annotations

import torch
from torch import nn

from trainer.config import OptimConfig

PARAM_GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")


def group_peak_lrs(optim: OptimConfig, *, lr_scale: float = 1.0) -> dict[str, float]:
    """Each group's peak rate, ``optim.lr * lr_scale / divisor``; the LR preview reads the same numbers.

    ``lr_scale`` is ``RunConfig.lr_scale``: batch_size / 256 under linear scaling, else 1.
    """
    return {name: optim.lr * lr_scale / getattr(optim.layer_lr_divisors, name) for name in PARAM_GROUPS}


def _group_of(param_name: str) -> str:
    prefix = param_name.split(".", 1)[0]
    if prefix in ("conv1", "bn1"):
        return "stem"
    if prefix in PARAM_GROUPS:
        return prefix
    raise ValueError(
        f"parameter {param_name!r} belongs to no group of {PARAM_GROUPS}: is the model a torchvision ResNet?"
    )


def build_optimizer(model: nn.Module, optim: OptimConfig, *, lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Adam or SGD over one group per PARAM_GROUPS name.

    Every group carries ``name`` and ``peak_lr`` so that the schedule can scale it by step. With
    ``no_bias_decay`` the 1-d parameters (biases, BatchNorm weights and biases) of each stage go to
    a ``<stage>.no_decay`` group with weight decay 0, as in Bag of Tricks section 3.1.
    """
    peak_lrs = group_peak_lrs(optim, lr_scale=lr_scale)
    buckets: dict[str, list[nn.Parameter]] = {}
    for param_name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = _group_of(param_name)
        if optim.no_bias_decay and param.ndim <= 1:
            name += ".no_decay"
        buckets.setdefault(name, []).append(param)

    groups = []
    for stage in PARAM_GROUPS:
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
