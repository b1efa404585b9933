"""What a model takes in memory, read without torch: its parameter count and the activations one image
leaves saved for the backward pass, from ``footprint.json``.

The table is measured, not guessed: ``python -m trainer.models.footprint_table`` builds each model
(torchvision's and timm's own builders, ImageNet's 1000-class head) and counts the bytes autograd keeps
for backward through ``torch.autograd.graph.saved_tensors_hooks``, each storage once, for one image
at 224 px, in float32 and under bf16 autocast. A test measures resnet18 and resnet50 again at other
sizes and holds the table to them. The server prices a run's GPU memory from it
(``backend.services.gpu_memory``), the worker a run's checkpoints (``backend.worker.disk``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("footprint.json")
REFERENCE_SIZE = 224  # the image side the activations were measured at
# float32 tensors the optimizer keeps per parameter: Adam's two moments, SGD's momentum.
OPTIMIZER_STATES = {"adam": 2, "sgd": 1}


@dataclass(frozen=True)
class Footprint:
    params: int  # with a 1000-class head: an upper bound for a dataset of fewer classes
    activations: int  # bytes saved for backward per 224 px image, float32
    activations_amp: int  # the same under bf16 autocast
    largest: int  # the largest single saved tensor per 224 px image, float32 (backward's gradient buffers)


def size_scale(image_size: int) -> float:
    """Activations grow with the pixels: each feature map is the image's size over its stride."""
    return (image_size / REFERENCE_SIZE) ** 2


@cache
def _table() -> dict[str, dict[str, int]]:
    return json.loads(TABLE.read_text())["archs"]


def footprint(arch: str) -> Footprint | None:
    """The arch's measured footprint (a pretrained tag such as ``resnet50d.a1_in1k`` is its arch's);
    None for an arch the table does not hold."""
    found = _table().get(arch.partition(".")[0])
    return None if found is None else Footprint(**found)


def measured_archs() -> tuple[str, ...]:
    return tuple(_table())
