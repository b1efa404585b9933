"""``tricklab pull RUN_ID --out DIR``: a run's folder fetched from a server, through the Python client.

Each file is resumed where an earlier pull left a part, and checked against the size the server
lists; files already in place with that size are kept. ``--zip`` fetches one zip without checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli.common import EXIT_FAILED, add_server_arguments


def add_command(commands: argparse._SubParsersAction) -> None:
    pull = commands.add_parser(
        "pull",
        help="download a run's files from a server",
        description="Download every file of a run's folder (config, metrics, result, checkpoints, TensorBoard "
        "events, logs) into DIR, resuming partial files and checking each size.",
    )
    pull.add_argument("run_id", type=int, metavar="RUN_ID")
    pull.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the files into")
    pull.add_argument("--zip", action="store_true", help="one run-ID.zip of the folder, without its checkpoints")
    add_server_arguments(pull)
    pull.set_defaults(handler=_pull)


def _pull(args: argparse.Namespace) -> int:
    from tricklab import Client
    from tricklab.errors import TricklabError, Unreachable

    with Client(args.server, token=args.token or "") as client:
        try:
            written = client.pull(args.run_id, args.out, zip=args.zip)
        except Unreachable as exc:
            print(f"error: cannot reach {client.url}: {exc}; is `tricklab serve` running?", file=sys.stderr)
            return EXIT_FAILED
        except TricklabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:
            print(f"error: cannot write into {args.out}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    total = sum(path.stat().st_size for path in written)
    for path in written:
        print(path)
    print(f"run {args.run_id}: {len(written)} files, {total:,} bytes in {args.out}", file=sys.stderr)
    return 0
