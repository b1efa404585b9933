"""Writes ``arch_table.json``, what the registry knows of every architecture, from the installed
torchvision and timm: ``python -m trainer.models.arch_table`` after upgrading either (some minutes:
every timm model is built once, on the meta device)."""

from __future__ import annotations

import inspect
import json
import re
import sys
from typing import Any

import timm
import torch
import torchvision

from trainer.files import write_atomic
from trainer.models.param_groups import stage_matcher
from trainer.models.registry import TABLE
from trainer.models.stages import has_resnet_stages

TORCHVISION_RESNET_MODULE = "torchvision.models.resnet"


def natural_order(name: str) -> list[str | int]:
    # resnet18 before resnet101
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def timm_flags(name: str) -> list[bool]:
    """[resnet_stages, grouped_stages, zero_init_residual] of registry.ArchInfo, from the built model."""
    # On the meta device: the layout without allocating or initialising a single weight.
    with torch.device("meta"):
        probe = timm.create_model(name, pretrained=False)
    names = [param_name for param_name, _ in probe.named_parameters()]
    zero_init = "zero_init_last" in inspect.signature(type(probe)).parameters
    return [has_resnet_stages(names), bool(stage_matcher(probe)), zero_init]


def build_table() -> dict[str, Any]:
    """The table from the installed torchvision and timm: building every timm model once, on the meta device."""
    builders = torchvision.models.list_models(module=torchvision.models)
    resnets = [n for n in builders if torchvision.models.get_model_builder(n).__module__ == TORCHVISION_RESNET_MODULE]
    return {
        "torchvision_version": torchvision.__version__,
        "timm_version": timm.__version__,
        "torchvision": sorted(resnets, key=natural_order),
        "timm": {name: timm_flags(name) for name in timm.list_models()},
        "timm_pretrained": sorted(timm.list_pretrained()),
    }


def main() -> None:
    table = build_table()
    write_atomic(TABLE, json.dumps(table, separators=(",", ":")) + "\n")
    print(
        f"{TABLE}: {len(table['torchvision'])} torchvision ResNets, timm {table['timm_version']}'s "
        f"{len(table['timm'])} models and {len(table['timm_pretrained'])} pretrained tags",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
