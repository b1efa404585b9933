"""How every command that takes a RunConfig reads one: a config file and dotted ``--set`` overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from trainer.config import ConfigError


def parse_set_arguments(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=3", "tricks.kd.teacher=null"]`` -> overrides; values are read as YAML scalars."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError({"--set": f"expected key=value, got {pair!r}"})
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            overrides[key.strip()] = raw
    return overrides


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """A config file and dotted ``--set`` overrides: how every command that takes a RunConfig reads one."""
    parser.add_argument("config", type=Path, help="a RunConfig as .json or .yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted key, e.g. --set tricks.label_smoothing=0.1 (repeatable)",
    )
