"""`tricklab token create|list|revoke`, `serve` beyond loopback, and `submit --token`, each as the
user runs them: real subprocesses on a real database."""

from __future__ import annotations

import hashlib
import os
import re
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text
from testlib.processes import tricklab

from backend.hosts import machine_names
from tricklab.local import LocalServer, ServerDidNotStart, serving, tricklab_serve


def test_token_commands(database_url):
    env = {"TRICKLAB_DATABASE_URL": database_url}
    empty = tricklab("token", "list", env=env)
    assert empty.returncode == 0 and "no tokens" in empty.stderr

    created = tricklab("token", "create", "alice", env=env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert created.stdout == f"{secret}\n" and secret.startswith("tlab_")  # alone, for $(tricklab token create)
    assert "shown this once" in created.stderr

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM tokens")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1 and hashlib.sha256(secret.encode()).hexdigest() in rows[0]
    assert not any(secret in str(value) for value in rows[0])

    listed = tricklab("token", "list", env=env)
    assert listed.returncode == 0 and secret not in listed.stdout
    assert listed.stdout.splitlines()[1].split()[::3] == ["alice", "active"]

    twice = tricklab("token", "create", "alice", env=env)
    assert twice.returncode == 1 and "a token named 'alice' exists; revoke it first" in twice.stderr
    bad = tricklab("token", "create", "no spaces", env=env)
    assert bad.returncode == 1 and "use 1 to 64 letters" in bad.stderr

    revoked = tricklab("token", "revoke", "alice", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked 'alice'; 0 browser sessions ended" in revoked.stderr and "no active token is left" in revoked.stderr
    again = tricklab("token", "revoke", "alice", env=env)
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert "revoked 20" in tricklab("token", "list", env=env).stdout


def serve_beyond_loopback(home: Path, *args: str) -> AbstractContextManager[LocalServer]:
    """`tricklab serve --host 0.0.0.0 ARGS` in ``home`` with no TRICKLAB_ settings but the database's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRICKLAB_")}
    command = tricklab_serve("--no-worker", "--host", "0.0.0.0", *args)
    return serving(cwd=home, env=env, log=home / "serve.log", command=command, timeout=60)


def test_serve_beyond_loopback_needs_a_token(tmp_path):
    with pytest.raises(ServerDidNotStart, match="exited with 2") as refused, serve_beyond_loopback(tmp_path):
        pass
    output = str(refused.value)
    assert re.search(r"refusing to serve 0\.0\.0\.0:\d+ without a token", output)
    assert "tricklab token create NAME" in output and "--insecure-no-auth" in output

    env = {"TRICKLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'tricklab.db'}"}
    secret = tricklab("token", "create", "alice", env=env).stdout.strip()
    with serve_beyond_loopback(tmp_path) as server:
        port = urlsplit(server.url).port
        runs = f"{server.url}/api/v1/runs"
        name = sorted(machine_names())[0]
        # The address bound is every interface: the machine's name is answered, and the token is needed.
        assert httpx.get(runs, headers={"Host": f"{name}:{port}"}).status_code == 401
        assert (
            httpx.get(runs, headers={"Host": f"{name}:{port}", "Authorization": f"Bearer {secret}"}).status_code == 200
        )
        assert httpx.get(runs, headers={"Host": "evil.example", "Authorization": f"Bearer {secret}"}).status_code == 400


def test_insecure_no_auth_serves_everyone_beyond_loopback(tmp_path):
    with serve_beyond_loopback(tmp_path, "--insecure-no-auth") as server:
        assert httpx.get(f"{server.url}/api/v1/runs").status_code == 200


def test_submit_sends_the_token(make_settings, sqlite_url, live_server, start_worker, data_root, tmp_path):
    settings = make_settings(sqlite_url)
    url = live_server(settings)
    start_worker(settings)
    secret = tricklab("token", "create", "ci", env=settings.environ()).stdout.strip()
    config = tmp_path / "run.yaml"
    config.write_text(f"name: cli\nepochs: 2\ndata:\n  root: {data_root}\n")

    without = tricklab("submit", str(config), "--server", url, env={"TRICKLAB_TOKEN": ""})
    assert without.returncode == 1
    assert f"error: {url} wants a token" in without.stderr and "pass --token or set TRICKLAB_TOKEN" in without.stderr
    wrong = tricklab("submit", str(config), "--server", url, "--token", "tlab_wrong")
    assert wrong.returncode == 1 and "invalid or revoked token" in wrong.stderr

    by_flag = tricklab("submit", str(config), "--server", url, "--token", secret, "--wait")
    assert by_flag.returncode == 0, by_flag.stderr
    assert "succeeded" in by_flag.stderr  # the event stream was followed with the token too
    by_env = tricklab("submit", str(config), "--server", url, env={"TRICKLAB_TOKEN": secret})
    assert by_env.returncode == 0, by_env.stderr
    for run_id in (by_flag.stdout.strip(), by_env.stdout.strip()):
        run = httpx.get(f"{url}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {secret}"}).json()
        assert run["created_by"] == "ci"
