"""``tricklab``: serve the dashboard, run a worker, submit runs; plus the trainer's own commands.

Each command sets ``args.handler(args) -> int``. Handlers import what they need when they run, so
a command pays only for its own imports.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config_arguments import add_config_arguments

if TYPE_CHECKING:
    from backend.db import Database
    from backend.settings import Settings

# Ours, parsed without the trainer's commands: importing those loads torch (seconds, and memory
# the server and its workers never use).
OWN_COMMANDS = ("serve", "worker", "submit", "token")
DEFAULT_SERVER = "http://127.0.0.1:8000"
EXIT_FAILED, EXIT_USAGE = 1, 2


def build_parser(*, trainer_commands: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tricklab",
        description="Launch, watch and compare Bag-of-Tricks runs: serve the dashboard, run "
        "workers, submit runs, train by hand, get the dataset.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(commands)
    _add_worker(commands)
    _add_submit(commands)
    _add_token(commands)
    if trainer_commands:
        from trainer.cli import add_trainer_commands

        add_trainer_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(trainer_commands=not (argv and argv[0] in OWN_COMMANDS))
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    return args.handler(args)


def _settings(**overrides: Any) -> Settings:
    """Settings from TRICKLAB_* variables (and the command's own ``overrides``); a bad value ends the
    command with its message."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from backend.settings import Settings

    try:
        return Settings(**overrides)
    except SettingsError as exc:  # a list setting that is not JSON
        raise SystemExit(
            f"tricklab: bad settings: {exc}; list settings are JSON, e.g. TRICKLAB_DATA_ROOTS='[\"/data\"]'"
        ) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"TRICKLAB_{'_'.join(map(str, e['loc'])).upper() or 'SETTINGS'}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"tricklab: bad settings: {problems}") from None


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


# --- serve --------------------------------------------------------------------------------------


def _add_serve(commands: argparse._SubParsersAction) -> None:
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

    _log_to_stderr()
    settings = _settings(bind_host=args.host, insecure_no_auth=args.insecure_no_auth)
    database = Database(settings.database_url)
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


def _start_worker(settings: Settings) -> subprocess.Popen:
    from backend.worker import die_with_parent

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


# --- worker -------------------------------------------------------------------------------------


def _add_worker(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser(
        "worker",
        help="claim queued runs and train them, one at a time",
        description="Claim queued runs (highest priority, then oldest) and train each in a child "
        "process, on the devices this worker owns: one GPU, several GPUs (one torchrun per run, a "
        "process per GPU; batch_size stays the global batch) or CPU processes. Workers on one host "
        "own disjoint GPUs.",
    )
    devices = worker.add_mutually_exclusive_group()
    devices.add_argument(
        "--device",
        type=_device,
        default=None,
        help="cuda:N (shows the trainer only GPU N), cuda, cpu or auto (default: as each run's config says)",
    )
    devices.add_argument(
        "--gpus",
        type=_gpus,
        metavar="I,J,...",
        help="own these GPUs (indexes among the visible ones, as nvidia-smi counts them) and train each "
        "run on all of them: --gpus 0 is one GPU, --gpus 0,1,2,3 four processes under torchrun (NCCL)",
    )
    devices.add_argument(
        "--procs",
        type=_procs,
        metavar="N",
        help="train each run on N CPU processes under torchrun (gloo), to try distributed training without GPUs",
    )
    worker.add_argument("--once", action="store_true", help="train at most one run, then exit")
    worker.add_argument("--exit-when-idle", action="store_true", help="exit once no run is ready to claim")
    worker.set_defaults(handler=_worker)


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")
    return text


def _gpus(text: str) -> list[int]:
    indexes = [part.strip() for part in text.split(",")]
    if not all(index.isdigit() for index in indexes):
        raise argparse.ArgumentTypeError(f"expected GPU indexes like 0 or 0,1,2,3, got {text!r}")
    return [int(index) for index in indexes]


def _procs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes of at least 1, got {text!r}")
    return int(text)


def _worker(args: argparse.Namespace) -> int:
    from backend.placement import PlacementError, placement
    from backend.worker import run_worker

    _log_to_stderr()
    settings = _settings()
    try:
        where = placement(device=args.device, gpus=args.gpus, procs=args.procs)
        return run_worker(settings=settings, placement=where, once=args.once, exit_when_idle=args.exit_when_idle)
    except PlacementError as exc:
        raise SystemExit(f"tricklab worker: {exc}") from None


# --- submit -------------------------------------------------------------------------------------


def _add_submit(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit",
        help="queue a run on a running server",
        description="Post a run to a tricklab server and print its id. Relative "
        "paths in the config are read from the server's working folder.",
    )
    add_config_arguments(submit)
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    submit.add_argument(
        "--server",
        default=os.environ.get("TRICKLAB_SERVER", DEFAULT_SERVER),
        help=f"server URL (default $TRICKLAB_SERVER or {DEFAULT_SERVER})",
    )
    _add_token_argument(submit)
    submit.add_argument(
        "--wait", action="store_true", help="follow the run with a progress bar; exit non-zero unless it succeeds"
    )
    submit.set_defaults(handler=_submit)


def _add_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        default=os.environ.get("TRICKLAB_TOKEN") or None,
        help="the API token, when the server needs one (default $TRICKLAB_TOKEN)",
    )


def _auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _refused(response: Any, server: str) -> str | None:
    """What to tell the user when the server refused the request for want of a token or origin."""
    if response.status_code == 401:
        return (
            f"error: {server} wants a token ({response.json()['detail']}): pass --token or set TRICKLAB_TOKEN; "
            "whoever runs the server makes one with `tricklab token create NAME`"
        )
    if response.status_code in (400, 403):
        return f"error: {response.status_code} from {server}: {response.json()['detail']}"
    return None


def _submit(args: argparse.Namespace) -> int:
    import httpx

    from trainer.config import ConfigError, apply_overrides, read_config_file
    from trainer.config_arguments import parse_set_arguments

    try:
        values = apply_overrides(read_config_file(args.config), parse_set_arguments(args.overrides))
    except ConfigError as exc:
        for field, message in exc.errors.items():
            print(f"error: {field}: {message}", file=sys.stderr)
        return EXIT_USAGE
    server = args.server.rstrip("/")
    # A key of its own per submit: should the request be sent again, the server stores the run once.
    headers = {**_auth_headers(args.token), "Idempotency-Key": str(uuid.uuid4())}
    try:
        response = httpx.post(
            f"{server}/api/v1/runs",
            json={"config": values, "priority": args.priority},
            headers=headers,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {server}: {exc}; is `tricklab serve` running?", file=sys.stderr)
        return EXIT_FAILED
    if (refused := _refused(response, server)) is not None:
        print(refused, file=sys.stderr)
        return EXIT_FAILED
    if response.status_code == 422:
        for error in response.json()["detail"]:
            location = ".".join(str(part) for part in error["loc"][2:]) or "config"
            print(f"error: {location}: {error['msg']}", file=sys.stderr)
        return EXIT_USAGE
    if response.status_code != 201:
        print(f"error: {response.status_code} from {server}: {response.text}", file=sys.stderr)
        return EXIT_FAILED
    run = response.json()
    print(run["id"])
    print(f"queued run {run['id']} ({run['name']}); follow it at {server}/api/v1/runs/{run['id']}", file=sys.stderr)
    return _follow(server, run, headers=headers) if args.wait else 0


def _follow(server: str, run: dict[str, Any], *, headers: dict[str, str]) -> int:
    """Follow a run's event stream with a progress bar, reconnecting where it left off."""
    import httpx
    from httpx_sse import connect_sse
    from tqdm import tqdm

    bar = tqdm(total=run["epochs"], unit="epoch", desc=f"run {run['id']} {run['status']}", file=sys.stderr)
    last_epoch, final, failures = 0, None, 0
    with httpx.Client(timeout=httpx.Timeout(10, read=60)) as client:
        while final is None:
            try:
                with connect_sse(
                    client,
                    "GET",
                    f"{server}/api/v1/runs/{run['id']}/events",
                    headers={**headers, "Last-Event-ID": str(last_epoch)},
                ) as source:
                    source.response.raise_for_status()
                    for event in source.iter_sse():
                        failures = 0
                        if event.event == "epoch":
                            data = event.json()
                            bar.update(data["epoch"] - bar.n)
                            last_epoch = data["epoch"]
                            if data.get("valid_top1") is not None:
                                bar.set_postfix(valid_top1=f"{data['valid_top1']:.2f}")
                        elif event.event in ("status", "end"):
                            data = event.json()
                            bar.set_description(f"run {data['id']} {data['status']} (attempt {data['attempt']})")
                            if event.event == "end":
                                final = data
            except httpx.HTTPError as exc:
                failures += 1
                if failures > 30:
                    bar.close()
                    print(f"error: lost the server: {exc}", file=sys.stderr)
                    return EXIT_FAILED
                time.sleep(2)
    bar.close()
    if final["status"] == "succeeded":
        print(
            f"run {final['id']} succeeded: test top-1 {final['test_top1']:.2f} top-5 {final['test_top5']:.2f} "
            f"(best epoch {final['best_epoch']})",
            file=sys.stderr,
        )
        return 0
    print(
        f"run {final['id']} {final['status']}" + (f": {final['error']}" if final.get("error") else ""), file=sys.stderr
    )
    return EXIT_FAILED


# --- token --------------------------------------------------------------------------------------


def _add_token(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser(
        "token",
        help="create, list and revoke API tokens",
        description="API tokens, kept in the server's database (TRICKLAB_DATABASE_URL) as hashes. "
        "Once one exists, every request needs one: scripts send Authorization: Bearer TOKEN, "
        "people log in with it on the dashboard's log-in page.",
    )
    actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it, once")
    create.add_argument("name", help="who or what uses it; runs and studies it creates record this name")
    create.set_defaults(handler=_token_create)
    listing = actions.add_parser("list", help="every token: name, created, active or revoked, open log-ins")
    listing.set_defaults(handler=_token_list)
    revoke = actions.add_parser("revoke", help="revoke a token at once and end its browser sessions")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_token_revoke)


def _token_command(action: Any) -> int:
    """Run ``action(session)`` on the migrated database; a refused request ends with its message."""
    from backend import migrate
    from backend.db import Database
    from backend.services.errors import ServiceError

    database = Database(_settings().database_url)
    try:
        migrate.upgrade(database)
        with database.session(write=True) as session:
            return action(session)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        database.dispose()


def _token_create(args: argparse.Namespace) -> int:
    from backend.services import tokens

    def create(session: Any) -> int:
        secret = tokens.create_token(session=session, name=args.name)
        print(secret)  # alone on stdout: `export TRICKLAB_TOKEN=$(tricklab token create me)` works
        print(
            f"token {args.name!r} created. It is shown this once: keep it now. Log in with it on the dashboard, "
            "or send it from scripts as Authorization: Bearer TOKEN (tricklab submit reads TRICKLAB_TOKEN). "
            "From now on every request needs a token.",
            file=sys.stderr,
        )
        return 0

    return _token_command(create)


def _token_list(_args: argparse.Namespace) -> int:
    from backend.services import tokens

    def show(session: Any) -> int:
        found = tokens.list_tokens(session=session)
        if not found:
            print("no tokens: a server bound to loopback is open to anyone on this machine", file=sys.stderr)
            return 0
        width = max(len("NAME"), *(len(token.name) for token in found))
        print(f"{'NAME':<{width}}  {'CREATED':<16}  {'STATUS':<24}  LOG-INS")
        for token in found:
            status = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            print(f"{token.name:<{width}}  {token.created_at:%Y-%m-%d %H:%M}  {status:<24}  {token.logins}")
        return 0

    return _token_command(show)


def _token_revoke(args: argparse.Namespace) -> int:
    from backend.services import tokens

    def revoke(session: Any) -> int:
        ended = tokens.revoke_token(session=session, name=args.name)
        print(f"revoked {args.name!r}; {ended} browser session{'' if ended == 1 else 's'} ended", file=sys.stderr)
        if not tokens.any_active_token(session=session):
            print(
                "no active token is left: the server refuses every request until `tricklab token create NAME`",
                file=sys.stderr,
            )
        return 0

    return _token_command(revoke)
