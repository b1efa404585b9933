"""What a run's data-wait share says: over a fifth of the training pass spent waiting for batches means
the input pipeline, not the model, sets the pace, and the run's config says which part of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer.config import RunConfig

DATA_WAIT_HINT_SHARE = 0.2


def data_wait_hint(config: RunConfig | Mapping[str, Any], share: float | None) -> str | None:
    """A plain sentence naming the likely cause and the setting to change, or None below the threshold
    (a stored run's ``config`` is read only then)."""
    if share is None or share <= DATA_WAIT_HINT_SHARE:
        return None
    data = (config if isinstance(config, RunConfig) else RunConfig.model_validate(config)).data
    waited = f"{share * 100:.0f} % of each training pass waits for the next batch"
    if data.pipeline == "reference":
        workers = data.num_workers
        loaders = "no loader workers" if workers == 0 else f"{workers} loader worker{'s' if workers > 1 else ''}"
        return (
            f"{waited}: the reference pipeline decodes and transforms every JPEG on the CPU each epoch, "
            f"here with {loaders}. The fast pipeline (data.pipeline: fast) decodes once; "
            "or raise data.num_workers."
        )
    return (
        f"{waited}: the fast pipeline's cache is staged through host memory (it did not fit in the GPU's "
        "free memory, or the run trains on a CPU), so every batch is copied over. A smaller data.image_size "
        "or a GPU with more free memory keeps the cache on the device."
    )
