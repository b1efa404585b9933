"""The effects chart on the study page in Chromium: a bar per effect with its interval, main effects first,
under the API's sentence; a grid that cannot be fitted says why instead of drawing bars."""

from __future__ import annotations

import httpx
from testlib.browser import CHART_OFFERS, cloud_offers
from testlib.studies import TINY


def test_the_effects_chart_draws_each_effect_with_its_interval(page, study_server, tiny_study, tmp_path):
    effects = study_server.get(f"/studies/{tiny_study['id']}/effects")
    page.goto(f"{study_server.url}/studies/{tiny_study['id']}")
    page.wait_for_function("() => document.getElementById('effects-chart').data?.length > 0")
    assert page.locator("#effects-sentence").text_content() == effects["sentence"]
    bars = page.evaluate(
        "() => { const t = document.getElementById('effects-chart').data[0];"
        " return {y: t.y, x: t.x, plus: t.error_x.array, minus: t.error_x.arrayminus}; }"
    )
    assert bars["y"] == [row["label"] for row in effects["data"]]
    kinds = [row["kind"] for row in effects["data"]]
    assert kinds == sorted(kinds, key=lambda kind: kind != "main")  # main effects first
    for row, x, plus, minus in zip(effects["data"], bars["x"], bars["plus"], bars["minus"], strict=True):
        assert x == row["estimate"]
        if row["ci_low"] is not None:
            assert abs(x + plus - row["ci_high"]) < 1e-9 and abs(x - minus - row["ci_low"]) < 1e-9
    assert "residual degrees of freedom" in page.locator("#effects-method").text_content()
    assert cloud_offers(page) == []
    files = {chart["id"]: chart["file"] for chart in page.evaluate(CHART_OFFERS)}
    assert files["effects-chart"] == f"study-{tiny_study['id']}-tiny-grid-effects"
    page.locator("#effects-title").scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "effects.png", full_page=True)
    assert not page.errors


def test_a_grid_that_cannot_be_fitted_says_why(page, study_server):
    # Three levels of one switch, one seed: no on/off factorial. Cancelled at once: nothing need train.
    study = study_server.post_study(
        {
            "name": "three levels",
            "grid": {"switches": {"label_smoothing": [0, 0.05, 0.1]}},
            "seeds": 1,
            "overrides": {**TINY, "data.root": str(study_server.data_root)},
        }
    )

    httpx.post(f"{study_server.url}/api/v1/studies/{study['id']}/cancel", timeout=30)
    effects = study_server.get(f"/studies/{study['id']}/effects")
    assert effects["data"] == [] and effects["not_estimable"]
    page.goto(f"{study_server.url}/studies/{study['id']}")
    more = page.locator("#effects-more li")
    more.first.wait_for()
    assert page.locator("#effects-sentence").text_content() == effects["sentence"]
    # The sentence says why; the list below adds the cells without a result (a cancelled run may still be
    # stopping: its reason may have moved on), not the same reason again.
    items = more.all_text_contents()
    groups = [cell["group"] for cell in effects["missing_cells"]]
    assert [item.split(": ")[0] for item in items[: len(groups)]] == groups
    [reason] = [item["reason"] for item in effects["not_estimable"]]
    assert reason in effects["sentence"] and not any(reason in item for item in items)
    assert page.locator('section[aria-labelledby="effects-title"]').inner_text().count(reason) == 1
    assert not page.locator("#effects-chart").is_visible()
    assert not page.errors
