"""A tiny grid study through `tricklab serve` with two real workers and the real trainer, then the
same study again (every run reused), and the study pages in Chromium."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from scipy import stats as scipy_stats
from study_testlib import TINY, TINY_GRID, TINY_SEEDS

from backend.reports.stats import NO_SPREAD

GROUPS = ["T", "base", "+KD", "+Cosine", "+Cosine +KD"]


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
    assert [group["key"] for group in tiny_study["groups"]] == GROUPS
    assert tiny_study["progress"]["succeeded"] == tiny_study["progress"]["total"] == len(GROUPS) * TINY_SEEDS
    runs = {run["id"]: run for run in study_server.get("/runs", study_id=tiny_study["id"], limit=100)["data"]}
    workers = {run["worker"] for run in runs.values()}
    assert len(runs) == 10 and None not in workers and len(workers) <= 2  # the server's two workers
    groups = {group["key"]: group for group in tiny_study["groups"]}
    for group in tiny_study["groups"]:
        for member in group["runs"]:
            run = runs[member["run_id"]]
            assert run["config"]["model"]["arch"] == ("resnet34" if group["role"] == "teacher" else "resnet18")
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
        assert len(csv.splitlines()) == 1 + len(GROUPS)

    curves = study_server.get(f"/studies/{tiny_study['id']}/curves")
    assert all(curve["valid_top1"]["n"] == [TINY_SEEDS] for curve in curves["data"])


def test_the_same_study_again_reuses_every_finished_run(study_server, tiny_study):
    before = study_server.get("/runs")["count"]
    again = study_server.post_study(
        {
            "name": "tiny grid again",
            "grid": {"switches": TINY_GRID},
            "seeds": TINY_SEEDS,
            "overrides": {**TINY, "data.root": str(study_server.data_root), "teacher.model.arch": "resnet34"},
        }
    )
    assert study_server.get("/runs")["count"] == before
    assert again["finished"] and again["progress"]["reused"] == again["progress"]["total"] == 10
    assert [group["runs"] for group in again["groups"]] == [
        [{**run, "reused": True} for run in group["runs"]] for group in tiny_study["groups"]
    ]


def test_the_study_page_shows_progress_the_table_and_bands(page, study_server, tiny_study, tmp_path):
    page.goto(f"{study_server.url}/studies/{tiny_study['id']}")
    rows = page.locator("#study-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(GROUPS)
    assert page.locator("#study-name").text_content() == "tiny grid"
    assert page.locator("#study-progress-text").text_content() == "10 of 10 runs finished"
    assert page.locator('#study-counts [data-status="succeeded"] dd').text_content() == "10"
    base = page.locator('#study-table tr[data-group="base"]')
    assert "baseline" in base.text_content() and "±" in base.locator("td").nth(2).text_content()
    kd = page.locator('#study-table tr[data-group="+KD"]')
    assert kd.locator("td").nth(0).text_content() == "ResNet18 from scratch +KD (teacher T)"
    assert kd.locator("td").nth(3).get_attribute("data-verdict") in ("within noise", "helped", "hurt", NO_SPREAD)
    assert "comparisons at 95 %" in page.locator("#study-method").text_content()
    assert not page.locator("#study-cancel").is_visible()  # nothing left to cancel

    # Every chart: per group a filled band between two edges, and the mean line.
    page.wait_for_function("document.getElementById('chart-lr').data?.length > 0")
    for field in ("train_loss", "valid_top1", "valid_top5", "lr"):
        traces = page.evaluate(
            f"document.getElementById('chart-{field}').data.map(t => [t.name, t.fill ?? null, t.x.length])"
        )
        assert sum(fill == "tonexty" for _, fill, _ in traces) == len(GROUPS), (field, traces)
        assert [name for name, fill, _ in traces if fill is None and not name.endswith("std")] == GROUPS
        assert all(points == 1 for *_, points in traces)
    page.get_by_label("test, best-validation-loss checkpoint").check()
    page.wait_for_function("document.getElementById('csv-link').href.endsWith('metric=test')")
    page.screenshot(path=tmp_path / "study.png", full_page=True)
    assert not page.errors


def test_the_launch_form_names_a_bad_override_then_launches(page, study_server, tiny_study):
    page.goto(f"{study_server.url}/studies")
    page.locator(f'#studies-table tr[data-study-id="{tiny_study["id"]}"]').wait_for()
    overrides = page.get_by_label("One key = value per line")
    lines = [f"{key} = {str(value).lower() if isinstance(value, bool) else value}" for key, value in TINY.items()]
    lines += [f"data.root = {study_server.data_root}", "teacher.model.arch = resnet9"]
    page.get_by_label("Name", exact=True).fill("from the form")
    page.get_by_label("Seeds per run").fill(str(TINY_SEEDS))
    page.get_by_label("A grid: every combination of the switches below").check()
    page.get_by_label("Cosine decay (instead of OneCycle): off and on").check()
    page.get_by_label("Knowledge distillation: off and on").check()
    overrides.fill("\n".join(lines))
    page.get_by_role("button", name="Launch study").click()
    error = page.locator("#study-overrides-error")
    error.wait_for(state="visible")
    assert error.text_content().startswith("teacher.model.arch: Input should be 'resnet18'")
    assert overrides.get_attribute("aria-invalid") == "true"

    # Fixed, it is the tiny study again: every run is reused, and the page says so at once.
    overrides.fill("\n".join([*lines[:-1], "teacher.model.arch = resnet34"]))
    page.get_by_role("button", name="Launch study").click()
    page.wait_for_url(f"{study_server.url}/studies/*")
    page.locator("#study-table tbody tr").first.wait_for()
    assert page.locator("#study-name").text_content() == "from the form"
    assert page.locator("#study-progress-text").text_content() == "10 of 10 runs finished (10 reused from earlier runs)"
    # The browser logs the refused first launch; nothing else went wrong.
    assert page.errors == ["Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"]
