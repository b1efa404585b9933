"""Where a report's runs came from, and what each configuration changes from the baseline's config."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from backend.reports.provenance import NOT_RECORDED, differences, fallback_notes, run_provenance
from trainer.config import RunConfig

WHEN = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
REASON = "Found no NVIDIA driver on your system."


def recorded(run_id: int, **fields: object) -> SimpleNamespace:
    values = {
        "id": run_id, "name": f"run {run_id}", "status": "succeeded", "config": RunConfig().model_dump(mode="json"),
        "devices": "1 × CPU", "device_fallback": None, "software": None, "worker": "w1",
        "created_at": WHEN, "started_at": WHEN, "finished_at": None,
    }  # fmt: skip
    return SimpleNamespace(**(values | fields))


def test_a_runs_provenance_says_what_was_recorded_and_what_was_not():
    old = run_provenance(recorded(1))
    assert (old.software, old.devices, old.dataset, old.image_size) == (NOT_RECORDED, "1 × CPU", "data", 224)
    assert old.split == "seed (validation 0.1 of train, split seed 1234)"
    new = run_provenance(recorded(2, software="tricklab 0.1.0, torch 2.5.1", device_fallback=REASON))
    assert new.software == "tricklab 0.1.0, torch 2.5.1" and new.devices == "1 × CPU (CPU fallback, see below)"
    # The trainer's long reason is said once for every run it concerns, not in each row.
    notes = fallback_notes([new, run_provenance(recorded(3)), run_provenance(recorded(4, device_fallback=REASON))])
    assert notes == [f"Runs #2, #4 trained on the CPU (runtime.device auto): {REASON}"]


def test_differences_are_the_dotted_keys_that_differ_seed_and_name_left_out():
    base = RunConfig().model_dump(mode="json")
    other = RunConfig.model_validate(
        {"name": "x", "seed": 7, "schedule": {"name": "cosine"}, "tricks": {"kd": {"teacher": 3}}}
    ).model_dump(mode="json")
    found = {(d.key, d.baseline, d.value) for d in differences(other, base)}
    assert found == {("schedule.name", "onecycle", "cosine"), ("tricks.kd.teacher", "–", "3")}
    assert differences(base, base) == []
