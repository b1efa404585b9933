"""Decode-once cache: each image decoded and resized once, packed as uint8 pixels in one file.

Layout. ``<kind>-<S>px-<key>.u8`` holds RGB pixels (HWC, row by row), the images back to back;
``<kind>-<S>px-<key>.json`` beside it holds each image's height and width, from which the offsets
follow. CUB's images vary in aspect (most 500x375, some portrait, a few much wider or taller) and
Resize(S) keeps the aspect with the short side at S, so an S x S slot would lose the long side that
RandomCrop and the rotation reach, and one slot of the widest image's size would make every image
pay for it. Packing stores exactly what the reference pipeline would have in memory.

- ``train`` entries: the image as the reference's ``Resize(S)`` leaves it (short side S, long side
  ``int(S * long / short)``), framed by a ``BORDER`` of black pixels so that the augmentation turns
  any coordinate outside the image into black (RandomRotation's and RandomCrop's fill) by clamping.
- ``eval`` entries: ``Resize(S)`` then ``CenterCrop(S)``, the whole reference eval transform short of
  ToTensor and Normalize: S x S each.

For CUB at 224 px: 8.5k train images of about 226 x 300 x 3 bytes, 1.7 GB, and 3.3k eval images of
150 kB, 0.5 GB. The file is memory-mapped, so the page cache holds it once for every run reading it.

Key: a hash of the layout version, kind, size, the dataset folder and, for each selected image in
order, its path, byte size and modification time. Another split, size or a replaced image gives a new
key and a new file; a complete file with the key is reused, and files of old keys stay until the
folder is deleted. Building decodes with every core and shows a progress bar; a lock makes
concurrent runs on one dataset build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import functional as F
from tqdm import tqdm

from trainer.data.cub import DatasetError, check_images, read_cub, unreadable_images
from trainer.files import write_atomic, write_atomic_with

LAYOUT_VERSION = 1
BORDER = 1  # black pixels around each train entry
KINDS = ("train", "eval")


@dataclass
class PackedImages:
    """A loaded cache: ``pixels`` is uint8 (P, 3); entry k starts at pixel row ``starts[k]``.

    ``heights``/``widths`` are the image sizes; train entries are stored ``BORDER`` larger on each side.
    """

    pixels: Tensor
    heights: Tensor  # int64
    widths: Tensor
    starts: Tensor
    sizes: Tensor  # pixels per entry, border included


def cache_dir(cub_root: Path) -> Path:
    """Decoded-image caches live beside the dataset, so every run on it shares them."""
    return cub_root.parent / ".tricklab-cache"


def _border(kind: str) -> int:
    return BORDER if kind == "train" else 0


def cache_key(paths: list[Path], *, root: Path, kind: str, image_size: int) -> str:
    digest = hashlib.sha256(json.dumps([LAYOUT_VERSION, kind, image_size, str(Path(root).resolve())]).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"\n{path}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _decode(job: tuple[str, str, int]) -> np.ndarray | Exception:
    """Decode and resize one image exactly as the reference transforms do (PIL, then torchvision);
    a file PIL cannot decode gives its error, so that one build names every unreadable file."""
    path, kind, size = job
    try:
        with Image.open(path) as file:
            image = F.resize(file.convert("RGB"), size)
    except Exception as exc:  # noqa: BLE001 - PIL signals corrupt files with many exception types
        return OSError(str(exc))  # a plain error: any exception type must survive the pool's pickling
    if kind == "eval":
        return np.asarray(F.center_crop(image, size))
    return np.pad(np.asarray(image), ((BORDER, BORDER), (BORDER, BORDER), (0, 0)))


def load_or_build(paths: list[Path], *, root: Path, kind: str, image_size: int, cache_dir: Path) -> PackedImages:
    """The cache of ``paths`` (in order) for ``kind`` at ``image_size``, built first if missing."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = cache_dir / f"{kind}-{image_size}px-{cache_key(paths, root=root, kind=kind, image_size=image_size)}"
    meta_path, data_path = stem.with_suffix(".json"), stem.with_suffix(".u8")
    with open(stem.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first one's build, then reads it
        if not meta_path.exists():
            _build(paths, root=root, kind=kind, image_size=image_size, data_path=data_path, meta_path=meta_path)
    meta = json.loads(meta_path.read_text())
    heights = torch.tensor(meta["heights"], dtype=torch.int64)
    widths = torch.tensor(meta["widths"], dtype=torch.int64)
    sizes = (heights + 2 * _border(kind)) * (widths + 2 * _border(kind))
    pixels = torch.empty(0, 3, dtype=torch.uint8)
    if int(sizes.sum()):
        # Copy-on-write mapping: writable for torch, never written back, paged in from the page cache.
        pixels = torch.from_numpy(np.memmap(data_path, dtype=np.uint8, mode="c").reshape(-1, 3))
    return PackedImages(pixels, heights, widths, torch.cumsum(sizes, 0) - sizes, sizes)


def _build(paths: list[Path], *, root: Path, kind: str, image_size: int, data_path: Path, meta_path: Path) -> None:
    heights, widths = [], []
    unreadable: list[tuple[Path, Exception]] = []
    jobs = [(str(path), kind, image_size) for path in paths]
    processes = min(len(os.sched_getaffinity(0)), max(1, len(jobs)))

    def decode_into(out: BinaryIO) -> None:
        with multiprocessing.Pool(processes) as pool:
            progress = tqdm(
                pool.imap(_decode, jobs, chunksize=8),
                total=len(jobs),
                unit="img",
                mininterval=1.0,
                desc=f"caching {kind} images at {image_size}px",
            )
            for path, array in zip(paths, progress, strict=True):
                if isinstance(array, Exception):
                    unreadable.append((path, array))
                    continue
                out.write(array.data)
                heights.append(array.shape[0] - 2 * _border(kind))
                widths.append(array.shape[1] - 2 * _border(kind))
        if unreadable:
            # Raised inside the write, so the partial file goes.
            raise _every_unreadable(root, unreadable)

    write_atomic_with(data_path, decode_into)
    # The metadata is written last: its presence marks a complete cache.
    write_atomic(
        meta_path,
        json.dumps(
            {"version": LAYOUT_VERSION, "kind": kind, "image_size": image_size, "heights": heights, "widths": widths}
        ),
    )


def _every_unreadable(root: Path, found: list[tuple[Path, Exception]]) -> DatasetError:
    """The error naming every image of the dataset that cannot be read, as `tricklab data check` does,
    not only those of the split being built."""
    try:
        check_images(read_cub(root))
    except DatasetError as whole:
        if "cannot be read" in str(whole):
            return whole
    return unreadable_images(root, found)  # not a complete CUB layout, or only a full decode fails
