"""The LR range test's loop on the generated dataset: every group at its share of the sweep's exact rate,
the stop rule ending it, a sane suggestion, and nothing left behind in its folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testlib.models import TINY_ARCH

import trainer.lr_finder.range_test
from trainer.config import RunConfig, apply_overrides
from trainer.data.demo import write_demo_dataset
from trainer.loop.reporters import BaseReporter
from trainer.lr_finder.range_test import range_test
from trainer.lr_finder.sweep import LRSweep, sweep_rates
from trainer.models.stages import group_peak_lrs
from trainer.protocol import RunFolder


def tiny_config(data_root: Path, **overrides) -> RunConfig:
    values = {
        "name": "lr-range",
        "batch_size": 16,
        "data": {"root": str(data_root), "image_size": 32, "num_workers": 0},
        "model": {"arch": TINY_ARCH, "pretrained": False},
        "runtime": {"device": "cpu"},
    }
    return RunConfig.from_dict(apply_overrides(values, overrides))


class Recorder(BaseReporter):
    def __init__(self):
        self.steps: list[dict] = []
        self.results: list[dict] = []
        self.starts: list[dict] = []

    def start(self, info):
        self.starts.append(info)

    def step(self, event):
        self.steps.append(event)

    def lr_range(self, result):
        self.results.append(result)


def test_every_group_trains_at_its_share_of_the_sweeps_exact_rate(demo_dataset, monkeypatch):
    config = tiny_config(demo_dataset, **{"optim.linear_scaling": True, "optim.lr": 3e-4})
    sweep = LRSweep(start_lr=1e-6, end_lr=1e-2, steps=7, stop_factor=1000)
    seen: list[dict[str, float]] = []
    real_step = trainer.lr_finder.range_test.train_step

    def recording_step(**kwargs):
        seen.append({group["name"]: group["lr"] for group in kwargs["optimizer"].param_groups})
        return real_step(**kwargs)

    monkeypatch.setattr(trainer.lr_finder.range_test, "train_step", recording_step)
    recorder = Recorder()
    analysis = range_test(config, sweep, reporter=recorder)

    rates = sweep_rates(sweep)
    assert [event["lr"] for event in recorder.steps] == rates  # the exponential schedule, exactly
    assert [event["step"] for event in recorder.steps] == list(range(1, 8))
    # The demo's 32 training images make 2 batches an epoch: the sweep goes on into the next epochs.
    assert [event["epoch"] for event in recorder.steps] == [1, 1, 2, 2, 3, 3, 4]
    peaks = group_peak_lrs(config.optim, lr_scale=config.lr_scale)
    for rate, groups in zip(rates, seen, strict=True):
        assert groups == pytest.approx({name: rate * peak / config.optim.lr for name, peak in peaks.items()})
    assert config.lr_scale == 16 / 256 and groups["stem"] == pytest.approx(rates[-1] * config.lr_scale / 10)
    assert recorder.results[0]["steps"] == 7 and recorder.results[0]["stop_step"] is None
    assert len(analysis.points) == 7


def test_the_stop_rule_ends_the_sweep_and_the_suggestion_is_sane(tmp_path):
    write_demo_dataset(tmp_path / "data", classes=4, per_class=40, size=32, seed=2)
    # resnet18's loss blows up within the sweep's 100 steps; the tiny test model's, on half the seeds
    # tried, does not, and the sweep then ends without a stop.
    config = tiny_config(tmp_path / "data", **{"model.arch": "resnet18"})
    sweep = LRSweep()  # the report's: 1e-7 to 10 over 100 steps, smoothed at 0.05, stopping past 5x the lowest
    recorder = Recorder()
    analysis = range_test(config, sweep, reporter=recorder)

    result = recorder.results[0]
    assert result["stop_step"] is not None and result["stop_step"] < 100, result
    assert len(recorder.steps) == result["stop_step"] == result["steps"]
    assert "passed 5x its lowest" in result["stop_reason"] or "not a finite number" in result["stop_reason"]
    # Adam on a small ResNet from scratch: a rate between 1e-4 and 1e-1, below the minimum's.
    assert result["suggestion"] is not None and 1e-4 <= result["suggestion"] <= 1e-1, result
    assert result["suggestion"] < result["minimum_lr"]
    assert analysis.suggestion == result["suggestion"]


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_a_range_test_folder_streams_its_steps_and_leaves_nothing_to_resume(demo_dataset, tmp_path):
    folder = RunFolder(tmp_path / "lr-range")
    folder.path.mkdir()
    tiny_config(demo_dataset).save(folder.config)
    LRSweep(start_lr=1e-5, end_lr=1e-1, steps=5).save(folder.sweep)
    (folder.path / "ATTEMPT").write_text("1\n")
    completed = run_module("run", str(folder.path), "--attempt", "1")
    assert completed.returncode == 0, completed.stderr
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [event["type"] for event in events] == ["start", *["step"] * 5, "lr_range"]
    assert events[0]["start_epoch"] == 0
    assert [event["step"] for event in events[1:-1]] == [1, 2, 3, 4, 5]
    # No checkpoint, no metrics, no TensorBoard: only what the worker wrote is there.
    assert sorted(path.name for path in folder.path.rglob("*")) == ["ATTEMPT", "config.json", "sweep.json"]

    (folder.path / "ATTEMPT").write_text("2\n")
    assert run_module("run", str(folder.path), "--attempt", "1").returncode == 3


def test_a_bad_sweep_file_is_an_error_event_not_a_traceback(demo_dataset, tmp_path):
    folder = RunFolder(tmp_path / "lr-range")
    folder.path.mkdir()
    tiny_config(demo_dataset).save(folder.config)
    folder.sweep.write_text('{"steps": 1}')
    completed = run_module("run", str(folder.path))
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    error = json.loads(completed.stdout.splitlines()[-1])
    assert error["type"] == "error" and "sweep.steps" in error["message"]


def test_tricklab_lr_find_prints_the_curve_and_names_a_bad_flag(demo_dataset, tmp_path):
    config = tmp_path / "config.json"
    tiny_config(demo_dataset).save(config)
    command = [sys.executable, "-m", "backend", "lr-find", str(config), "--rows", "0"]
    done = subprocess.run(
        [*command, "--start-lr", "1e-5", "--end-lr", "1", "--steps", "6", "--smoothing", "0.3"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["step", "lr", "loss", "smoothed"]
    rows = [line.split() for line in lines[1:] if line[:5].strip().isdigit()]
    rates = sweep_rates(LRSweep(start_lr=1e-5, end_lr=1, steps=6))
    assert [float(row[1]) for row in rows] == pytest.approx(rates[: len(rows)], rel=5e-3)
    assert any(line.startswith("minimum: smoothed loss") for line in lines)
    assert any(line.startswith(("suggestion: optim.lr = ", "no suggestion")) for line in lines)

    bad = subprocess.run([*command, "--steps", "1"], check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--steps: Input should be greater than or equal to 2" in bad.stderr
    assert "Traceback" not in bad.stderr
