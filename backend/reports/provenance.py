"""Where a report's runs came from, and what each configuration changes from the baseline's.

Provenance is what the worker recorded of each run (its devices and the tricklab and torch versions
from the trainer's start event, the worker's name, the times) beside what its config says of the data
(dataset, split, image size). A configuration's differences are its config's dotted keys whose values differ from the
baseline's, the seed and the name left out (replicates and labels, not changes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from backend.reports.config_diff import IGNORED, flatten
from backend.reports.numbers import NONE

# What differs between seeds or is a label, not a change of the recipe.
NOT_RECORDED = "not recorded (trained before tricklab kept it, or not started)"


@dataclass(frozen=True)
class RunProvenance:
    run_id: int
    name: str
    status: str
    devices: str  # "4 × H200", "2 × CPU (gloo)", as the run page says it
    software: str  # "tricklab 0.1.0, torch 2.5.1", as the trainer reported it
    fallback: str | None  # why it trained on the CPU under runtime.device auto, in the trainer's words
    worker: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dataset: str
    split: str
    image_size: int


@dataclass(frozen=True)
class Difference:
    key: str
    baseline: str
    value: str


@dataclass(frozen=True)
class ConfigurationDifferences:
    label: str
    run_ids: list[int]
    is_baseline: bool
    differences: list[Difference]


class RecordedRun(Protocol):
    """What the report reads of a run row; read-only, so that ``backend.models.Run`` qualifies."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def devices(self) -> str | None: ...
    @property
    def device_fallback(self) -> str | None: ...
    @property
    def software(self) -> str | None: ...
    @property
    def worker(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...


def run_provenance(run: RecordedRun) -> RunProvenance:
    data = run.config.get("data", {})
    devices = run.devices or NONE
    if run.device_fallback:
        devices += " (CPU fallback, see below)"
    return RunProvenance(
        run_id=run.id,
        name=run.name,
        status=str(run.status),
        devices=devices,
        fallback=run.device_fallback,
        software=run.software or NOT_RECORDED,
        worker=run.worker or NONE,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        dataset=str(data.get("root", NONE)),
        split=f"{data.get('split', NONE)} (validation {data.get('valid_fraction', NONE)} of train, "
        f"split seed {data.get('split_seed', NONE)})",
        image_size=int(data.get("image_size", 0)),
    )


def fallback_notes(runs: Sequence[RunProvenance]) -> list[str]:
    """Why runs trained on the CPU although their config let them take a GPU: each reason once, with its runs."""
    reasons: dict[str, list[int]] = {}
    for run in runs:
        if run.fallback:
            reasons.setdefault(run.fallback, []).append(run.run_id)
    return [
        f"Runs {', '.join(f'#{run_id}' for run_id in ids)} trained on the CPU (runtime.device auto): {reason}"
        for reason, ids in reasons.items()
    ]


def _shown(value: Any) -> str:
    return NONE if value is None else value if isinstance(value, str) else json.dumps(value)


def differences(config: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[Difference]:
    """The keys whose values differ from the baseline's, in the config's order, as the compare page's
    config diff counts them (``config_diff.IGNORED`` never change a result)."""
    own, base = flatten(config), flatten(baseline)
    keys = list(dict.fromkeys([*own, *base]))
    return [
        Difference(key, _shown(base.get(key)), _shown(own.get(key)))
        for key in keys
        if key not in IGNORED and own.get(key) != base.get(key)
    ]


def configuration_differences(
    groups: Sequence[tuple[str, Sequence[int], Mapping[str, Any]]], baseline: Mapping[str, Any], baseline_label: str
) -> list[ConfigurationDifferences]:
    """Each configuration (its label, its runs and one run's config) against the baseline's config."""
    return [
        ConfigurationDifferences(label, list(run_ids), label == baseline_label, differences(config, baseline))
        for label, run_ids, config in groups
    ]
