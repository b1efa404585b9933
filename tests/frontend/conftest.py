"""The browser tests: Debian's Chromium driven by Playwright, against a real dashboard (`tricklab serve`,
uvicorn and one worker, on a free port, with a tiny generated dataset) or the study server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testlib.browser import CHROMIUM, CHROMIUM_ARGS
from testlib.dashboard import Dashboard, serve


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, one per test module. A sync Playwright runs an event loop
    in the main thread until it stops: kept for the session, it broke the tests that a pytest-xdist
    worker ran after the browser tests and that start a loop of their own (``anyio.run``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def dashboard(
    tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path, trainer_fork_server: Path
) -> Iterator[Dashboard]:
    """The browser tests' dashboard; its runs' trainers are forked from the session's fork server."""
    with serve(tmp_path_factory.mktemp("dashboard"), demo_dataset) as running:
        yield running


@dataclass
class PageProbe:
    """What a page did besides drawing: script errors and dialogs (an executed alert() shows here)."""

    errors: list[str]
    dialogs: list[str]
    accept_dialogs: bool = False

    def on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.accept() if self.accept_dialogs else dialog.dismiss()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A Chromium tab: ``page.errors`` holds every script and console error, ``page.probe`` the same
    without the failed loads, and the dialogs."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.probe = PageProbe(errors=[], dialogs=[])

    def on_page_error(error: Any) -> None:
        tab.errors.append(str(error))
        tab.probe.errors.append(str(error))

    def on_console(message: Any) -> None:
        if message.type == "error":
            tab.errors.append(message.text)
            # Chromium logs every 4xx as a console error; the 422s and 409s are expected answers here.
            if not message.text.startswith("Failed to load resource"):
                tab.probe.errors.append(message.text)

    tab.on("pageerror", on_page_error)
    tab.on("console", on_console)
    tab.on("dialog", tab.probe.on_dialog)
    yield tab
    context.close()


@pytest.fixture(scope="session")
def finished_runs(dashboard: Dashboard) -> list[dict[str, Any]]:
    """Two finished runs to compare: a base and a label-smoothing one whose name is markup."""
    first = dashboard.submit("tiny base")
    second = dashboard.submit("<script>alert(1)</script>", tricks={"label_smoothing": 0.1})
    runs = [dashboard.wait(first["id"]), dashboard.wait(second["id"])]
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"], dashboard.log_tail()
    return runs
