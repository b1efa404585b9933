"""The web server never loads PyTorch: not at start, not on the requests that once did.

The import contracts (``lint-imports``) check the import graph; this checks the running server. It
runs in a fresh interpreter, since this one has long imported torch: a real uvicorn serving the app on
SQLite, asked for what used to import torch (the schedule and study previews, a run of a timm
architecture outside the short list, a study with its estimate) and every page, then asked which of
torch, torchvision and timm it holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testlib.processes import REPO

from tricklab.local import free_port

SERVER_SCRIPT = """
import json, sys, threading, time
from pathlib import Path

import httpx
import uvicorn

from backend.app import create_app
from backend.settings import Settings

workdir, data_root, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
settings = Settings(
    database_url=f"sqlite:///{workdir / 'tricklab.db'}", runs_dir=workdir / "runs", data_roots=[data_root]
)
server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
threading.Thread(target=server.run, daemon=True).start()
while not server.started:
    time.sleep(0.05)

tiny = {"model": {"arch": "resnet18", "pretrained": False}, "data": {"root": str(data_root), "image_size": 32}}
timm_arch = {**tiny, "model": {"arch": "efficientnet_b0", "pretrained": False, "zero_init_residual": True}}
statuses = {}
with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
    def call(label, method, path, **kwargs):
        response = client.request(method, path, **kwargs)
        statuses[label] = response.status_code
        return response

    call("schedule preview", "POST", "/api/v1/schedule/preview", json={"config": tiny})
    tryout = {"model.arch": "resnet18", "model.pretrained": False, "teacher.model.arch": "resnet34",
              "data.root": str(data_root)}
    seed_study = {"name": "try", "preset": "seed", "seeds": 1, "overrides": tryout}
    call("study preview", "POST", "/api/v1/studies/preview", json=seed_study)
    # efficientnet_b0 has no residual blocks to zero: refused from the table, not by building the model
    call("timm run refused", "POST", "/api/v1/runs", json={"config": timm_arch})
    timm_run = {**timm_arch, "model": {"arch": "efficientnet_b0", "pretrained": False}}
    run = call("timm run", "POST", "/api/v1/runs", json={"config": timm_run}).json()
    grid = {"name": "grid", "grid": {"switches": {"cosine": True}}, "seeds": 1,
            "overrides": {"data.root": str(data_root), "model.pretrained": False}}
    study = call("study", "POST", "/api/v1/studies", json=grid).json()
    # A sweep: the server's controller asks Optuna and queues its trials' runs, in this process.
    lr = {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    sweep_body = {"name": "lr", "space": lr, "base": {"data.root": str(data_root), "model.pretrained": False}}
    sweep = call("sweep", "POST", "/api/v1/sweeps", json=sweep_body).json()
    while not httpx.get(f"http://127.0.0.1:{port}/api/v1/sweeps/{sweep['id']}").json()["trials"]:
        time.sleep(0.2)
    call("sweep figures", "GET", f"/api/v1/sweeps/{sweep['id']}/figures")
    for page in ["/", "/runs/new", f"/runs/{run['id']}", "/studies", f"/studies/{study['id']}",
                 f"/compare?runs={run['id']}", "/sweeps", f"/sweeps/{sweep['id']}", "/docs", "/redoc", "/nope"]:
        call(page, "GET", page)
    call("compare", "GET", f"/api/v1/compare?run_ids={run['id']}")
    call("study read", "GET", f"/api/v1/studies/{study['id']}")
    # The reports: their tables, the figures' data and the HTML file (the figures' images are drawn in a child).
    for kind in ("html", "md", "tex"):
        call(f"study report.{kind}", "GET", f"/api/v1/studies/{study['id']}/report.{kind}")
        call(f"compare report.{kind}", "GET", f"/api/v1/compare/report.{kind}?run_ids={run['id']}")
        call(f"sweep report.{kind}", "GET", f"/api/v1/sweeps/{sweep['id']}/report.{kind}")
server.should_exit = True
print(json.dumps({"statuses": statuses, "loaded": sorted({"torch", "torchvision", "timm"} & set(sys.modules))}))
"""


def test_the_server_answers_every_page_and_the_torch_paths_without_loading_torch(tmp_path: Path, demo_dataset: Path):
    process = subprocess.run(
        [sys.executable, "-c", SERVER_SCRIPT, str(tmp_path), str(demo_dataset), str(free_port())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer = json.loads(process.stdout.strip().splitlines()[-1])
    statuses = answer["statuses"]
    assert (statuses.pop("timm run refused"), statuses.pop("/nope")) == (422, 404)
    assert (statuses.pop("timm run"), statuses.pop("study"), statuses.pop("sweep")) == (201, 201, 201)
    assert set(statuses.values()) == {200}, statuses
    assert answer["loaded"] == []
