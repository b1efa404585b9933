"""The report as a researcher keeps it: the saved HTML file opened from disk in Chromium with the network
blocked draws every chart, with no error; and the study and compare pages' buttons download it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from testlib.browser import open_offline
from testlib.dashboard import settings_for
from testlib.finished import Finished, add_finished_runs
from testlib.processes import LOOPBACK
from testlib.worked import grid_study

from backend.app import create_app

# Every plot of a report: the four figures, and a grid study's effects chart.
PLOTS = "() => [...document.querySelectorAll('.js-plotly-plot')].map((plot) => plot.id)"
# A plot counts as drawn once its SVG holds a trace's line or a bar.
DRAWN = (
    "() => [...document.querySelectorAll('.js-plotly-plot')]"
    ".filter((plot) => plot.querySelector('.scatterlayer path.js-line, .barlayer .bars path')).length"
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A grid study's and a comparison's reports, saved as files, from the app in-process."""
    home = tmp_path_factory.mktemp("reports")
    data_root = home / "data"
    (data_root / "CUB_200_2011").mkdir(parents=True)
    with TestClient(create_app(settings_for(home, data_root)), base_url=LOOPBACK) as client:
        study = grid_study(client, data_root, "offline <study> & 100%")
        ids = [run["run_id"] for group in study["groups"] for run in group["runs"]]
        files = {}
        for name, path, params in (
            ("study", f"/api/v1/studies/{study['id']}/report.html", {}),
            ("compare", "/api/v1/compare/report.html", {"run_ids": ",".join(map(str, ids[:6]))}),
        ):
            answer = client.get(path, params=params)
            assert answer.status_code == 200, answer.text
            files[name] = home / f"{name}.html"
            files[name].write_bytes(answer.content)
        yield files


@pytest.mark.parametrize(("name", "charts"), [("study", 5), ("compare", 4)])
def test_the_saved_report_draws_every_chart_offline(page, reports, name, charts, tmp_path):
    tried = open_offline(page, reports[name])
    page.wait_for_function(f"() => ({DRAWN})() === {charts}")
    figures = json.loads(page.locator("#report-figures").text_content())["figures"]
    assert sorted(page.evaluate(PLOTS)) == sorted(f"figure-{figure}" for figure in figures)
    assert len(figures) == charts
    # The legend names each configuration or group; the table, its notes and the provenance are there.
    legend = page.locator("#figure-valid_top1 .legendtext").all_text_contents()
    assert len(legend) == (4 if name == "study" else 3) and all(legend)  # 3 configurations of 2 seeds compared
    assert page.locator("#report-table tbody tr").count() == (4 if name == "study" else 6)
    assert page.locator("#report-provenance tbody tr").count() == (8 if name == "study" else 6)
    if name == "study":
        assert "<study>" in page.locator("#report-title").text_content()
        assert page.locator("#effects-sentence").text_content()
    page.screenshot(path=tmp_path / f"{name}-report.png", full_page=True)
    assert tried == []
    assert page.errors == []


def test_the_report_opens_with_its_own_policy_and_no_way_out(page, reports):
    open_offline(page, reports["study"])
    policy = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    page.wait_for_function(f"() => ({DRAWN})() === 5")
    # No chart offers Plotly's cloud, and its logo (a link out) is hidden.
    assert page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot a[href]')].length") == 0
    assert page.evaluate("() => document.querySelectorAll('.modebar-btn[data-title*=\"Plotly\"]').length") == 0


@pytest.fixture(scope="module")
def compared(dashboard: Any) -> list[int]:
    runs = [
        Finished("button base", {}, [(60.0, 80.0), (65.5, 85.0)]),
        Finished("button ls", {"tricks.label_smoothing": 0.1}, [(61.0, 81.0), (66.0, 86.0)]),
    ]
    return add_finished_runs(dashboard.database_url, runs)


def test_the_compare_and_study_pages_download_their_reports(page, dashboard, compared, tmp_path):
    page.goto(f"{dashboard.url}/compare?runs={compared[0]},{compared[1]}&mode=final")
    page.locator("#compare-table tbody tr").nth(1).wait_for()
    with page.expect_download() as download:
        page.locator("#report-link").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert download.value.suggested_filename == f"compare-{compared[0]}-{compared[1]}.html"
    assert "button ls" in saved.read_text() and "each run&#39;s final epoch" in saved.read_text()
    for kind in ("md", "tex"):
        href = page.locator(f"#report-{kind}").get_attribute("href")
        assert href == f"/api/v1/compare/report.{kind}?run_ids={compared[0]}%2C{compared[1]}&mode=final"

    study = dashboard.post_study(
        {
            "name": "button study",
            "grid": {"switches": {"cosine": True}},
            "seeds": 1,
            "overrides": {
                "model.arch": "resnet18",
                "model.pretrained": False,
                "data.image_size": 32,
                "epochs": 1,
                "data.root": str(dashboard.data_root),
            },
        }
    )
    # Cancelled at once: nothing need train for the button to work.
    httpx.post(f"{dashboard.url}/api/v1/studies/{study['id']}/cancel", timeout=30).raise_for_status()
    page.goto(f"{dashboard.url}/studies/{study['id']}")
    page.locator("#study-table tbody tr").first.wait_for()
    page.locator("#metric-test").check()
    page.wait_for_function("() => document.getElementById('report-link').href.endsWith('metric=test')")
    with page.expect_download() as download:
        page.locator("#report-link").click()
    assert download.value.suggested_filename == f"study-{study['id']}-button-study.html"
    download.value.save_as(tmp_path / "study.html")
    assert "test of the kept checkpoint" in (tmp_path / "study.html").read_text()
    assert page.locator("#report-tex").get_attribute("href") == f"/api/v1/studies/{study['id']}/report.tex?metric=test"
    assert page.errors == []
