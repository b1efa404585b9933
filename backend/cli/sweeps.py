"""``tricklab sweeps``: start an Optuna sweep from a file, list and show sweeps, pause, resume, cancel,
and save a sweep's report.

They speak to the server through the Python client, as ``tricklab studies`` does; the server's sweep
controller does the searching.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.cli.common import add_server_arguments, speak_to_server

if TYPE_CHECKING:
    from tricklab import Client
    from tricklab.sweep_models import Sweep


def add_command(commands: argparse._SubParsersAction) -> None:
    sweeps = commands.add_parser(
        "sweeps",
        help="search RunConfig keys with Optuna on the queue",
        description="Start, watch, pause, resume and cancel sweeps (the body of POST /api/v1/sweeps).",
    )
    verbs = sweeps.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = _verb(verbs, "create", "start a sweep from a JSON or YAML file holding the body of POST /sweeps", _create)
    create.add_argument("file", type=argparse.FileType("r", encoding="utf-8"), help="the sweep (- for stdin)")
    create.add_argument("--name", help="the sweep's name, instead of the file's")
    create.add_argument("--wait", action="store_true", help="wait until it has finished, then print its verdict")
    _verb(verbs, "list", "list the sweeps, newest first", _list)
    for verb, help_text in (
        ("show", "a sweep's trials and verdict"),
        ("pause", "queue no new trial or confirmation run; running ones finish, and its wall clock stops"),
        ("resume", "go on asking for trials"),
        ("cancel", "cancel its queued and running runs and stop it"),
    ):
        parser = _verb(verbs, verb, help_text, _act)
        parser.add_argument("sweep_id", type=int, metavar="SWEEP_ID")
    report = _verb(verbs, "report", "save a sweep's report: one offline HTML file, or its tables", _report)
    report.add_argument("sweep_id", type=int, metavar="SWEEP_ID")
    report.add_argument("--format", choices=("html", "md", "tex"), default="html", help="html (default), md or tex")
    report.add_argument(
        "-o", "--output", type=Path, help="the file to write (default: sweep-ID.FORMAT in this folder; - for stdout)"
    )


def _verb(
    verbs: argparse._SubParsersAction, name: str, help_text: str, handler: Callable[..., int]
) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    add_server_arguments(parser)
    parser.set_defaults(handler=handler)
    return parser


def _create(args: argparse.Namespace) -> int:
    import yaml

    body: dict[str, Any] = yaml.safe_load(args.file.read()) or {}
    if args.name:
        body["name"] = args.name

    def create(client: Client) -> None:
        settings = {key: value for key, value in body.items() if key not in ("name", "space", "base")}
        sweep = client.create_sweep(
            str(body.get("name", "")), space=body.get("space", {}), base=body.get("base"), **settings
        )
        print(f"sweep {sweep.id} ({sweep.name}): {sweep.status}, {sweep.budget} trials")
        if args.wait:
            print(describe(client.wait_for_sweep(sweep.id)))

    return speak_to_server(args, create)


def _list(args: argparse.Namespace) -> int:
    def show(client: Client) -> None:
        for sweep in client.list_sweeps().data:
            counts = ", ".join(f"{count} {state}" for state, count in sorted(sweep.counts.items())) or "no trial yet"
            print(f"sweep {sweep.id} ({sweep.name}): {sweep.status}; {counts} of {sweep.budget}")

    return speak_to_server(args, show)


def _act(args: argparse.Namespace) -> int:
    def act(client: Client) -> None:
        method = {"show": client.get_sweep, "pause": client.pause_sweep, "resume": client.resume_sweep}
        sweep = method.get(args.verb, client.cancel_sweep)(args.sweep_id)
        print(describe(sweep))

    return speak_to_server(args, act)


def _report(args: argparse.Namespace) -> int:
    def save(client: Client) -> None:
        text = client.sweep_report(args.sweep_id, args.format)
        if args.output == Path("-"):
            sys.stdout.write(text)
            return
        path = args.output or Path(f"sweep-{args.sweep_id}.{args.format}")
        path.write_text(text, encoding="utf-8")
        print(f"sweep {args.sweep_id}'s report: {path}")

    return speak_to_server(args, save)


def describe(sweep: Sweep) -> str:
    lines = [f"sweep {sweep.id} ({sweep.name}): {sweep.status}"]
    for trial in sweep.trials:
        value = "-" if trial.value is None else f"{trial.value:.2f}"
        best = " (best)" if trial.number == sweep.best else ""
        lines.append(f"  #{trial.number} {trial.state:<8} {value:>7}{best}  {json.dumps(trial.params)}")
        if trial.pruned:
            lines.append(f"      {trial.pruned}")
    if sweep.conclusion:
        lines.append(sweep.conclusion["text"])
    return "\n".join(lines)
