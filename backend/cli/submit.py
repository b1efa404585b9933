"""``tricklab submit``: post a run to a running server and print its id; ``--wait`` follows it."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

from backend.cli.common import EXIT_FAILED, EXIT_USAGE
from trainer.config_arguments import add_config_arguments

DEFAULT_SERVER = "http://127.0.0.1:8000"


def add_command(commands: argparse._SubParsersAction) -> None:
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
