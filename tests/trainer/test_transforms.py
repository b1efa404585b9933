from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, crop_padding, eval_transform, train_transform


@pytest.mark.parametrize(("size", "padding"), [(224, 10), (448, 20), (96, 4), (112, 5), (32, 1)])
def test_crop_padding_scales_the_reports_10_px_at_224(size: int, padding: int):
    assert crop_padding(size) == padding


def test_train_transform_is_the_reports_pipeline():
    steps = train_transform(96).transforms
    assert [type(step) for step in steps] == [
        T.Resize,
        T.RandomRotation,
        T.RandomHorizontalFlip,
        T.RandomCrop,
        T.ToTensor,
        T.Normalize,
    ]
    resize, rotation, flip, crop, _, normalize = steps
    assert resize.size == 96  # an int: the short side, aspect ratio kept
    assert list(rotation.degrees) == [-5.0, 5.0]
    assert flip.p == 0.5
    assert tuple(crop.size) == (96, 96) and crop.padding == 4
    assert tuple(normalize.mean) == IMAGENET_MEAN and tuple(normalize.std) == IMAGENET_STD


def test_eval_transform_is_resize_and_centre_crop():
    steps = eval_transform(224).transforms
    assert [type(step) for step in steps] == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert steps[0].size == 224 and tuple(steps[1].size) == (224, 224)
    assert tuple(steps[3].mean) == IMAGENET_MEAN and tuple(steps[3].std) == IMAGENET_STD


@pytest.mark.parametrize("image_size", [(80, 60), (60, 80), (45, 45)])
def test_both_give_square_normalised_tensors(image_size):
    image = Image.new("RGB", image_size, (255, 255, 255))
    white = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    for transform in (train_transform(32), eval_transform(32)):
        out = transform(image)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    centre = eval_transform(32)(image)
    assert torch.allclose(centre.mean(dim=(1, 2)), torch.tensor(white), atol=1e-4)


def test_imagenet_mean_colour_normalises_to_zero():
    mean_colour = tuple(round(m * 255) for m in IMAGENET_MEAN)
    out = eval_transform(16)(Image.new("RGB", (20, 16), mean_colour))
    assert out.abs().max() < 0.01


def test_eval_crops_the_centre_of_the_long_side():
    # 64 x 32 with red 8-px bands at both ends: Resize(16) -> 32 x 16, the centre crop drops the bands.
    image = Image.new("RGB", (64, 32), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 8, 32))
    image.paste((255, 0, 0), (56, 0, 64, 32))
    red = (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert eval_transform(16)(image)[0].max() < red / 2
    assert torch.equal(eval_transform(16)(image), eval_transform(16)(image))


def test_train_augmentation_follows_the_torch_seed():
    image = Image.effect_noise((60, 45), 60).convert("RGB")
    transform = train_transform(32)
    torch.manual_seed(0)
    first = transform(image)
    torch.manual_seed(0)
    assert torch.equal(first, transform(image))
    outputs = [transform(image) for _ in range(4)]
    assert any(not torch.equal(first, out) for out in outputs)
