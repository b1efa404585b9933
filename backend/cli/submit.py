"""``tricklab submit``: post a run to a running server and print its id; ``--wait`` follows it.

It speaks to the server through the Python client (``tricklab.Client``), as any script would: the
Idempotency-Key, the token and the errors by field come from there.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from backend.cli.common import EXIT_FAILED, EXIT_USAGE, add_server_arguments
from backend.reports.numbers import format_number
from trainer.config_arguments import add_config_arguments

if TYPE_CHECKING:
    from tricklab import Client
    from tricklab.models import Run


def add_command(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit",
        help="queue a run on a running server",
        description="Post a run to a tricklab server and print its id. Relative "
        "paths in the config are read from the server's working folder.",
    )
    add_config_arguments(submit)
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    add_server_arguments(submit)
    submit.add_argument(
        "--wait", action="store_true", help="follow the run with a progress bar; exit non-zero unless it succeeds"
    )
    submit.set_defaults(handler=_submit)


def _submit(args: argparse.Namespace) -> int:
    from trainer.config import ConfigError, apply_overrides, read_config_file
    from trainer.config_arguments import parse_set_arguments
    from tricklab import Client
    from tricklab.errors import Invalid, Refused, TricklabError, Unreachable

    try:
        values = apply_overrides(read_config_file(args.config), parse_set_arguments(args.overrides))
    except ConfigError as exc:
        for field, message in exc.errors.items():
            print(f"error: {field}: {message}", file=sys.stderr)
        return EXIT_USAGE
    with Client(args.server, token=args.token or "") as client:
        server = client.url
        try:
            run = client.create_run(values, priority=args.priority)
        except Unreachable as exc:
            print(f"error: cannot reach {server}: {exc}; is `tricklab serve` running?", file=sys.stderr)
            return EXIT_FAILED
        except Invalid as exc:
            for field, message in exc.fields.items():
                print(f"error: {field.removeprefix('config.')}: {message}", file=sys.stderr)
            return EXIT_USAGE
        except Refused as exc:
            if exc.status == 401:
                print(
                    f"error: {server} wants a token ({exc.detail}): pass --token or set TRICKLAB_TOKEN; "
                    "whoever runs the server makes one with `tricklab token create NAME`",
                    file=sys.stderr,
                )
            else:
                print(f"error: {exc.status} from {server}: {exc.detail}", file=sys.stderr)
            return EXIT_FAILED
        except TricklabError as exc:
            print(f"error: {exc.status} from {server}: {exc.detail}", file=sys.stderr)
            return EXIT_FAILED
        print(run.id)
        print(f"queued run {run.id} ({run.name}); follow it at {server}/api/v1/runs/{run.id}", file=sys.stderr)
        return _follow(client, run) if args.wait else 0


def _follow(client: Client, run: Run) -> int:
    """Follow a run's event stream with a progress bar until it ends."""
    from tqdm import tqdm

    from tricklab.errors import Unreachable

    bar = tqdm(total=run.epochs, unit="epoch", desc=f"run {run.id} {run.status}", file=sys.stderr)
    final = run
    try:
        for event in client.follow_run(run.id):
            if event.epoch is not None:
                bar.update(event.epoch.epoch - bar.n)
                if event.epoch.valid_top1 is not None:
                    bar.set_postfix(valid_top1=f"{event.epoch.valid_top1:.2f}")
            elif event.run is not None:
                final = event.run
                bar.set_description(f"run {final.id} {final.status} (attempt {final.attempt})")
    except Unreachable as exc:
        bar.close()
        print(f"error: lost the server: {exc}", file=sys.stderr)
        return EXIT_FAILED
    bar.close()
    if final.status == "succeeded" and final.test_top1 is not None and final.test_top5 is not None:
        # The pages' words and numbers: the test figures are the kept checkpoint's, the peak the report's.
        print(
            f"run {final.id} succeeded: test top-1 {format_number(final.test_top1)} "
            f"top-5 {format_number(final.test_top5)} (checkpoint epoch {final.checkpoint_epoch}); "
            f"peak valid top-1 {format_number(final.peak_valid_top1)} (peak epoch {final.peak_epoch})",
            file=sys.stderr,
        )
        return 0
    print(f"run {final.id} {final.status}" + (f": {final.error}" if final.error else ""), file=sys.stderr)
    return EXIT_FAILED
