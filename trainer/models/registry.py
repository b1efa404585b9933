"""What ``model.arch`` can name: torchvision's ResNets and any timm model, and what each one supports.

The web process validates every submitted config, so the answer comes from a table shipped beside
this module (``arch_table.json``), not from importing torchvision and timm and building the model:
that took seconds and loaded PyTorch into the server. ``python -m trainer.models.arch_table`` writes
the table from the installed libraries; a test keeps it equal to them. A name both libraries have
(``resnet50``) is torchvision's, as the report's runs were; timm's own weights of such a model are
reached through a pretrained tag (``resnet50.a1_in1k``).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

Source = Literal["torchvision", "timm"]
TABLE = Path(__file__).with_name("arch_table.json")


@dataclass(frozen=True)
class ArchInfo:
    name: str
    source: Source
    # Every parameter sits under conv1/bn1, layer1..layer4 or fc: the report's per-stage rates apply as named.
    resnet_stages: bool
    # timm's group_matcher() orders the parameters from stem to head, so the six rates can be spread
    # over its stages (trainer.models.param_groups says how).
    grouped_stages: bool
    # The builder can zero the last norm of each residual block (torchvision's zero_init_residual,
    # timm's zero_init_last).
    zero_init_residual: bool

    @property
    def per_stage_rates(self) -> bool:
        return self.resnet_stages or self.grouped_stages


@cache
def _table() -> dict[str, Any]:
    return json.loads(TABLE.read_text())


def torchvision_resnets() -> tuple[str, ...]:
    """torchvision's ResNet family (ResNet, ResNeXt, Wide ResNet): one builder, one layout."""
    return tuple(_table()["torchvision"])


def check_arch(name: str) -> str:
    """``name`` if torchvision or timm can build it; ValueError with the known names otherwise."""
    table = _table()
    torchvision_names, timm_names, timm_tags = table["torchvision"], table["timm"], table["timm_pretrained"]
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


@cache
def arch_info(name: str) -> ArchInfo:
    """What the architecture is and supports; ValueError for a name neither library knows."""
    check_arch(name)
    table = _table()
    if name in table["torchvision"]:
        return ArchInfo(name, "torchvision", resnet_stages=True, grouped_stages=False, zero_init_residual=True)
    # A pretrained tag ("resnet50d.a1_in1k") builds its architecture.
    resnet_stages, grouped_stages, zero_init = table["timm"][name.partition(".")[0]]
    return ArchInfo(
        name, "timm", resnet_stages=resnet_stages, grouped_stages=grouped_stages, zero_init_residual=zero_init
    )
