"""RunConfig.fingerprint() is stored with every run (runs.config_hash) and compared with new configs."""

from __future__ import annotations

from typing import Any

from trainer.config import RunConfig


def test_the_fingerprint_of_a_fixed_config_is_pinned():
    """A study reuses a succeeded run whose stored fingerprint equals a planned run's, so a fingerprint
    that changes for the same config (a new default, a field renamed or reordered in the hash) makes
    every stored run unreusable. If this fails on purpose, say so where the change is released."""
    values: dict[str, Any] = {
        "name": "pinned",
        "epochs": 3,
        "data": {"root": "/data/cub", "image_size": 32},
        "model": {"arch": "resnet18", "pretrained": False},
        "tricks": {"label_smoothing": 0.1},
    }
    assert RunConfig.from_dict(values).fingerprint() == "28353c6b311812c8"
    # A rerun under another name, device and loader worker count is the same run.
    rerun = {**values, "name": "again", "data": {**values["data"], "num_workers": 7}, "runtime": {"device": "cpu"}}
    assert RunConfig.from_dict(rerun).fingerprint() == "28353c6b311812c8"
