"""The app in-process for endpoint tests that need no worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from testlib.dashboard import settings_for
from testlib.processes import LOOPBACK

from backend.app import create_app


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[TestClient]:
    """The app on the demo dataset, its database in a folder of its own."""
    home = tmp_path_factory.mktemp("api")
    with TestClient(create_app(settings_for(home, demo_dataset)), base_url=LOOPBACK) as client:
        yield client
