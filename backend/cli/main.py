"""``tricklab``: serve the dashboard, run a worker, submit runs; plus the trainer's own commands.

Each command sets ``args.handler(args) -> int``. Handlers import what they need when they run, so
a command pays only for its own imports.
"""

from __future__ import annotations

import argparse
import sys

from backend.cli import find, gc, organise, pull, serve, submit, sweeps, tokens, worker
from backend.cli.common import EXIT_USAGE

# Ours, parsed without the trainer's commands: importing those loads torch (seconds, and memory
# the server and its workers never use).
OWN_COMMANDS = ("serve", "worker", "submit", "token", "find", "runs", "studies", "sweeps", "pull", "gc")


def build_parser(*, trainer_commands: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tricklab",
        description="Launch, watch and compare Bag-of-Tricks runs: serve the dashboard, run "
        "workers, submit runs, train by hand, get the dataset.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (serve, worker, submit, find, tokens, organise, sweeps, pull, gc):
        command.add_command(commands)
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
