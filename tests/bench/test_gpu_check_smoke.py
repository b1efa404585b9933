"""``bench/gpu_check.sh --smoke``: every step of the GPU check at toy size on this CPU, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# The script's own budget is 600 s; beside the other tests on a busy machine it needs more than the
# suite's 300 s default.
@pytest.mark.timeout(700)
def test_the_gpu_check_runs_every_step_and_writes_one_summary(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "TRICKLAB_BENCH_ROOT": str(tmp_path / "bench")}
    done = subprocess.run(
        [str(REPO / "bench" / "gpu_check.sh"), "--smoke", "--budget", "600"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=660,
        check=False,  # the test reads the exit code
    )
    summary = json.loads((out / "gpu_check.json").read_text())
    assert done.returncode == 0, (summary["failed"], done.stdout[-3000:])
    steps = summary["steps"]
    assert set(steps) == {
        "environment",
        "data",
        "throughput",
        "tricks_overhead",
        "product_run_kill_resume",
        "sync_and_memory",
        "torchrun_run",
        "seed_study",
    }
    assert all("seconds" in figures for figures in steps.values())
    # Both benchmarks run here in full (the bench smoke test leaves them to this one).
    assert {
        "train_b4_memory_img_s",
        "train_b4_fast_img_s",
        "train_b4_reference_img_s",
        "teacher_infer_img_s",
        "run_s",
        "epoch_s",
    } <= steps["throughput"].keys()
    assert steps["throughput"]["train_b4_fast_img_s"] > 0 and steps["throughput"]["run_s"] > 0
    assert {"mixup_ratio", "kd_ratio", "kd_extra_vs_teacher"} <= steps["tricks_overhead"].keys()

    run = steps["product_run_kill_resume"]
    assert run["status"] == "succeeded" and run["each_epoch_once"], run
    # The first worker was killed after an epoch: a second attempt resumed after it.
    assert run["attempts"] == 2 and run["resumed_after_epoch"] >= 1
    assert run["epochs_stored"] == [1, 2] and run["devices"] == "1 × CPU"

    sync = steps["sync_and_memory"]
    assert sync["adam_step_devices_after_resume"] == ["cpu"] and sync["counted"] is False

    torchrun = steps["torchrun_run"]
    assert torchrun["status"] == "succeeded" and torchrun["each_epoch_once"], torchrun

    study = steps["seed_study"]
    # 16 groups; identical ones share their runs
    assert 10 <= study["runs"] <= 16 and study["every_epoch_once"], study
    log = (out / "gpu_check.log").read_text()
    assert "seed_study: {" in log and "done in" in log
