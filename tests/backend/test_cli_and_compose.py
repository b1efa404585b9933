"""The command line: compose commands exist, submit posts and follows a run."""

import json
import os

import pytest
import yaml
from sqlalchemy import select
from testlib.processes import REPO, tricklab

from backend.cli.main import build_parser
from backend.db import Database
from backend.models import IdempotencyKey


def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_each_compose_command_is_a_tricklab_command():
    services = compose()["services"]
    assert set(services) >= {"db", "api", "worker"}
    parser = build_parser()
    for name in ("api", "worker"):
        program, *argv = services[name]["command"]
        assert program == "tricklab"
        args = parser.parse_args(argv)
        assert callable(args.handler), name
    assert services["api"]["command"][1:3] == ["serve", "--no-worker"]
    assert services["worker"]["command"][1] == "worker"


def test_compose_wiring():
    services = compose()["services"]
    assert "healthcheck" in services["db"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
        mounts = {volume.split(":")[1] for volume in services[name]["volumes"]}
        assert {"/runs", "/data"} <= mounts
        env = services[name]["environment"]
        assert env["TRICKLAB_DATABASE_URL"].startswith("postgresql://")
        assert json.loads(env["TRICKLAB_DATA_ROOTS"]) == ["/data"]
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "tricklab" in (REPO / "Dockerfile").read_text() and "pip install" in (REPO / "Dockerfile").read_text()


def test_the_trainer_commands_are_part_of_tricklab():
    parser = build_parser()
    assert callable(parser.parse_args(["train", "c.yaml"]).handler)
    assert callable(parser.parse_args(["data", "demo", "d"]).handler)


@pytest.fixture
def server(make_settings, sqlite_url, live_server, start_worker):
    settings = make_settings(sqlite_url)
    url = live_server(settings)
    start_worker(settings)
    return url


def test_submit_wait_follows_the_run_to_its_end(server, data_root, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"name: cli peak\nepochs: 2\ndata:\n  root: {data_root}\n")
    done = tricklab("submit", str(config), "--set", "epochs=3", "--server", server, "--wait")
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout.strip())
    # The pages' two words: the test figures come from the checkpoint (lowest valid loss, epoch 3),
    # the report's figure from the peak (highest valid top-1, epoch 2).
    assert (
        f"run {run_id} succeeded: test top-1 42.00 top-5 84.00 (checkpoint epoch 3); "
        "peak valid top-1 18.00 (peak epoch 2)"
    ) in done.stderr
    assert "best" not in done.stderr

    failing = tricklab("submit", str(config), "--set", "name=fail", "--server", server, "--wait")
    assert failing.returncode == 1
    assert "failed: RuntimeError: fake failure" in failing.stderr


def test_submit_reports_bad_configs_by_field(server, data_root, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"epochs": 0, "data": {"root": "/nowhere"}}))
    result = tricklab("submit", str(config), "--server", server)
    assert result.returncode == 2
    assert "error: epochs: Input should be greater than or equal to 1" in result.stderr
    unknown = tricklab("submit", str(config), "--set", "tricks.nope=1", "--server", server)
    assert unknown.returncode == 2 and "error: tricks.nope: unknown key" in unknown.stderr
    missing = tricklab("submit", str(tmp_path / "absent.yaml"), "--server", server)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_submit_sends_an_idempotency_key(make_settings, sqlite_url, live_server, data_root, tmp_path):
    settings = make_settings(sqlite_url)
    url = live_server(settings)
    config = tmp_path / "run.yaml"
    config.write_text(f"name: keyed\ndata:\n  root: {data_root}\n")
    done = tricklab("submit", str(config), "--server", url)
    assert done.returncode == 0, done.stderr
    database = Database(settings.database_url)
    with database.session() as session:
        (key,) = session.scalars(select(IdempotencyKey)).all()
    database.dispose()
    assert (key.scope, key.resource_id) == ("runs", int(done.stdout.strip())) and len(key.key) == 36


def test_submit_without_a_server_says_so(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 1\n")
    result = tricklab("submit", str(config), "--server", "http://127.0.0.1:9")
    assert result.returncode == 1 and "is `tricklab serve` running?" in result.stderr


def test_serve_demo_writes_the_dataset_and_accepts_the_default_data_root(tmp_path):
    """The README's main command, from an empty folder: the default config's data.root works."""
    from tricklab import Client
    from tricklab.local import serving, tricklab_serve

    env = {key: value for key, value in os.environ.items() if not key.startswith("TRICKLAB_")}
    command = tricklab_serve("--demo", "--no-worker")
    with serving(cwd=tmp_path, env=env, log=tmp_path / "serve.log", command=command) as server:
        run = Client(server.url, token="").create_run({"name": "demo"})
        assert run.config["data"]["root"] == str(tmp_path / "data")
        assert (tmp_path / "data" / "CUB_200_2011" / "images.txt").is_file()
        assert (tmp_path / "tricklab.db").is_file()
        assert server.stop() == 0
