"""Whether the ImageNet weights a pretrained run starts from can be had, checked before it is queued.

A run whose weights are neither in torchvision's cache nor downloadable fails seconds after it
starts, after waiting its turn in the queue; a study of 48 such runs would fail 48 times. A single
run (``runs.queue_run``) and a study (``study_layout.check_weights``) are refused with the same words,
``weights_errors``. The check looks at the cache (and at
``model.weights_path``), then asks the download host whether it answers, and gives the trainer's
own message when neither works. It checks the server's machine: workers elsewhere with their own
cache are not seen, and ``model.weights_path`` is the way to point every machine at one file.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from trainer.config import RunConfig
from trainer.models.weights import IMAGENET1K_V1_URLS, cached_weights, unavailable_message

PROBE_TIMEOUT_SECONDS = 3.0
FROM_SCRATCH = "Or train from scratch: model.pretrained = false."
# One answer of the download host stands for a minute: a form that asks on every edit costs one probe.
PROBE_KEEP_SECONDS = 60.0
_probes: dict[str, tuple[float, str | None]] = {}


def _download_problem(url: str) -> str | None:
    """None when ``url`` answers, else why not."""
    known = _probes.get(url)
    if known is not None and time.monotonic() - known[0] < PROBE_KEEP_SECONDS:
        return known[1]
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_SECONDS):
            problem = None
    except (urllib.error.URLError, OSError) as exc:
        problem = str(exc)
    _probes[url] = (time.monotonic(), problem)
    return problem


def missing_weights(configs: Iterable[RunConfig]) -> dict[str, str]:
    """For each architecture whose pretrained weights no run could load, the message saying what to do;
    and for a ``model.weights_path`` that does not exist, that."""
    problems: dict[str, str] = {}
    for config in configs:
        model = config.model
        if not model.pretrained:
            continue
        if model.weights_path is not None:
            path = Path(model.weights_path).expanduser()
            if not path.is_file():
                problems["model.weights_path"] = f"no such file {path}"
            continue
        url = IMAGENET1K_V1_URLS.get(model.arch)
        # timm's weights live in the Hugging Face cache, which only the trainer reads (it imports torch).
        if url is None or model.arch in problems or cached_weights(model.arch).is_file():
            continue
        reason = _download_problem(url)
        if reason is not None:
            problems[model.arch] = unavailable_message(model.arch, url, reason)
    return problems


def weights_errors(configs: Iterable[RunConfig]) -> dict[str, str]:
    """``missing_weights`` as a 422 says it, by the config field to change: ``model.pretrained`` for
    weights that cannot be had (every architecture's message, and the way out), ``model.weights_path``
    for a file that does not exist."""
    problems = missing_weights(configs)
    errors = {}
    if path := problems.pop("model.weights_path", None):
        errors["model.weights_path"] = path
    if problems:
        errors["model.pretrained"] = " ".join(problems.values()) + " " + FROM_SCRATCH
    return errors
