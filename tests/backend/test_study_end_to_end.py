"""A tiny grid study through `tricklab serve` with two real workers and the real trainer, then the
same study again: every run is reused. The study pages' browser tests read the same study."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from scipy import stats as scipy_stats
from testlib.models import TINY_ARCH
from testlib.studies import TINY_GRID, TINY_GROUPS, TINY_SEEDS, TINY_TEACHER_ARCH, tiny_study_overrides

from backend.reports.stats import NO_SPREAD


def format_table(table: dict) -> str:
    lines = [f"{'group':<12} {'n':>3} {'top-1':>14} {'delta top-1 [95% CI]':<34} {'verdict':<36} {'top-5':>14}"]
    for row in table["data"]:
        top1, top5 = row["top1"], row["top5"]
        lines.append(
            f"{row['group']:<12} {top1['n']:>3} {top1['text']:>14} {top1['delta_text']:<34} "
            f"{top1['verdict']:<36} {top5['text']:>14}"
        )
    return "\n".join(lines)


@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # SciPy, on groups whose seeds agree exactly
def test_a_tiny_study_runs_end_to_end_through_real_workers(study_server, tiny_study):
    assert [group["key"] for group in tiny_study["groups"]] == TINY_GROUPS
    assert tiny_study["progress"]["succeeded"] == tiny_study["progress"]["total"] == len(TINY_GROUPS) * TINY_SEEDS
    runs = {run["id"]: run for run in study_server.get("/runs", study_id=tiny_study["id"], limit=100)["data"]}
    workers = {run["worker"] for run in runs.values()}
    assert len(runs) == 10 and None not in workers and len(workers) <= 2  # the server's two workers
    groups = {group["key"]: group for group in tiny_study["groups"]}
    for group in tiny_study["groups"]:
        for member in group["runs"]:
            run = runs[member["run_id"]]
            assert run["config"]["model"]["arch"] == (TINY_TEACHER_ARCH if group["role"] == "teacher" else TINY_ARCH)
            assert run["config"]["seed"] == member["seed"] and run["epoch"] == 1
            if group["teacher"]:
                teacher = runs[
                    next(t["run_id"] for t in groups[group["teacher"]]["runs"] if t["seed"] == member["seed"])
                ]
                assert run["depends_on"] == teacher["id"]
                # The queue started the student only once its teacher had succeeded.
                assert datetime.fromisoformat(teacher["finished_at"]) <= datetime.fromisoformat(run["started_at"])

    for metric in ("valid", "test"):
        table = study_server.get(f"/studies/{tiny_study['id']}/table", metric=metric)
        print(f"\n{metric}:\n{format_table(table)}")
        rows = {row["group"]: row for row in table["data"]}
        base = rows["base"]
        for key, row in rows.items():
            for name in ("top1", "top5"):
                stats = row[name]
                assert stats["n"] == TINY_SEEDS and stats["mean"] is not None and stats["std"] is not None
                if key == "base":
                    continue
                # Each delta has its interval and p-value, except where both sides repeat one value:
                # then the table says so instead of claiming certainty.
                if stats["ci_low"] is None:
                    assert stats["verdict"] == NO_SPREAD and stats["std"] == base[name]["std"] == 0
                    continue
                expected = scipy_stats.ttest_ind(stats["values"], base[name]["values"], equal_var=False)
                assert stats["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
                assert stats["ci_low"] <= stats["delta"] <= stats["ci_high"]
                assert stats["verdict"] in ("within noise", "helped", "hurt")
        csv = httpx.get(
            f"{study_server.url}/api/v1/studies/{tiny_study['id']}/table.csv", params={"metric": metric}, timeout=30
        ).text
        assert len(csv.splitlines()) == 1 + len(TINY_GROUPS)

    curves = study_server.get(f"/studies/{tiny_study['id']}/curves")
    assert all(curve["valid_top1"]["n"] == [TINY_SEEDS] for curve in curves["data"])


def test_the_same_study_again_reuses_every_finished_run(study_server, tiny_study):
    before = study_server.get("/runs")["count"]
    again = study_server.post_study(
        {
            "name": "tiny grid again",
            "grid": {"switches": TINY_GRID},
            "seeds": TINY_SEEDS,
            "overrides": tiny_study_overrides(study_server.data_root),
        }
    )
    assert study_server.get("/runs")["count"] == before
    assert again["finished"] and again["progress"]["reused"] == again["progress"]["total"] == 10
    assert [group["runs"] for group in again["groups"]] == [
        [{**run, "reused": True} for run in group["runs"]] for group in tiny_study["groups"]
    ]
