"""The client installs alone: a fresh virtual environment gets httpx, httpx-sse and pydantic, and neither
the trainer's nor the server's packages (a laptop's `pip install ./client`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

from testlib.processes import REPO

HEAVY = ("torch", "torchvision", "timm", "fastapi", "sqlalchemy", "backend", "trainer")
PROBE = f"""
import importlib.util, json, sys
import tricklab
from tricklab import Client, Invalid
from tricklab.local import serving
print(json.dumps({{
    "file": tricklab.__file__,
    "installed": [name for name in {HEAVY!r} if importlib.util.find_spec(name)],
    "imported": sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r})),
}}))
"""


def test_the_client_installs_into_a_fresh_environment_without_torch_or_the_server(tmp_path: Path):
    # Built from a copy, so that pip's build folder is not left in the repository.
    source = shutil.copytree(REPO / "client", tmp_path / "client", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # Nothing of this checkout on the path: only what pip installed is importable.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
        check=False,  # the assert shows pip's output
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    probed = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )
    assert probed.returncode == 0, probed.stderr[-3000:]
    found = json.loads(probed.stdout)
    assert found["file"].startswith(str(tmp_path / "venv")), found
    assert found["installed"] == [] and found["imported"] == [], found
