"""A real dashboard for the page tests: `tricklab serve` (uvicorn and one worker) on a free port, a
tiny generated dataset, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dashboard_testlib import Dashboard, serve, settings_for
from fastapi.testclient import TestClient

from backend.app import create_app


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[TestClient]:
    """The app in-process, for endpoint tests that need no worker."""
    home = tmp_path_factory.mktemp("api")
    with TestClient(create_app(settings_for(home, demo_dataset))) as client:
        yield client


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[Dashboard]:
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
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.probe = PageProbe(errors=[], dialogs=[])
    tab.on("pageerror", lambda error: tab.probe.errors.append(str(error)))
    # Chromium logs every 4xx as a console error; the 422s and 409s are expected answers here.
    tab.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and tab.probe.errors.append(message.text)
        ),
    )
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
