"""The report's per-image transforms (torchvision v1), scaled to any image size."""

from __future__ import annotations

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_padding(image_size: int) -> int:
    """The report's RandomCrop padding of 10 px at 224 px, scaled to ``image_size``."""
    return round(10 * image_size / 224)


def train_transform(image_size: int) -> T.Compose:
    return T.Compose(
        [
            T.Resize(image_size),  # an int resizes the short side, keeping the aspect ratio
            T.RandomRotation(5),
            T.RandomHorizontalFlip(0.5),
            T.RandomCrop(image_size, padding=crop_padding(image_size)),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(image_size: int) -> T.Compose:
    return T.Compose(
        [
            T.Resize(image_size),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
