"""Find LR in Chromium: the launch form queues a range test of its own settings, the test's page draws the
curve on a log axis with the minimum and the suggestion marked, and Use this rate fills optim.lr."""

from __future__ import annotations

import json
import re

import pytest

# The button sends the report's sweep (100 steps); the test shortens it on the way so a CPU ends it in seconds.
SHORT_SWEEP = {"start_lr": 1e-4, "end_lr": 1.0, "steps": 12, "smoothing": 0.3}


def test_find_lr_queues_the_forms_config_and_use_this_rate_fills_the_form(page, dashboard, tmp_path):
    sent: list[dict] = []

    def shorten(route):
        body = json.loads(route.request.post_data)
        sent.append(body)
        route.continue_(post_data=json.dumps({**body, "sweep": SHORT_SWEEP}))

    page.route(re.compile(r".*/api/v1/lr-range-tests$"), shorten)
    page.goto(f"{dashboard.url}/runs/new?preset=demo")
    page.get_by_label("Root").fill(str(dashboard.data_root))
    page.locator('[name="data.image_size"]').fill("32")
    page.locator('[name="batch_size"]').fill("16")
    page.locator('[name="data.num_workers"]').fill("0")
    page.locator('[name="optim.lr"]').fill("0.003")
    page.get_by_role("button", name="Find LR").click()
    page.wait_for_url(re.compile(r".*/lr-range-tests/\d+$"))

    [body] = sent
    assert "sweep" not in body  # the server's default: the report's range test
    config = body["config"]
    assert config["data"]["root"] == str(dashboard.data_root) and config["data"]["image_size"] == 32
    assert config["optim"]["lr"] == 0.003 and config["model"]["arch"] == "resnet18"
    test_id = int(page.url.rsplit("/", 1)[1])

    use = page.get_by_role("link", name="Use this rate")
    use.wait_for(state="visible", timeout=240_000)
    test = dashboard.get(f"/lr-range-tests/{test_id}")
    assert test["status"] == "succeeded" and test["suggestion"] is not None
    assert float(page.locator("#test-suggestion").text_content()) == pytest.approx(test["suggestion"], rel=1e-2)
    chart = page.evaluate(
        "() => { const c = document.getElementById('lr-range-chart');"
        " return {axis: c.layout.xaxis.type, names: c.data.map(t => t.name)}; }"
    )
    assert chart == {"axis": "log", "names": ["loss", "smoothed loss", "minimum", "suggestion (steepest descent)"]}
    page.screenshot(path=tmp_path / "lr-range.png", full_page=True)

    use.click()
    page.wait_for_url(re.compile(r".*/runs/new\?clone=\d+&lr=.*"))
    lr = page.locator('[name="optim.lr"]')
    page.wait_for_function(
        f"() => Number(document.querySelector('[name=\"optim.lr\"]').value) === {test['suggestion']!r}"
    )
    assert float(lr.input_value()) == pytest.approx(test["suggestion"], rel=1e-12)
    assert page.get_by_label("Root").input_value() == str(dashboard.data_root)
    assert "suggested rate" in page.locator("#clone-note").text_content()
    # The runs list, filtered from its address, names it as a range test and opens its page.
    page.goto(f"{dashboard.url}/?kind=lr_range")
    assert page.get_by_label("Kind").input_value() == "lr_range"
    row = page.locator(f'tr[data-run-id="{test_id}"]')
    row.wait_for()
    assert "LR range test" in row.text_content()
    assert row.get_by_role("link", name="Open").get_attribute("href") == f"/lr-range-tests/{test_id}"
    assert not page.probe.errors
