"""Every URL gets an answer, in Chromium at 800 and 1280 px: error pages with a way back, partial
comparisons that name what is missing, runs that say how they ended, and the API docs offline."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import torch

WIDTHS = [800, 1280]
LOOPBACK = re.compile(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?/")


def offline_page(browser, width: int) -> tuple[Any, list[str]]:
    """A tab whose every request off this machine fails, as on a machine without a network."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    blocked: list[str] = []

    def route(route: Any) -> None:
        if LOOPBACK.match(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page, blocked


@pytest.mark.parametrize("width", WIDTHS)
def test_the_api_docs_render_offline(browser, dashboard, tmp_path, width):
    page, blocked = offline_page(browser, width)
    page.goto(f"{dashboard.url}/docs")
    operations = page.locator(".opblock-summary-path")
    operations.first.wait_for(timeout=30_000)
    paths = set(operations.all_text_contents())
    assert {"/api/v1/runs", "/api/v1/compare", "/api/v1/studies", "/api/v1/workers"} <= {p.strip() for p in paths}
    page.screenshot(path=tmp_path / f"docs-{width}.png")
    assert blocked == []
    page.goto(f"{dashboard.url}/redoc")
    page.get_by_text("/api/v1/studies/preview", exact=False).first.wait_for(timeout=30_000)
    page.screenshot(path=tmp_path / f"redoc-{width}.png")
    # ReDoc's bundle asks for its maker's logo in the sidebar's footer; the CSP's img-src refuses it
    # before any request leaves, and ReDoc drops the image.
    assert blocked == [] and not page.errors
    page.context.close()


ERROR_PAGES = [
    ("/runs/9999", "Not found", "There is no run #9999"),
    ("/runs/abc", "Not a valid address", "“abc” is not a run id."),
    ("/compare?runs=abc", "Not a valid address", "“abc” is not a list of run ids, e.g. 1,2,3."),
    ("/lr-range-tests/9999", "Not found", "There is no run #9999"),
    ("/lr-range-tests/abc", "Not a valid address", "“abc” is not a run id."),
    ("/studies/9999", "Not found", "There is no study #9999"),
    ("/studies/abc", "Not a valid address", "“abc” is not a study id."),
    ("/no/such/page", "Page not found", "Nothing lives at /no/such/page."),
]


@pytest.mark.parametrize("width", WIDTHS)
def test_bad_urls_get_a_page_with_a_way_back(browser, dashboard, tmp_path, width):
    page, _ = offline_page(browser, width)
    for path, title, text in ERROR_PAGES:
        answer = page.goto(dashboard.url + path)
        assert answer is not None and answer.status in (400, 404), path
        assert page.locator("h1").text_content() == title, path
        assert text in page.locator("#error-message").text_content(), path
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        page.screenshot(path=tmp_path / f"error-{path.strip('/').replace('/', '-').replace('?', '-')}-{width}.png")
    page.get_by_role("link", name="Back to the runs").click()
    page.wait_for_url(f"{dashboard.url}/")
    page.locator("#runs-table tbody tr").first.wait_for()
    assert not page.errors
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_comparison_with_a_missing_run_shows_the_rest(browser, dashboard, finished_runs, tmp_path, width):
    page, _ = offline_page(browser, width)
    first = finished_runs[0]["id"]
    page.goto(f"{dashboard.url}/compare?runs={first},9999")
    note = " ".join(page.locator("#compare-missing").text_content().split())
    assert note == "Run #9999 does not exist (deleted, or never made): the comparison shows the others."
    page.locator(f"#compare-table tr[data-run-id='{first}']").wait_for()
    page.wait_for_function("() => document.getElementById('chart-valid_top1').data?.length === 1")
    assert "runs=" + str(first) in page.url and "9999" not in page.url
    page.screenshot(path=tmp_path / f"compare-missing-{width}.png", full_page=True)
    assert not page.errors
    page.context.close()


def chart_notes(page) -> list[str]:
    return page.evaluate(
        "['train_loss','valid_top1','valid_top5','lr'].map(f => "
        "(document.getElementById('chart-' + f).layout.annotations ?? []).map(a => a.text).join(''))"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_a_run_that_ended_says_how(browser, dashboard, tmp_path, width):
    # Fails as soon as the trainer loads the weights: the file holds no ResNet's.
    weights = dashboard.data_root / f"not-a-resnet-{width}.pt"
    torch.save({"nothing": torch.zeros(1)}, weights)
    failed = dashboard.submit(
        f"wrong weights {width}", model={"arch": "resnet18", "pretrained": True, "weights_path": str(weights)}
    )
    cancelled = dashboard.submit(f"cancelled {width}", epochs=200)
    assert httpx.post(f"{dashboard.url}/api/v1/runs/{cancelled['id']}/cancel").status_code == 200
    failed = dashboard.wait(failed["id"])
    cancelled = dashboard.wait(cancelled["id"])
    assert (failed["status"], cancelled["status"]) == ("failed", "cancelled"), dashboard.log_tail()

    page, _ = offline_page(browser, width)
    page.goto(f"{dashboard.url}/runs/{failed['id']}")
    page.wait_for_function("() => document.getElementById('run-outcome').textContent !== ''")
    assert page.locator("#run-outcome").text_content() == "Failed before its first epoch: the error is above."
    page.wait_for_function("() => document.getElementById('chart-lr').layout?.annotations?.length > 0")
    assert chart_notes(page) == ["failed before its first epoch"] * 4
    message = page.locator("#run-error").text_content()
    assert message.startswith(f"model.weights_path {weights} does not fit torchvision's resnet18: ")
    # The trainer's message once: its echo in the trainer's output is left out of the lines below it.
    output = page.locator("#run-output-text").text_content()
    assert message not in output
    page.screenshot(path=tmp_path / f"run-failed-{width}.png", full_page=True)

    page.goto(f"{dashboard.url}/runs/{cancelled['id']}")
    page.wait_for_function("() => document.getElementById('run-outcome').textContent !== ''")
    outcome = page.locator("#run-outcome").text_content()
    done = cancelled["epoch"]
    assert outcome == ("Cancelled before its first epoch." if not done else f"Cancelled after epoch {done} of 200.")
    if not done:
        page.wait_for_function("() => document.getElementById('chart-lr').layout?.annotations?.length > 0")
        assert chart_notes(page) == ["cancelled before its first epoch"] * 4
    assert "waiting" not in " ".join(chart_notes(page))
    page.screenshot(path=tmp_path / f"run-cancelled-{width}.png", full_page=True)
    assert not page.errors
    page.context.close()
