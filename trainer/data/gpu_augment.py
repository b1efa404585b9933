"""The report's train augmentation, drawn per sample and applied to a whole batch on the device.

The reference (``transforms.train_transform``) does, per image, after ``Resize(S)``:
``RandomRotation(5)`` (NEAREST interpolation, black fill), ``RandomHorizontalFlip(0.5)``,
``RandomCrop(S, padding=crop_padding(S))`` (black padding), ``ToTensor``, ``Normalize``.
A nearest-neighbour rotation, a flip and an integer crop compose into one map from each output
pixel to one source pixel or to black, so the whole chain is an index computation, one gather from
the cached uint8 pixels and a fused normalize. ``affine_grid``/``grid_sample(mode="nearest")``
would compute nearly the same map, but only after padding every image of the batch to one size and
converting it to float; the gather reads the packed, variable-size cache directly.

The map is Pillow's own: ``Image.rotate`` inverts the rotation about ``(w/2, h/2)`` and, for
NEAREST, walks it in 16.16 fixed point (``affine_fixed`` in Pillow's Geometry.c). The same integer
coefficients here make the rotated pixels identical to the reference's, not just close; a float map
differs on about 0.1% of pixels, where the fixed-point rounding crosses a pixel edge. Each cached
train image has a black border (see ``cache.py``): a coordinate outside the image is clamped onto
it, which is what makes it black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trainer.data.cache import BORDER
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, crop_padding

ROTATION_DEGREES = 5.0  # the report's RandomRotation(5)
FLIP_PROBABILITY = 0.5
_FIXED_BITS = 16  # Pillow's 16.16 fixed point
# Where the crop's padding rows and columns are sent: far outside any image, so they clamp onto the border.
_FAR = 1 << 20


@dataclass
class AugmentParams:
    """Per-sample draws, one row per sample, in the order the samples are served."""

    angle: Tensor  # degrees, U(-5, 5) as RandomRotation draws it
    flip: Tensor  # bool, True with probability 0.5
    top: Tensor  # crop offset in the padded image, uniform over 0..h + 2p - S as RandomCrop draws it
    left: Tensor  # likewise over 0..w + 2p - S
    rotation: Tensor  # int64 (n, 6): Pillow's fixed-point inverse map for the angle and the image's size

    def take(self, rows: slice) -> AugmentParams:
        return AugmentParams(*(field[rows] for field in self._fields()))

    def to(self, device: torch.device) -> AugmentParams:
        return AugmentParams(*(field.to(device, non_blocking=True) for field in self._fields()))

    def _fields(self) -> tuple[Tensor, ...]:
        return self.angle, self.flip, self.top, self.left, self.rotation


def pil_rotation(angle: float, width: int, height: int) -> list[int]:
    """The 16.16 fixed-point map ``Image.rotate(angle)`` samples with for NEAREST, as Pillow computes it.

    Output pixel (x, y) reads source column ``(a2 + a0*x + a1*y) >> 16``, row ``(a5 + a3*x + a4*y) >> 16``.
    """
    radians = -math.radians(angle % 360.0)
    m0, m1 = round(math.cos(radians), 15), round(math.sin(radians), 15)
    m3, m4 = round(-math.sin(radians), 15), round(math.cos(radians), 15)
    cx, cy = width / 2, height / 2
    m2 = m0 * -cx + m1 * -cy + 0.0 + cx
    m5 = m3 * -cx + m4 * -cy + 0.0 + cy

    def fix(value: float) -> int:
        return math.floor(value * 65536.0 + 0.5)

    return [fix(m0), fix(m1), fix(m2 + m0 * 0.5 + m1 * 0.5), fix(m3), fix(m4), fix(m5 + m3 * 0.5 + m4 * 0.5)]


def draw_params(generator: torch.Generator, heights: Tensor, widths: Tensor, image_size: int) -> AugmentParams:
    """Draw the reference's transform parameters for images of the given (resized) sizes, on the CPU.

    Drawing on the CPU keeps a run's augmentation identical on every device for one seed.
    """
    n = heights.numel()
    pad = crop_padding(image_size)
    angle = torch.empty(n).uniform_(-ROTATION_DEGREES, ROTATION_DEGREES, generator=generator)
    flip = torch.rand(n, generator=generator) < FLIP_PROBABILITY
    # float64 uniforms times the number of offsets stay below it, so the floor is never out of range.
    spans = torch.stack([heights, widths]) + 2 * pad - image_size + 1
    offsets = (torch.rand(2, n, generator=generator, dtype=torch.float64) * spans).long()
    rotation = torch.tensor(
        [pil_rotation(a, w, h) for a, w, h in zip(angle.tolist(), widths.tolist(), heights.tolist(), strict=True)],
        dtype=torch.int64,
    ).view(n, 6)
    return AugmentParams(angle, flip, offsets[0], offsets[1], rotation)


def normalization(device: torch.device) -> tuple[Tensor, Tensor]:
    """``(bias, scale)`` with ``bias + uint8 * scale`` = Normalize(ToTensor(x)), made once per source:
    a tensor built from Python values per batch would be a blocking copy that stalls the GPU queue."""
    mean = torch.tensor(IMAGENET_MEAN, device=device)
    std = torch.tensor(IMAGENET_STD, device=device)
    return -mean / std, 1.0 / (255.0 * std)


def normalize(rgb: Tensor, norm: tuple[Tensor, Tensor]) -> Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W), ToTensor and Normalize in one pass.

    The result is NCHW in channels_last memory, the layout the CUDA loop converts to anyway.
    """
    bias, scale = norm
    return torch.addcmul(bias, rgb, scale).permute(0, 3, 1, 2)


def augment(
    pixels: Tensor,
    starts: Tensor,
    heights: Tensor,
    widths: Tensor,
    params: AugmentParams,
    image_size: int,
    norm: tuple[Tensor, Tensor],
) -> Tensor:
    """Rotate, flip, crop and normalize a batch; returns float32 (N, 3, S, S).

    ``pixels`` is the cache's uint8 (P, 3) pixel rows; sample k is the bordered image of
    ``heights[k] x widths[k]`` (sizes without the border) starting at pixel row ``starts[k]``.
    ``norm`` is ``normalization(device)``.
    """
    pad = crop_padding(image_size)
    h, w = heights[:, None], widths[:, None]
    steps = torch.arange(image_size, device=pixels.device)
    # Column and row of each output pixel in the rotated image: the crop's frame less the padding, flipped.
    x = steps + (params.left - pad)[:, None]
    x = torch.where(params.flip[:, None], w - 1 - x, x)
    y = steps + (params.top - pad)[:, None]
    x = x.masked_fill((x < 0) | (x >= w), _FAR)
    y = y.masked_fill((y < 0) | (y >= h), _FAR)
    a0, a1, a2, a3, a4, a5 = (c[:, None] for c in params.rotation.unbind(1))
    # Fixed-point source coordinates as (N, 1, S) column terms + (N, S, 1) row terms, shifted by the border.
    col = ((a2 + (BORDER << _FIXED_BITS) + a0 * x)[:, None, :] + (a1 * y)[:, :, None]) >> _FIXED_BITS
    row = ((a5 + (BORDER << _FIXED_BITS) + a3 * x)[:, None, :] + (a4 * y)[:, :, None]) >> _FIXED_BITS
    col = col.clamp(min=0).minimum((w + 2 * BORDER - 1)[:, :, None])
    row = row.clamp(min=0).minimum((h + 2 * BORDER - 1)[:, :, None])
    return normalize(pixels[starts[:, None, None] + row * (w + 2 * BORDER)[:, :, None] + col], norm)
