"""The compare page's config diff: only the keys that differ, replicates in one column."""

from __future__ import annotations

from dataclasses import dataclass

from backend.reports.config_diff import config_diff, flatten
from trainer.config import RunConfig


@dataclass
class Compared:
    id: int
    name: str
    config: RunConfig


def run(run_id: int, **values) -> Compared:
    config = RunConfig.from_dict({"name": f"r{run_id}", **values})
    return Compared(run_id, config.name, config)


def test_only_differing_keys_show_and_seeds_collapse_into_one_column():
    runs = [
        run(1, seed=1),
        run(2, seed=2, runtime={"device": "cpu"}),  # a replicate of 1: another seed and device
        run(3, seed=1, tricks={"label_smoothing": 0.1}, optim={"layer_lr_divisors": {"stem": 5.0}}),
    ]
    diff = config_diff(runs)
    assert [(column.name, column.run_ids) for column in diff.columns] == [("r1", [1, 2]), ("r3", [3])]
    assert {row.key: row.values for row in diff.rows} == {
        "tricks.label_smoothing": [0.0, 0.1],
        "optim.layer_lr_divisors.stem": [10.0, 5.0],
    }


def test_one_configuration_has_nothing_to_set_apart():
    diff = config_diff([run(1, seed=1), run(2, seed=2)])
    assert len(diff.columns) == 1 and diff.rows == []


def test_flatten_keeps_lists_and_empty_objects_as_values():
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": {}}}) == {"a.b": 1, "a.c": [1, 2], "a.d": {}}
