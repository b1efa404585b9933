"""The optimizer with the report's discriminative learning rates, one parameter group per ResNet stage.

torchvision's and timm's ResNets name their stages alike (timm's deep stem is ``conv1.0`` ...
``conv1.6``), so both get the six groups by name. Any other timm model (a ViT, an EfficientNet, a
ConvNeXt) gets them through its ``group_matcher()``, which orders its parameters from stem to head:
its stem group trains at the stem's rate, its classifier at fc's, and its groups in between are cut
into four runs of consecutive groups, as even as they go, shallow to deep, for layer1 to layer4 (a
ViT's 12 blocks: three each; a ConvNeXt's four stages: one each). A model with
neither trains as one group when every divisor is the same, and is refused otherwise, since silently
dropping the rates a user set would change the experiment behind their back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainer.models.build import head_name
from trainer.models.stages import NO_STAGES, PARAM_GROUPS, WHOLE_MODEL, group_peak_lrs, has_resnet_stages, stage_of

if TYPE_CHECKING:
    from trainer.config import OptimConfig

BLOCK_STAGES = PARAM_GROUPS[1:-1]  # layer1..layer4


def stage_matcher(model: nn.Module) -> dict[str, Any] | None:
    """timm's ``group_matcher()`` by stage, or by block where a model has only that; None without one."""
    group_matcher: Any = getattr(model, "group_matcher", None)
    if group_matcher is None:
        return None
    try:
        return group_matcher(coarse=True)
    except (AssertionError, NotImplementedError):  # how timm's models say they have no coarse grouping
        return group_matcher(coarse=False)


def matched_stages(model: nn.Module) -> dict[str, str] | None:
    """Each parameter's group of PARAM_GROUPS from timm's ``group_matcher()``; None for a model without one."""
    matcher = stage_matcher(model)
    if not matcher:
        return None
    from timm.models import group_parameters

    group_of: dict[str, int] = group_parameters(model, matcher, reverse=True)
    # The classifier's group: timm puts whatever its matcher leaves out (the head, a head's own norm) last.
    head = next(group for name, group in group_of.items() if name.startswith(head_name(model) + "."))
    ordered = sorted(set(group_of.values()) - {head})
    # timm's matchers list the stem first; a model whose first group is a stage has no stem to give.
    stem = ordered.pop(0) if "stem" in matcher and len(ordered) > 1 else None
    stage_of_group = {group: BLOCK_STAGES[len(BLOCK_STAGES) * i // len(ordered)] for i, group in enumerate(ordered)}
    stage_of_group[head] = "fc"
    if stem is not None:
        stage_of_group[stem] = "stem"
    return {name: stage_of_group[group] for name, group in group_of.items()}


def _one_group_lr(model: nn.Module, optim: OptimConfig) -> float:
    divisors = set(optim.layer_lr_divisors.model_dump().values())
    if len(divisors) > 1:
        outside = [name for name, _ in model.named_parameters() if stage_of(name) is None][:3]
        raise ValueError(f"optim.layer_lr_divisors: the model (with {', '.join(outside)}, ...) {NO_STAGES}")
    return optim.lr / divisors.pop()


def build_optimizer(model: nn.Module, optim: OptimConfig, *, lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Adam or SGD over one group per PARAM_GROUPS name (or one WHOLE_MODEL group, see the module).

    Every group carries ``name`` and ``peak_lr`` so that the schedule can scale it by step. With
    ``no_bias_decay`` the 1-d parameters (biases, BatchNorm weights and biases) of each stage go to
    a ``<stage>.no_decay`` group with weight decay 0, as in Bag of Tricks section 3.1.
    """
    stages = (
        {name: stage_of(name) for name, _ in model.named_parameters()}
        if has_resnet_stages(name for name, _ in model.named_parameters())
        else matched_stages(model)
    )
    peak_lrs = (
        group_peak_lrs(optim, lr_scale=lr_scale) if stages else {WHOLE_MODEL: _one_group_lr(model, optim) * lr_scale}
    )
    buckets: dict[str, list[nn.Parameter]] = {}
    for param_name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = (stages[param_name] if stages else None) or WHOLE_MODEL
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
