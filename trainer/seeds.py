"""The run's random streams: every draw of an epoch comes from a seed of (run seed, epoch, stream).

Nothing random is carried from one epoch to the next, so a run resumed at any epoch draws exactly
what it would have drawn going straight through. The stream numbers are part of every stored
result: changing one changes what a rerun of an old config computes.
"""

ORDER_STREAM = 0  # the train epoch's sample order; the fast path draws its augmentations from it too
MIXUP_STREAM = 2  # mixup's mixing weights and partners
SAMPLE_STREAM_BASE = 1_000  # the reference pipeline: image k's augmentation is stream 1000 + k


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch, random stream)."""
    return (seed * 1_000_003 + epoch * 1_009 + stream) % (2**63 - 1)


def order_seed(seed: int, epoch: int) -> int:
    return epoch_seed(seed, epoch, ORDER_STREAM)


def mixup_seed(seed: int, epoch: int) -> int:
    return epoch_seed(seed, epoch, MIXUP_STREAM)


def sample_seed(seed: int, epoch: int, item: int) -> int:
    """The seed of one image's augmentation: the same whichever loader worker decodes it."""
    return epoch_seed(seed, epoch, SAMPLE_STREAM_BASE + item)
