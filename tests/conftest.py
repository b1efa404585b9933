"""Fixtures shared across the test suite."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from backend.settings import Settings
from trainer.data.commands import add_data_commands
from trainer.data.demo import write_demo_dataset


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny generated CUB_200_2011/ (4 classes x 12 images, 40 px short side).

    Shared by the whole session: copy it before changing anything in it.
    """
    parent = tmp_path_factory.mktemp("demo-dataset")
    write_demo_dataset(parent, classes=4, per_class=12, size=40, seed=0)
    return parent


@pytest.fixture
def data_cli():
    """Run ``tricklab data ...`` arguments through a parser built as the top-level CLI builds it."""

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="tricklab")
        add_data_commands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["data", *argv])
        return args.handler(args)

    return run


POSTGRES_ENV = "TRICKLAB_TEST_POSTGRES_URL"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database of its own for one test, dropped afterwards."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set in CI; scripts/test starts PostgreSQL and sets it")
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server (scripts/test starts one)")
    name = f"tricklab_test_{secrets.token_hex(6)}"
    admin = create_engine(Settings(database_url=admin_url).database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(admin.url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tricklab.db"
    else:
        yield from _postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/tricklab.db"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, one for the whole session (a second sync Playwright
    cannot start while the first one's event loop runs)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
