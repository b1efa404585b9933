"""Schemathesis fuzzes every operation of the API against a real server on loopback, with every check on.

The test fails on any 5xx and on any response the OpenAPI schema does not describe (status, body,
content type, headers, a 405's Allow), and on a request the schema forbids that the server accepts.
Seeded and bounded (tests/backend/api/schemathesis.toml), it sends the same requests on every run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testlib.dashboard import serve

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 30
SEED = 11
FIGURES = 3  # the study's, the comparison's and the sweep's figure operations


@pytest.mark.timeout(240)
def test_schemathesis_finds_no_failure(tmp_path: Path, demo_dataset: Path):
    # The server's data root is "data" in its working folder: the schema's default data.root queues runs.
    home = tmp_path / "server"
    home.mkdir()
    (home / "data").symlink_to(demo_dataset, target_is_directory=True)
    report = tmp_path / "schemathesis.json"
    with serve(home, home / "data", workers=0) as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--no-color",
                "--report",
                "json",
                "--report-json-path",
                str(report),
            ],
            cwd=tmp_path,  # its cache of earlier failures (.schemathesis/) goes there, not into the checkout
            capture_output=True,
            text=True,
            timeout=200,
            check=False,  # the report says what failed
        )
        log = server.log_tail()
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(report.read_text())
    operations = summary["operations"]
    # Every operation but the figures, which the config leaves out (drawn in a browser, seconds each).
    assert operations["tested"] == operations["selected"] == operations["total"] - FIGURES > 20, operations
    assert summary["test_cases"]["generated"] > 500, summary["test_cases"]
    failures = summary["failures"] + summary["errors"]
    assert not failures and done.returncode == 0, done.stdout[-6000:] + "\nserver log:\n" + log
    assert "Traceback" not in log, log
