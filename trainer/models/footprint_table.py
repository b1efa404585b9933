"""Writes ``footprint.json``: each model's parameters and the activations one image leaves saved for
backward, measured on the CPU (``python -m trainer.models.footprint_table``, a few minutes).

The activations are counted where autograd keeps them: every tensor packed for backward, each storage
once (a ReLU's output is also the next convolution's input), the parameters and their bf16 copies
left out. Two batch sizes are measured and their difference taken, so that what does not grow with
the batch falls out. CPU autocast runs convolutions, batch norms and ReLUs in bf16 as CUDA's does, so
its count stands for a GPU's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import timm
import torch
import torchvision
from torch import nn

from trainer.files import write_atomic
from trainer.models.build import build_model
from trainer.models.footprint import REFERENCE_SIZE, TABLE, Footprint

ARCHS = (
    *("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    *("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"),
    *("resnet18d", "resnet34d", "resnet50d", "resnet101d", "resnet152d"),
    *("efficientnet_b0", "convnext_tiny", "test_resnet"),
)
CLASSES = 1000
# Two images at least: batch norm refuses one per channel in training mode.
BATCHES = (2, 4)


def saved_for_backward(model: nn.Module, *, batch: int, image_size: int, amp: bool) -> tuple[int, int]:
    """(bytes, largest tensor's bytes) autograd keeps for backward after ``model``'s forward pass on
    ``batch`` images, the parameters aside."""
    params = {param.untyped_storage().data_ptr() for param in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        # A parameter's bf16 copy is made once per autocast region, whatever the batch: the
        # difference of two batches takes it out.
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    images = torch.randn(batch, 3, image_size, image_size)
    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp),
    ):
        model(images)
    return sum(kept.values()), max(kept.values())


def per_image(model: nn.Module, *, image_size: int, amp: bool) -> tuple[float, float]:
    """(activation bytes, largest saved tensor's bytes) per image at ``image_size``."""
    (small, _), (large, largest) = (
        saved_for_backward(model, batch=batch, image_size=image_size, amp=amp) for batch in BATCHES
    )
    return (large - small) / (BATCHES[1] - BATCHES[0]), largest / BATCHES[1]


def measure(arch: str) -> Footprint:
    model = build_model(arch, CLASSES, pretrained=False).train()
    activations, largest = per_image(model, image_size=REFERENCE_SIZE, amp=False)
    activations_amp, _ = per_image(model, image_size=REFERENCE_SIZE, amp=True)
    params = sum(param.numel() for param in model.parameters())
    return Footprint(params, round(activations), round(activations_amp), round(largest))


def main() -> None:
    torch.manual_seed(0)
    archs = {}
    for arch in ARCHS:
        archs[arch] = asdict(measure(arch))
        print(f"{arch}: {archs[arch]}", file=sys.stderr)
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__}
    write_atomic(TABLE, json.dumps({"measured_with": versions, "archs": archs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
