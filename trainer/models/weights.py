"""Where torchvision keeps the ImageNet weights a pretrained run starts from, without importing torch.

The server checks these files before it queues a study (importing torch there would cost seconds
and hundreds of megabytes); the trainer reads them through torchvision and, when they are missing,
fails with ``unavailable_message``, the same words the server gives.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

# torchvision's IMAGENET1K_V1 weights of each ResNet (tests/trainer/test_models.py checks them
# against torchvision's own table).
IMAGENET1K_V1_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "resnet152": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
}


def hub_dir() -> Path:
    """``torch.hub.get_dir()``, read from the same variables: TORCH_HOME, else XDG_CACHE_HOME/torch."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def hub_file(url: str) -> Path:
    """Where torch hub keeps the file it downloads from ``url``."""
    return hub_dir() / "checkpoints" / PurePosixPath(url).name


def cached_weights(arch: str) -> Path:
    """The file torchvision reads ``arch``'s ImageNet weights from, downloading it there if missing."""
    return hub_file(IMAGENET1K_V1_URLS[arch])


def unavailable_message(arch: str, url: str, reason: object) -> str:
    """What to do when ``arch``'s weights at ``url`` are neither cached nor downloadable (``reason`` says why not)."""
    cached = hub_file(url)
    return (
        f"ImageNet weights for {arch} ({cached.name}) are not cached and could not be downloaded ({reason}). "
        f"Download {url} and put it at {cached}, or set model.weights_path to a local copy."
    )
