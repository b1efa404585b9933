"""What sets the compared configurations apart: the config keys whose values differ between them,
one column per configuration (its seeds and repeats collapsed into one), side by side.

The keys that never change a result (the name, the seed that tells replicates apart, the loader's
workers, the device, the step log) are left out, as ``RunConfig.fingerprint`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from backend.reports.compare import configuration_key
from backend.schemas.compare import ConfigDiff, DiffColumn, DiffRow
from trainer.config import RunConfig

IGNORED = frozenset({"name", "seed", "data.num_workers", "runtime.device", "runtime.step_log_every"})


class ConfiguredRun(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def config(self) -> RunConfig: ...


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config values as dotted keys (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def config_diff(runs: Sequence[ConfiguredRun]) -> ConfigDiff:
    """One column per configuration in the order the runs come, and one row per key that differs."""
    columns: dict[str, list[ConfiguredRun]] = {}
    for run in runs:
        columns.setdefault(configuration_key(run.config), []).append(run)
    flats = {key: flatten(members[0].config.model_dump(mode="json")) for key, members in columns.items()}
    keys = dict.fromkeys(key for flat in flats.values() for key in flat if key not in IGNORED)
    missing = object()
    rows = [
        DiffRow(key=key, values=[flat.get(key) for flat in flats.values()])
        for key in keys
        if len({repr(flat.get(key, missing)) for flat in flats.values()}) > 1
    ]
    return ConfigDiff(
        columns=[
            DiffColumn(configuration=key, name=members[0].name, run_ids=[run.id for run in members])
            for key, members in columns.items()
        ],
        rows=rows,
    )
