"""A client generated from the API's schema by a standard generator (openapi-python-client, as users of
other languages generate theirs) has every model: the generator warns of no schema it had to drop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backend.app import create_app
from backend.settings import Settings


@pytest.mark.timeout(120)
def test_a_generated_client_keeps_every_schema(tmp_path: Path):
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(create_app(Settings()).openapi()))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter run over the output: the models are the point
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
