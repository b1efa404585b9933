"""What ``model.arch`` can name: torchvision's ResNets and any timm model, and what each one supports.

Listing them imports torchvision and timm, seconds of work that the web process should not do at
start, so the lists are computed on first use and cached. A name both libraries have (``resnet50``)
is torchvision's, as the report's runs were; timm's own weights of such a model are reached through
a pretrained tag (``resnet50.a1_in1k``).
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

Source = Literal["torchvision", "timm"]
NO_STAGES = (
    "has no ResNet stages (conv1/bn1, layer1..4, fc) to give per-stage rates to; "
    "give every divisor the same value to train it as one group at optim.lr / divisor"
)
TORCHVISION_RESNET_MODULE = "torchvision.models.resnet"


@dataclass(frozen=True)
class ArchInfo:
    name: str
    source: Source
    # Every parameter sits under conv1/bn1, layer1..layer4 or fc: the report's per-stage rates apply.
    resnet_stages: bool
    # The builder can zero the last norm of each residual block (torchvision's zero_init_residual,
    # timm's zero_init_last).
    zero_init_residual: bool


def _natural(name: str) -> list[str | int]:
    # resnet18 before resnet101
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@cache
def torchvision_resnets() -> tuple[str, ...]:
    """torchvision's ResNet family (ResNet, ResNeXt, Wide ResNet): one builder, one layout."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    family = [n for n in names if torchvision.models.get_model_builder(n).__module__ == TORCHVISION_RESNET_MODULE]
    return tuple(sorted(family, key=_natural))


@cache
def timm_models() -> tuple[frozenset[str], frozenset[str]]:
    """The architectures timm registers, and the ``architecture.tag`` names it has pretrained weights for."""
    import timm

    return frozenset(timm.list_models()), frozenset(timm.list_pretrained())


def check_arch(name: str) -> str:
    """``name`` if torchvision or timm can build it; ValueError with the known names otherwise."""
    torchvision_names = torchvision_resnets()
    timm_names, timm_tags = timm_models()
    if name in torchvision_names or name in timm_names or name in timm_tags:
        return name
    known = sorted({*torchvision_names, *timm_names, *timm_tags})
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    examples = close or ["resnet50d", "efficientnet_b0", "convnext_tiny", "vit_small_patch16_224"]
    raise ValueError(
        f"unknown architecture {name!r}; torchvision's are {', '.join(torchvision_names)}; "
        f"timm has {len(timm_names)} models ({len(timm_tags)} pretrained tags such as resnet50d.ra2_in1k), "
        f"e.g. {', '.join(examples)}"
    )


def _takes_zero_init(model_class: type) -> bool:
    return "zero_init_last" in inspect.signature(model_class).parameters


@cache
def arch_info(name: str) -> ArchInfo:
    """What the architecture is and supports; ValueError for a name neither library knows."""
    check_arch(name)
    if name in torchvision_resnets():
        return ArchInfo(name, "torchvision", resnet_stages=True, zero_init_residual=True)
    import timm
    import torch

    from trainer.optim import has_resnet_stages

    # On the meta device: the layout without allocating or initialising a single weight.
    with torch.device("meta"):
        probe = timm.create_model(name, pretrained=False)
    return ArchInfo(
        name,
        "timm",
        resnet_stages=has_resnet_stages(probe),
        zero_init_residual=_takes_zero_init(type(probe)),
    )
