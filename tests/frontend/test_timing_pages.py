"""Where a run's time goes, in Chromium: the run page's panel and the compare table's images/s and
data-wait share, with the plain hint for a run held back by its data; rows from before the timing
fields read as dashes."""

from __future__ import annotations

from testlib.finished import Finished, add_finished_runs

VALID = [(40.0, 70.0), (50.0, 80.0)]
WAITING = {"images_per_s": 151.6, "data_wait_share": 0.45, "peak_memory_bytes": 9_800_000_000, "gpu_utilization": 41.0}


def test_a_run_held_back_by_its_data_says_why_on_its_page_and_in_a_comparison(browser, dashboard, tmp_path):
    slow, before = add_finished_runs(
        dashboard.database_url,
        [
            Finished("slow loader", {"data.pipeline": "reference", "data.num_workers": 1}, VALID, timing=WAITING),
            Finished("from before", {}, VALID),
        ],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{dashboard.url}/runs/{slow}")
    page.wait_for_function("() => document.getElementById('timing-rate').textContent.includes('img/s')")
    panel = {name: page.locator(f"#timing-{name}").text_content() for name in ("rate", "wait", "memory", "gpu")}
    assert panel == {"rate": "152 img/s", "wait": "45 %", "memory": "9.1 GiB", "gpu": "41 %"}
    hint = page.locator("#timing-hint")
    assert hint.is_visible()
    assert hint.text_content().startswith("45 % of each training pass waits for the next batch: the reference pipeline")
    assert "1 loader worker" in hint.text_content()

    page.goto(f"{dashboard.url}/runs/{before}")
    page.wait_for_function("() => document.getElementById('run-peak').textContent.includes('50.00')")
    assert [page.locator(f"#timing-{name}").text_content() for name in ("rate", "wait", "memory", "gpu")] == ["–"] * 4
    assert page.locator("#timing-hint").is_hidden()

    page.goto(f"{dashboard.url}/compare?runs={slow},{before}")
    page.wait_for_function("() => document.getElementById('chart-valid_top1').data?.length === 2")
    slow_cells = page.locator(f"#compare-table tr[data-run-id='{slow}'] td")
    assert [slow_cells.nth(i).text_content() for i in (7, 8)] == ["152 img/s", "45 %"]
    assert "warn" in (slow_cells.nth(8).get_attribute("class") or "")
    before_cells = page.locator(f"#compare-table tr[data-run-id='{before}'] td")
    assert [before_cells.nth(i).text_content() for i in (7, 8)] == ["–", "–"]
    hints = page.locator("#compare-hints li")
    assert hints.count() == 1 and hints.first.text_content().startswith(f"#{slow} slow loader: 45 % of each")
    # The charts take the columns as they come: one array per field per run.
    assert page.evaluate("document.getElementById('chart-valid_top1').data.map(t => t.y)") == [[40, 50], [40, 50]]
    page.screenshot(path=tmp_path / "timing.png", full_page=True)
    assert not errors
    page.close()
