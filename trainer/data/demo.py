"""A small generated stand-in for CUB-200-2011, written in the archive's exact layout.

Each class is a fill x colour x shape combination drawn at a random position, size and rotation
over a noisy gradient background with clutter. Colours and shapes are shared between classes, so
neither alone names the class: a model has to learn both, yet a few epochs on a CPU get far above
chance. Everything that reads CUB reads this unchanged, so the whole product runs without the
1.1 GB download.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from trainer.data.cub import ROOT_NAME, DatasetError

# Ordered so that the first classes, which small demos use, differ the most.
SHAPES = ("Circle", "Cross", "Triangle", "Star", "Square", "Ring", "Diamond", "Crescent")
COLOURS = {
    "Red": (200, 40, 40),
    "Blue": (40, 80, 200),
    "Yellow": (225, 205, 40),
    "Green": (45, 150, 60),
    "Purple": (125, 60, 170),
    "Orange": (235, 135, 30),
    "Teal": (30, 150, 150),
    "Pink": (235, 125, 175),
    "Brown": (115, 70, 35),
    "Black": (25, 25, 25),
}
FILLS = ("Solid", "Striped", "Outlined")
MAX_CLASSES = len(SHAPES) * len(COLOURS) * len(FILLS)

_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "Square": [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)],
    "Triangle": [(math.cos(math.radians(a)), math.sin(math.radians(a))) for a in (-90, 30, 150)],
    "Star": [
        (
            (1.0 if i % 2 == 0 else 0.45) * math.cos(math.radians(-90 + 36 * i)),
            (1.0 if i % 2 == 0 else 0.45) * math.sin(math.radians(-90 + 36 * i)),
        )
        for i in range(10)
    ],
    "Cross": [
        (-0.3, -1),
        (0.3, -1),
        (0.3, -0.3),
        (1, -0.3),
        (1, 0.3),
        (0.3, 0.3),
        (0.3, 1),
        (-0.3, 1),
        (-0.3, 0.3),
        (-1, 0.3),
        (-1, -0.3),
        (-0.3, -0.3),
    ],
    "Diamond": [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)],
}


def class_specs(classes: int) -> list[tuple[str, str, str]]:
    """(fill, colour, shape) of each class.

    The first ten classes each have a colour and a shape of their own, so a small demo is learnable
    from scratch in a few CPU epochs; the background gradients and clutter keep it from being
    trivial. Later rounds pair each colour with a different shape, so with many classes neither
    colour nor shape alone names a class; the fill changes once every pair is used.
    """
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be 1..{MAX_CLASSES}, got {classes}")
    colours = list(COLOURS)
    specs = []
    for k in range(classes):
        colour, round_ = k % len(colours), k // len(colours)
        shape = (round_ % len(SHAPES) + colour) % len(SHAPES)
        specs.append((FILLS[round_ // len(SHAPES)], colours[colour], SHAPES[shape]))
    return specs


def class_name(fill: str, colour: str, shape: str) -> str:
    return f"{colour}_{shape}" if fill == "Solid" else f"{fill}_{colour}_{shape}"


def _shape_mask(shape: str, fill: str, diameter: int) -> Image.Image:
    mask = Image.new("L", (diameter, diameter), 0)
    draw = ImageDraw.Draw(mask)
    centre = radius = (diameter - 1) / 2

    def circle(scale: float, dx: float = 0.0, value: int = 255) -> None:
        r = radius * scale
        draw.ellipse([centre + dx - r, centre - r, centre + dx + r, centre + r], fill=value)

    if shape in _POLYGONS:
        draw.polygon([(centre + x * radius, centre + y * radius) for x, y in _POLYGONS[shape]], fill=255)
    else:
        circle(1.0)
        if shape == "Ring":
            circle(0.55, value=0)
        elif shape == "Crescent":
            circle(0.85, dx=radius * 0.45, value=0)
    if fill == "Outlined":
        width = max(3, diameter // 8) | 1  # MinFilter needs an odd size
        inner = mask.filter(ImageFilter.MinFilter(width))
        mask = Image.fromarray(np.asarray(mask) - np.asarray(inner))
    return mask


def _render(rng: np.random.Generator, spec: tuple[str, str, str], size: int) -> tuple[Image.Image, tuple[int, ...]]:
    """One image and the (x, y, w, h) box of its shape."""
    fill, colour, shape = spec
    long_side = round(size * 4 / 3)
    width, height = (long_side, size) if rng.random() < 0.7 else (size, long_side)

    # Background: a two-colour gradient in a random direction, with pixel noise.
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.arange(width, dtype=np.float32) * math.cos(angle) + np.arange(height, dtype=np.float32)[
        :, None
    ] * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    start, end = rng.uniform(40, 220, size=(2, 3)).astype(np.float32)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * 8
    background = start + ramp[..., None] * (end - start) + noise
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 9)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        extent = rng.uniform(0.03, 0.12) * size
        # Washed-out clutter: it distracts, but a saturated blob would pass for a class's shape.
        grey = rng.uniform(60, 200)
        clutter = tuple(int(0.3 * v + 0.7 * grey) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse([x - extent, y - extent / 2, x + extent, y + extent / 2], fill=clutter)
        else:
            end_x, end_y = x + rng.uniform(-2, 2) * extent, y + rng.uniform(-2, 2) * extent
            draw.line([x, y, end_x, end_y], fill=clutter, width=max(1, size // 40))

    diameter = max(8, int(rng.uniform(0.35, 0.65) * size))
    mask = _shape_mask(shape, fill, diameter)
    jittered = np.array(COLOURS[colour], np.float32) * rng.uniform(0.85, 1.15) + rng.normal(0, 12, size=3)
    paint = np.empty((diameter, diameter, 3), np.float32)
    paint[:] = jittered
    if fill == "Striped":
        period = max(2, diameter // 6)
        stripes = (np.add.outer(np.arange(diameter), np.arange(diameter)) // period) % 2 == 1
        paint[stripes] = 235
    layer = Image.fromarray(np.clip(paint, 0, 255).astype(np.uint8)).convert("RGBA")
    layer.putalpha(mask)
    layer = layer.rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR, expand=True)
    left = int(rng.integers(0, max(1, width - layer.width + 1)))
    top = int(rng.integers(0, max(1, height - layer.height + 1)))
    image.paste(layer, (left, top), layer)

    x0, y0, x1, y1 = layer.getchannel("A").getbbox() or (0, 0, layer.width, layer.height)
    x0, y0 = left + x0, top + y0
    x1, y1 = min(width, left + x1), min(height, top + y1)
    return image, (x0, y0, x1 - x0, y1 - y0)


def write_demo_dataset(
    dest: str | Path, *, classes: int = 10, per_class: int = 40, size: int = 96, seed: int = 0
) -> Path:
    """Write ``dest/CUB_200_2011`` (refusing to overwrite one) and return its path.

    ``size`` is the short side; images are 4:3, mostly landscape. The archive-style
    train_test_split.txt marks about half of each class as train. Deterministic for a seed.
    """
    specs = class_specs(classes)
    if per_class < 2:
        raise ValueError(f"per_class must be at least 2 (every split needs train and test images), got {per_class}")
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    dest = Path(dest).expanduser()
    target = dest / ROOT_NAME
    if target.exists():
        raise DatasetError(f"{target} already exists; remove it or choose another folder for the demo dataset")
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Built in a scratch folder and renamed at the end, so an interrupted run leaves no half dataset.
    scratch = Path(tempfile.mkdtemp(prefix=f".{ROOT_NAME}-", dir=dest))
    try:
        images, labels, split, boxes, class_lines = [], [], [], [], []
        image_id = 0
        for label, spec in enumerate(specs, start=1):
            name = class_name(*spec)
            folder = f"{label:03d}.{name}"
            class_lines.append(f"{label} {folder}")
            (scratch / "images" / folder).mkdir(parents=True)
            is_train = rng.permutation(per_class) < (per_class + 1) // 2
            for number in range(1, per_class + 1):
                image_id += 1
                relative = f"{folder}/{name}_{number:04d}_{int(rng.integers(100000, 1000000))}.jpg"
                image, box = _render(rng, spec, size)
                image.save(scratch / "images" / relative, quality=90)
                images.append(f"{image_id} {relative}")
                labels.append(f"{image_id} {label}")
                split.append(f"{image_id} {int(is_train[number - 1])}")
                boxes.append(f"{image_id} " + " ".join(f"{float(v):.1f}" for v in box))
        for filename, lines in (
            ("classes.txt", class_lines),
            ("images.txt", images),
            ("image_class_labels.txt", labels),
            ("train_test_split.txt", split),
            ("bounding_boxes.txt", boxes),
        ):
            (scratch / filename).write_text("\n".join(lines) + "\n", encoding="utf-8")
        # mkdtemp makes the folder private; a dataset is read by other users and containers too.
        scratch.chmod(0o755)
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target
