"""Fixtures shared across the test suite."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

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
