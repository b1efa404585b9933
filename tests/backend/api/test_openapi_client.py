"""A client generated from the API's schema by a standard generator (openapi-python-client, as users of
other languages generate theirs) has every model: the generator warns of no schema it had to drop."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.app import create_app
from backend.settings import Settings

# Pydantic's names for bounds that it writes into a schema when it cannot place them; JSON Schema says
# minimum, maximum, exclusiveMinimum and exclusiveMaximum.
NOT_JSON_SCHEMA = {"ge", "le", "gt", "lt"}


def _nodes(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every mapping in the document with where it sits (field names under "properties" too: a field
    named "le" would be flagged, and there is none)."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, f"{where}/{index}")


def test_every_array_has_item_types_and_every_bound_is_json_schema():
    for where, node in _nodes(create_app(Settings()).openapi()):
        assert node.get("type") != "array" or "items" in node, where
        assert not NOT_JSON_SCHEMA & set(node), where


@pytest.mark.timeout(120)
def test_a_generated_client_keeps_every_schema(tmp_path: Path):
    # A test extra since this test came (pyproject.toml): an environment installed before lacks it.
    assert importlib.util.find_spec("openapi_python_client"), "pip install -e '.[test]' (openapi-python-client)"
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(create_app(Settings()).openapi()))
    config = tmp_path / "config.json"
    # No formatter run over the output: the models are the point. The generator knows text, JSON and
    # octet streams; a report's figures (SVG, PNG) and a run's zip are bytes to it, as its documented
    # override says.
    binary = dict.fromkeys(("image/svg+xml", "image/png", "application/zip"), "application/octet-stream")
    config.write_text(json.dumps({"post_hooks": [], "content_type_overrides": binary}))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "openapi_python_client", "generate"),
            *("--path", str(schema), "--output-path", str(tmp_path / "client"), "--meta", "none"),
            *("--config", str(config)),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed
    # It prints "Warning(s) encountered" and "Unable to process schema ..." for every schema it drops.
    assert "Warning" not in printed, printed
    assert "Unable" not in printed, printed

    models = {path.stem for path in (tmp_path / "client" / "models").glob("*.py")}
    assert {"study_grid", "study_from_preset", "study_from_grid", "run_create", "run_public"} <= models
    create_study = (tmp_path / "client" / "api" / "studies" / "create_study.py").read_text()
    assert "body: StudyFromGrid | StudyFromPreset," in create_study
    study_from_grid = (tmp_path / "client" / "models" / "study_from_grid.py").read_text()
    assert all(f"    {field}: " in study_from_grid for field in ("name", "grid", "overrides", "seeds", "priority"))
