"""The charts in Chromium under the server's own CSP: the camera button saves a PNG named for what it shows,
no chart offers to send its data to Plotly's cloud, and no page says a word twice in a row."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from PIL import Image
from testlib.browser import CHART_OFFERS, cloud_offers
from testlib.dashboard import TINY_RUN
from testlib.studies import TINY

from backend.security.headers import CONTENT_SECURITY_POLICY

CSP_WORDS = ("Content Security Policy", "Content-Security-Policy")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIELDS = ("train_loss", "valid_top1", "valid_top5", "lr")
# The same word twice in a row ("in seed study study #1"), across an element's edge too.
DOUBLED = re.compile(r"\b([^\W\d_]{2,})[ \u00a0]+\1\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def study_and_range_test(dashboard) -> tuple[dict[str, Any], int]:
    """A grid study and an LR range test on the dashboard, cancelled at once: only their pages are looked at."""
    # Its own learning rate: no run of another test's study is reused, so there are runs to cancel.
    overrides = {**TINY, "data.root": str(dashboard.data_root), "optim.lr": 0.0123}
    study = dashboard.post_study(
        {"name": "chart study", "grid": {"switches": {"cosine": True}}, "overrides": overrides}
    )
    dashboard.client.cancel_study(study["id"])
    config = {**TINY_RUN, "data": {**TINY_RUN["data"], "root": str(dashboard.data_root)}}
    test = dashboard.client.create_lr_range_test(config, sweep={"steps": 12})
    dashboard.client.cancel_run(test.id)
    return study, test.id


def chart_pages(dashboard, finished_runs, study_and_range_test) -> list[tuple[str, str, dict[str, str]]]:
    """(path, the condition its charts are drawn by, each chart's download name by its element id)."""
    first, second = (run["id"] for run in finished_runs)
    study, test_id = study_and_range_test
    drawn = "() => ['{}'].every((id) => (document.getElementById(id)?.data?.length ?? 0) > 0)"
    charts = [f"chart-{field}" for field in FIELDS]
    return [
        (f"/runs/{first}", drawn.format("chart-lr"), {f"chart-{f}": f"run-{first}-tiny-base-{f}" for f in FIELDS}),
        (
            f"/compare?runs={first},{second}",
            drawn.format("chart-lr"),
            {f"chart-{f}": f"compare-{first}-{second}-{f}" for f in FIELDS},
        ),
        (
            f"/studies/{study['id']}",
            drawn.format("','".join(charts)),
            {f"chart-{f}": f"study-{study['id']}-chart-study-{f}" for f in FIELDS},
        ),
        (
            f"/lr-range-tests/{test_id}",
            drawn.format("lr-range-chart"),
            {"lr-range-chart": f"lr-range-test-{test_id}-loss-vs-lr"},
        ),
        ("/runs/new", drawn.format("lr-preview"), {"lr-preview": "new-run-lr-preview"}),
    ]


def open_charts(page, dashboard, path: str, drawn: str) -> None:
    page.goto(dashboard.url + path)
    if path == "/runs/new":
        page.get_by_label("Root").fill(str(dashboard.data_root))  # the preview waits for a dataset it can read
    page.wait_for_function(drawn)


def test_the_camera_button_saves_the_chart_as_a_png_under_the_csp(page, dashboard, finished_runs, tmp_path):
    run = finished_runs[0]
    answer = page.goto(f"{dashboard.url}/runs/{run['id']}")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page.wait_for_function("() => (document.getElementById('chart-valid_top1').data?.[0]?.x?.length ?? 0) > 0")
    camera = page.locator('#chart-valid_top1 .modebar-btn[data-title="Download plot as a PNG"]')
    with page.expect_download(timeout=30_000) as saving:
        camera.click()
    download = saving.value
    assert download.failure() is None
    assert download.suggested_filename == f"run-{run['id']}-tiny-base-valid_top1.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(saved) as image:
        assert image.format == "PNG" and image.width >= 300 and image.height >= 200, image.size
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    # The run's line, in the palette's first colour (Dark24's #2E91E5), is in the picture, not a blank axis.
    line = int((np.abs(pixels - [0x2E, 0x91, 0xE5]).sum(axis=2) < 40).sum())
    assert line > 50, line
    assert page.locator(".notifier-note").filter(has_text="Sorry").count() == 0
    assert [error for error in page.errors if any(word in error for word in CSP_WORDS)] == []
    assert not page.probe.errors


def test_no_chart_offers_to_send_its_data_to_the_cloud(page, dashboard, finished_runs, study_and_range_test):
    for path, drawn, files in chart_pages(dashboard, finished_runs, study_and_range_test):
        open_charts(page, dashboard, path, drawn)
        assert cloud_offers(page) == [], path
        assert {chart["id"]: chart["file"] for chart in page.evaluate(CHART_OFFERS)} == files, path
    assert not page.probe.errors


def test_no_page_says_a_word_twice(page, dashboard, finished_runs, study_and_range_test):
    study, _ = study_and_range_test
    page.goto(f"{dashboard.url}/")
    # The study's runs name it once the list has read the study's name.
    link = page.locator(f'a.study-link[href="/studies/{study["id"]}"]').first
    page.wait_for_function(
        "(id) => document.querySelector(`a.study-link[href='/studies/${id}']`)?.closest('td').textContent"
        ".includes('chart study')",
        arg=study["id"],
    )
    texts = {"/": page.evaluate("document.body.innerText")}
    study_link = link.text_content()
    for path, drawn, _files in chart_pages(dashboard, finished_runs, study_and_range_test):
        open_charts(page, dashboard, path, drawn)
        texts[path] = page.evaluate("document.body.innerText")
    page.goto(f"{dashboard.url}/studies")
    page.locator(f'#studies-table tr[data-study-id="{study["id"]}"]').wait_for()
    texts["/studies"] = page.evaluate("document.body.innerText")
    doubled = {path: match.group(0) for path, text in texts.items() if (match := DOUBLED.search(text))}
    assert doubled == {}
    assert study_link == f"study #{study['id']} “chart study”"
    assert not page.probe.errors
