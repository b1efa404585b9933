"""Every benchmark runs end to end in its --smoke mode and ends with its RESULT line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# gpu_epoch and tricks_overhead are not here: the GPU check's smoke run (test_gpu_check_smoke.py) runs
# both and checks their figures.
EXPECTED_KEYS = {
    "data_pipeline": {"reference_img_s", "fast_img_s", "speedup", "build_img_s"},
    "loop_overhead": {"ratio", "telemetry_share"},
    # --smoke serves 3, 6 and 12 runs of 4 epochs.
    "compare_fetch": {"p95_ms_3x4", "p95_ms_12x4", "revalidated_p95_ms_3x4", "speedup_vs_rows_3x4", "scaling"},
    "distributed": {"single_img_s", "multi_img_s", "speedup", "efficiency", "loss_diff_first_epoch"},
    # --smoke: 20 and 60 runs x 4 epochs, SQLite only.
    "runs_filter": {"sqlite_p95_ms_20", "sqlite_p95_ms_60", "sqlite_growth"},
    # --smoke: 20 trials, 2 rounds, SQLite.
    "sweep_overhead": {
        "sqlite_insert_ms",
        "sqlite_prune_ms",
        "sqlite_next_ms",
        "sqlite_prune_ratio",
        "sqlite_next_ratio",
    },
    # --smoke: one exec'd and one forked trainer.
    "trainer_start": {"exec_start_s", "forked_start_s", "start_ratio", "exec_cpu_s", "forked_cpu_s", "cpu_saved_s"},
    "api_load": {"requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "created", "missing", "duplicates"},
}
# Figures a smoke run must get right whatever the machine's load: nothing lost, doubled or failed.
MUST_BE_ZERO = {"api_load": ("errors", "missing", "duplicates", "server_tracebacks")}


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.mark.parametrize("bench", sorted(EXPECTED_KEYS))
def test_benchmark_smoke_run_ends_with_its_result_line(bench: str, bench_root: Path):
    env = {**os.environ, "TRICKLAB_BENCH_ROOT": str(bench_root), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--smoke"],
        cwd=REPO,
        env=env,
        check=False,  # the test reads the exit code
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), done.stdout[-2000:]
    figures = dict(pair.split("=", 1) for pair in last.removeprefix("RESULT ").split())
    assert EXPECTED_KEYS[bench] <= figures.keys()
    assert all(math.isfinite(float(value)) for value in figures.values())
    # Rates must be positive; ratios of one-round smoke timings can be anything on a busy machine.
    assert all(float(value) > 0 for key, value in figures.items() if key.endswith("img_s"))
    assert all(float(figures[key]) == 0 for key in MUST_BE_ZERO.get(bench, ())), last
