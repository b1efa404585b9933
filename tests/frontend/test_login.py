"""Chromium on a dashboard that needs a token: log in, see the runs and their creator, act, log out and
be sent back to the log-in page; and every page under the Content-Security-Policy, charts drawn,
with no violation in the console and no inline script run."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testlib.dashboard import Dashboard, serve, settings_for
from testlib.processes import tricklab

from backend.security.auth import SESSION_COOKIE
from backend.security.headers import CONTENT_SECURITY_POLICY

CSP_WORDS = ("Content Security Policy", "Content-Security-Policy")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[tuple[Dashboard, str]]:
    """`tricklab serve` (no worker) whose database got a token from `tricklab token create alice`."""
    home = tmp_path_factory.mktemp("shared")
    env = settings_for(home, demo_dataset).environ()
    created = tricklab("token", "create", "alice", env={**os.environ, **env}, cwd=home)
    assert created.returncode == 0, created.stderr
    with serve(home, demo_dataset, workers=0) as running:
        yield running, created.stdout.strip()


def test_log_in_see_the_runs_log_out(page, shared, tmp_path):
    dashboard, token = shared
    headers = {"Authorization": f"Bearer {token}"}
    run = httpx.post(
        f"{dashboard.url}/api/v1/runs",
        json={"config": {"name": "queued by alice", "data": {"root": str(dashboard.data_root)}}},
        headers=headers,
    ).json()

    page.goto(f"{dashboard.url}/runs/{run['id']}")
    assert page.url == f"{dashboard.url}/login?next=%2Fruns%2F{run['id']}"
    page.get_by_label("Token").fill("tlab_not-a-token")
    page.get_by_role("button", name="Log in").click()
    assert page.locator("#login-error").text_content() == "That token is not valid (or was revoked)."
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{dashboard.url}/runs/{run['id']}")
    page.locator("#run-creator").filter(has_text="by alice").wait_for()
    assert page.locator("#account-name").text_content() == "alice"
    page.screenshot(path=tmp_path / "run-logged-in.png", full_page=True)

    (cookie,) = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != token
    assert page.evaluate("document.cookie") == ""  # no script on the page can read it

    # The page's own POST carries its Origin, so the cookie may vouch for it.
    page.get_by_role("button", name="Cancel").click()
    page.locator("#run-status").filter(has_text="cancelled").wait_for()

    page.get_by_role("link", name="Runs").click()
    row = page.locator(f'#runs-table tr[data-run-id="{run["id"]}"]')
    assert "by alice" in row.text_content()

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{dashboard.url}/login")
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    page.goto(f"{dashboard.url}/compare")
    assert page.url == f"{dashboard.url}/login?next=%2Fcompare"
    assert not page.probe.errors


def violations(page: Any) -> list[str]:
    return [error for error in page.errors if any(word in error for word in CSP_WORDS)]


def test_the_pages_run_under_the_csp(page, dashboard, finished_runs):
    ids = [run["id"] for run in finished_runs]
    answer = page.goto(f"{dashboard.url}/runs/{ids[0]}")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page.wait_for_function("() => (document.getElementById('chart-valid_top1').data?.[0]?.x?.length ?? 0) > 0")
    page.wait_for_function("() => (document.getElementById('chart-lr').data?.[0]?.x?.length ?? 0) > 0")

    page.goto(f"{dashboard.url}/compare?runs={ids[0]},{ids[1]}")
    page.wait_for_function("() => (document.getElementById('chart-train_loss').data?.length ?? 0) === 2")
    page.goto(f"{dashboard.url}/runs/new")
    # The presets come from a <script type="application/json"> block: data, never run, so allowed.
    page.get_by_label("Preset", exact=True).select_option("b")
    assert page.get_by_label("Label smoothing").input_value() == "0.1"
    page.get_by_label("Root").fill(str(dashboard.data_root))  # the LR preview chart, on the dataset's steps
    page.wait_for_function(
        "() => document.getElementById('preview-note').textContent.includes('from the configured dataset')"
    )
    page.goto(f"{dashboard.url}/")
    page.locator("#runs-table tbody tr").first.wait_for()
    assert violations(page) == []

    # What the policy is for: an inline script that got into a page does not run.
    from playwright.sync_api import Error

    page.evaluate("window.inlineRan = false")
    with pytest.raises(Error, match="Executing inline script violates the following Content Security Policy"):
        page.add_script_tag(content="window.inlineRan = true")
    assert page.evaluate("window.inlineRan") is False


def test_the_log_in_page_runs_under_the_csp(page, shared):
    dashboard, _token = shared
    page.goto(f"{dashboard.url}/login")
    page.get_by_label("Token").wait_for()
    assert re.search(r"tricklab token create NAME", page.content())
    assert violations(page) == [] and not page.probe.errors
