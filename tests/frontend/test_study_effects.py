"""The effects chart on the study page in Chromium: a bar per effect with its interval, main effects first,
under the API's sentence; a grid that cannot be fitted says why instead of drawing bars."""

from __future__ import annotations

import httpx
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
    reasons = page.locator("#effects-not-estimable li")
    reasons.first.wait_for()
    assert page.locator("#effects-sentence").text_content() == effects["sentence"]
    assert reasons.all_text_contents()[: len(effects["not_estimable"])] == [
        f"{item['effect']}: {item['reason']}" if item["effect"] else item["reason"] for item in effects["not_estimable"]
    ]
    assert not page.locator("#effects-chart").is_visible()
    assert not page.errors
