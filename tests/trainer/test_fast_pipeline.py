"""The fast pipeline: its cache, its transform distribution and its agreement with the reference."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from scipy import stats
from torchvision.transforms import InterpolationMode

from trainer.data import fast
from trainer.data.cache import BORDER, load_or_build
from trainer.data.cub import DatasetError, read_cub
from trainer.data.dataset import make_splits
from trainer.data.fast import FastBatchSource, build_fast_source
from trainer.data.gpu_augment import (
    ROTATION_DEGREES,
    AugmentParams,
    augment,
    draw_params,
    normalization,
    pil_rotation,
)
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, crop_padding, eval_transform

SIZE = 32  # the demo's 40 px short side resized to 32, so Resize does real work
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def index(demo_dataset):
    return read_cub(demo_dataset)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fast-cache")


def source(index, cache_dir, indices, *, train, batch_size=8, seed=7, **kwargs) -> FastBatchSource:
    return build_fast_source(
        index=index,
        indices=indices,
        train=train,
        image_size=SIZE,
        batch_size=batch_size,
        device=CPU,
        seed=seed,
        cache_dir=cache_dir,
        **kwargs,
    )


def rgb(path: Path) -> Image.Image:
    with Image.open(path) as file:
        return file.convert("RGB")


def reference_train(image: Image.Image, angle: float, flip: bool, top: int, left: int) -> torch.Tensor:
    """The reference train transform with its random draws fixed, in torchvision's functional ops."""
    image = F.rotate(F.resize(image, SIZE), angle, InterpolationMode.NEAREST, fill=0)
    if flip:
        image = F.hflip(image)
    image = F.crop(F.pad(image, crop_padding(SIZE), fill=0), top, left, SIZE, SIZE)
    return F.normalize(F.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


# --- the cache ---------------------------------------------------------------------------------


def test_cache_holds_the_resized_images_with_a_black_border_and_the_centre_crops(index, cache_dir):
    paths = [sample.path for sample in index.samples[:6]]
    train = load_or_build(paths, root=index.root, kind="train", image_size=SIZE, cache_dir=cache_dir)
    held = load_or_build(paths, root=index.root, kind="eval", image_size=SIZE, cache_dir=cache_dir)
    assert train.pixels.dtype == torch.uint8
    for k, path in enumerate(paths):
        resized = np.asarray(F.resize(rgb(path), SIZE))
        h, w = int(train.heights[k]), int(train.widths[k])
        assert (h, w) == resized.shape[:2] and min(h, w) == SIZE
        start, stored = int(train.starts[k]), (h + 2 * BORDER, w + 2 * BORDER)
        entry = train.pixels[start : start + stored[0] * stored[1]].view(*stored, 3).numpy()
        np.testing.assert_array_equal(entry[BORDER:-BORDER, BORDER:-BORDER], resized)
        assert entry.sum() == resized.sum(), "the border must be black"
        crop = held.pixels[int(held.starts[k]) : int(held.starts[k]) + SIZE * SIZE].view(SIZE, SIZE, 3).numpy()
        np.testing.assert_array_equal(crop, np.asarray(F.center_crop(F.resize(rgb(path), SIZE), SIZE)))


def test_cache_is_reused_and_rebuilt_when_its_key_changes(demo_dataset, tmp_path):
    dataset = shutil.copytree(demo_dataset, tmp_path / "data")
    index = read_cub(dataset)
    paths = [sample.path for sample in index.samples[:4]]
    cache = tmp_path / "cache"

    def files() -> set[str]:
        return {p.name for p in cache.glob("*.u8")}

    load_or_build(paths, root=index.root, kind="train", image_size=SIZE, cache_dir=cache)
    first = files()
    built = {p: p.stat().st_mtime_ns for p in cache.glob("*.u8")}
    load_or_build(paths, root=index.root, kind="train", image_size=SIZE, cache_dir=cache)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.u8")} == built, "an unchanged key must not rebuild"

    load_or_build(paths[:3], root=index.root, kind="train", image_size=SIZE, cache_dir=cache)  # another split
    load_or_build(paths, root=index.root, kind="train", image_size=SIZE + 8, cache_dir=cache)  # another size
    assert len(files()) == 3
    os.utime(paths[0], ns=(1, 1))  # a replaced image
    load_or_build(paths, root=index.root, kind="train", image_size=SIZE, cache_dir=cache)
    assert len(files()) == 4 and first < files()


def test_a_build_that_meets_unreadable_images_names_every_one_in_one_line(tmp_path: Path, demo_dataset: Path):
    root = Path(shutil.copytree(demo_dataset / "CUB_200_2011", tmp_path / "CUB_200_2011"))
    index = read_cub(root)
    splits = make_splits(index, split="seed")
    truncated, empty = index.samples[splits.train[0]].path, index.samples[splits.test[0]].path
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    empty.write_bytes(b"")
    cache = tmp_path / "cache"
    train = [index.samples[i].path for i in splits.train]
    with pytest.raises(DatasetError) as caught:
        load_or_build(train, root=root, kind="train", image_size=SIZE, cache_dir=cache)
    message = str(caught.value)
    # The train build meets one of them; the message names both, the test split's too, as `data check` does.
    assert "\n" not in message and message.startswith("2 images under")
    assert truncated.relative_to(root).as_posix() in message and empty.relative_to(root).as_posix() in message
    assert "truncated" in message and "cannot identify image file" in message
    assert not list(cache.glob("*.u8")) and not list(cache.glob("*.json")), "no partial cache is left"


# --- the augmentation against the reference ----------------------------------------------------


def test_fixed_parameters_match_the_reference_functional_ops_exactly(index, cache_dir):
    paths = [sample.path for sample in index.samples]
    packed = load_or_build(paths, root=index.root, kind="train", image_size=SIZE, cache_dir=cache_dir)
    portrait = next(k for k in range(len(paths)) if packed.heights[k] > packed.widths[k])
    landscape = next(k for k in range(len(paths)) if packed.heights[k] < packed.widths[k])
    pad = crop_padding(SIZE)
    for k in (portrait, landscape):
        h, w = int(packed.heights[k]), int(packed.widths[k])
        for angle in (-ROTATION_DEGREES, -2.3, 0.0, 1.7, ROTATION_DEGREES):
            for flip in (False, True):
                for top, left in ((0, 0), (h + 2 * pad - SIZE, w + 2 * pad - SIZE), (pad, (w - SIZE) // 2 + pad)):
                    params = AugmentParams(
                        torch.tensor([angle]),
                        torch.tensor([flip]),
                        torch.tensor([top]),
                        torch.tensor([left]),
                        torch.tensor([pil_rotation(angle, w, h)]),
                    )
                    ours = augment(
                        packed.pixels,
                        packed.starts[k : k + 1],
                        packed.heights[k : k + 1],
                        packed.widths[k : k + 1],
                        params,
                        SIZE,
                        normalization(CPU),
                    )[0]
                    expected = reference_train(rgb(paths[k]), angle, flip, top, left)
                    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_a_train_epoch_is_the_reference_transform_under_its_drawn_parameters(index, cache_dir):
    splits = make_splits(index, split="seed")
    train = source(index, cache_dir, splits.train, train=True, batch_size=5)
    train.set_epoch(3)
    order, params = train.epoch_plan()
    images, targets = next(iter(train))
    for k in range(5):
        sample = index.samples[splits.train[int(order[k])]]
        expected = reference_train(
            rgb(sample.path), float(params.angle[k]), bool(params.flip[k]), int(params.top[k]), int(params.left[k])
        )
        torch.testing.assert_close(images[k], expected, rtol=0, atol=1e-5)
        assert int(targets[k]) == sample.label


def test_eval_batches_equal_the_reference_eval_transform(index, cache_dir):
    splits = make_splits(index, split="seed")
    held = source(index, cache_dir, splits.test, train=False, batch_size=5)
    images, targets = map(torch.cat, zip(*held, strict=True))
    transform = eval_transform(SIZE)
    expected = torch.stack([transform(rgb(index.samples[i].path)) for i in splits.test])
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)
    assert targets.tolist() == [index.samples[i].label for i in splits.test]


def test_draws_follow_the_reference_distribution():
    n = 40_000
    heights = torch.tensor([224, 298] * (n // 2))  # landscape and portrait CUB images at 224 px
    widths = torch.tensor([298, 224] * (n // 2))
    params = draw_params(torch.Generator().manual_seed(0), heights, widths, 224)
    # RandomRotation(5): U(-5, 5) degrees.
    assert params.angle.abs().max() <= ROTATION_DEGREES
    assert stats.kstest(params.angle.numpy(), stats.uniform(-5, 10).cdf).pvalue > 1e-3
    # RandomHorizontalFlip(0.5).
    assert abs(params.flip.double().mean().item() - 0.5) < 5 * (0.25 / n) ** 0.5
    # RandomCrop(224, padding=10): every offset 0..h + 20 - 224 of the padded image, uniformly.
    for offsets, sizes in ((params.top, heights), (params.left, widths)):
        for size in (224, 298):
            drawn = offsets[sizes == size]
            counts = torch.bincount(drawn, minlength=size + 20 - 224 + 1)
            assert drawn.min() == 0 and drawn.max() == size + 20 - 224
            assert stats.chisquare(counts.numpy()).pvalue > 1e-3


# --- the batch source --------------------------------------------------------------------------


def test_source_serves_each_sample_once_per_epoch_reproducibly(index, cache_dir):
    splits = make_splits(index, split="seed")
    train = source(index, cache_dir, splits.train, train=True, batch_size=8)
    assert train.num_samples == len(splits.train) and len(train) == -(-len(splits.train) // 8)

    def epoch(number: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        train.set_epoch(number)
        return list(train)

    first = epoch(0)
    assert len(first) == len(train)
    images, targets = map(torch.cat, zip(*first, strict=True))
    assert images.shape == (len(splits.train), 3, SIZE, SIZE) and images.dtype == torch.float32
    assert targets.dtype == torch.int64
    assert sorted(targets.tolist()) == sorted(index.samples[i].label for i in splits.train)
    assert sorted(train.epoch_plan()[0].tolist()) == list(range(len(splits.train)))
    again = epoch(0)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], epoch(1)[0][0])


def test_host_staged_cache_gives_the_same_batches(index, cache_dir):
    splits = make_splits(index, split="seed")
    for train, indices in ((True, splits.train), (False, splits.valid)):
        resident = source(index, cache_dir, indices, train=train, batch_size=4)
        staged = source(index, cache_dir, indices, train=train, batch_size=4)
        staged._store = fast._Staged(
            load_or_build(
                [index.samples[i].path for i in indices],
                root=index.root,
                kind="train" if train else "eval",
                image_size=SIZE,
                cache_dir=cache_dir,
            ),
            CPU,
        )
        for (a, y), (b, z) in zip(resident, staged, strict=True):
            assert torch.equal(a, b) and torch.equal(y, z)


def test_compiled_augmentation_equals_eager(index, cache_dir):
    splits = make_splits(index, split="seed")
    eager = source(index, cache_dir, splits.train, train=True, batch_size=16)
    compiled = source(index, cache_dir, splits.train, train=True, batch_size=16, compile=True)
    for (a, y), (b, z) in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        assert torch.equal(y, z)
