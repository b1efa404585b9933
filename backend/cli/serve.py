"""``tricklab serve``: the dashboard and API, with worker processes beside it."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.cli.common import EXIT_USAGE, load_settings, log_to_stderr

if TYPE_CHECKING:
    from backend.db import Database
    from backend.settings import Settings
    from trainer.forked import ForkServerProcess


def add_command(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="the dashboard and API, with workers beside it",
        description="Serve the dashboard and REST API (OpenAPI at /docs) with uvicorn, "
        "and start worker processes beside it, stopped when the server stops.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    serve.add_argument("--workers", type=_count, default=1, help="worker processes to start (default 1)")
    serve.add_argument(
        "--no-worker",
        dest="workers",
        action="store_const",
        const=0,
        help="start no worker (run `tricklab worker` elsewhere)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="write a small generated dataset into the first data root if it holds none"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve an address beyond loopback while no token exists: anyone who reaches it may use it",
    )
    serve.set_defaults(handler=_serve)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


class _Shutdown(Exception):
    pass


def _raise_shutdown(*_args: Any) -> None:
    raise _Shutdown


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend import migrate
    from backend.app import create_app
    from backend.db import Database

    log_to_stderr()
    settings = load_settings(bind_host=args.host, insecure_no_auth=args.insecure_no_auth)
    database = Database(settings.database_url, busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)
    migrate.upgrade(database)  # once here, so the workers find the schema ready
    refusal = _open_server_refusal(database, settings, port=args.port)
    database.dispose()
    if refusal:
        print(refusal, file=sys.stderr)
        return EXIT_USAGE
    if args.demo:
        _ensure_demo_dataset(settings.data_roots)

    # uvicorn re-raises SIGTERM after its graceful shutdown; this handler turns it into an
    # exception, so the workers below are stopped instead of the process just ending.
    signal.signal(signal.SIGTERM, _raise_shutdown)
    fork_server = _start_fork_server(settings) if args.workers else None
    if fork_server is not None:
        settings = settings.model_copy(update={"fork_server": str(fork_server.socket_path)})
    workers = [_start_worker(settings) for _ in range(args.workers)]
    app = create_app(settings)
    # What is loaded by now lives as long as the server. Frozen, it is left out of the collector's
    # full passes, which otherwise rescan it all (pauses of hundreds of ms once large answers have
    # been served).
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=3, log_level="info")
    except (_Shutdown, KeyboardInterrupt):
        pass
    finally:
        _stop_workers(workers, grace=settings.kill_grace_seconds + 10)
        if fork_server is not None:
            fork_server.stop()
    return 0


def _open_server_refusal(database: Database, settings: Settings, *, port: int) -> str | None:
    """Why the server must not start: beyond loopback, with no token and no --insecure-no-auth."""
    from backend.hosts import is_loopback
    from backend.services import tokens

    with database.session() as session:
        has_token, had_token = tokens.any_active_token(session=session), tokens.any_token(session=session)
    logger = logging.getLogger("tricklab.serve")
    if has_token:
        logger.info("tokens required: every request needs one (tricklab token list shows them)")
        return None
    if had_token and (is_loopback(settings.bind_host) or settings.insecure_no_auth):
        logger.warning("every token was revoked: each request is refused until `tricklab token create NAME`")
        return None
    if is_loopback(settings.bind_host):
        logger.info("open: no token exists, so anyone on this machine may use the dashboard")
        return None
    if settings.insecure_no_auth:
        logger.warning("open to the network (--insecure-no-auth): anyone who reaches %s may use it", settings.bind_host)
        return None
    return (
        f"tricklab: refusing to serve {settings.bind_host}:{port} without a token: anyone who can reach it could "
        "launch, cancel and delete runs.\n"
        "Create one first, with this server's TRICKLAB_DATABASE_URL:\n"
        "    tricklab token create NAME\n"
        "then log in with it on the dashboard (scripts send it as Authorization: Bearer TOKEN), "
        "or pass --insecure-no-auth to serve everyone without a token."
    )


def _ensure_demo_dataset(data_roots: list[Path]) -> None:
    if any((root / "CUB_200_2011").is_dir() for root in data_roots):
        return
    # In a child process: writing it loads torch, which the server itself never needs.
    subprocess.run([sys.executable, "-m", "backend", "data", "demo", str(data_roots[0])], check=True)


def _start_fork_server(settings: Settings) -> ForkServerProcess | None:
    """One trainer fork server for all the workers this server starts (each would start its own)."""
    from trainer.forked import ForkServerProcess, forkable_argv

    if settings.fork_server != "auto" or forkable_argv(settings.trainer_command) is None:
        return None
    return ForkServerProcess()


def _start_worker(settings: Settings) -> subprocess.Popen:
    from trainer.processes import die_with_parent

    # SIGTERM when the server dies, even by SIGKILL: the worker hands its run back and exits.
    return subprocess.Popen(
        [sys.executable, "-m", "backend", "worker"],
        stdin=subprocess.DEVNULL,
        env={**os.environ, **settings.environ()},  # the server's own settings, as it checked them
        preexec_fn=die_with_parent(os.getpid(), signal.SIGTERM),  # noqa: PLW1509 - only prctl, before exec
    )


def _stop_workers(workers: list[subprocess.Popen], *, grace: float) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
