"""``tricklab find FILTER``: the runs a running server holds that match the filter language, as the
runs list shows them (sorted by any column; with ``--group``, the seeds of a configuration as one row
with mean ± std). It speaks through the Python client, as ``tricklab submit`` does."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from backend.cli.common import add_server_arguments, speak_to_server
from backend.reports.numbers import format_number

if TYPE_CHECKING:
    from tricklab import Client


def add_command(commands: argparse._SubParsersAction) -> None:
    find = commands.add_parser(
        "find",
        help="list the runs that match a filter",
        description="Print the runs that match FILTER, one per line (id, status, peak valid top-1, test "
        "top-1, name). FILTER is the runs list's language, e.g. "
        "'config.tricks.mixup_alpha > 0 and peak.valid_top1 >= 80' (README: Finding runs).",
    )
    find.add_argument("filter", nargs="?", default="", help="a filter; all runs without one")
    find.add_argument("--sort", default="-id", help="a column, descending with a leading - (default -id)")
    find.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    find.add_argument("--group", action="store_true", help="one row per configuration: its seeds' mean ± std")
    find.add_argument(
        "--archived",
        choices=("false", "true", "any"),
        default="false",
        help="false: leave archived runs out (default); true: only archived runs; any: both",
    )
    add_server_arguments(find)
    find.set_defaults(handler=_find)


def _spread(mean: float | None, std: float | None) -> str:
    return format_number(mean) if std is None else f"{format_number(mean)} ± {format_number(std)}"


def _find(args: argparse.Namespace) -> int:
    archived = {"false": False, "true": True, "any": None}[args.archived]
    chosen = {"filter": args.filter or None, "sort": args.sort, "archived": archived, "limit": args.limit}

    def print_groups(client: Client) -> None:
        groups = client.list_run_groups(**chosen)
        for group in groups.data:
            peak, test = group.peak_valid_top1, group.test_top1
            print(
                f"{group.count} runs\t{_spread(peak.mean, peak.std)}\t{_spread(test.mean, test.std)}\t"
                f"{group.name}\t{','.join(map(str, group.run_ids))}"
            )
        print(f"{groups.count} configurations", file=sys.stderr)

    def print_runs(client: Client) -> None:
        page = client.list_runs(**chosen)
        for run in page.data:
            print(
                f"{run.id}\t{run.status}\t{format_number(run.peak_valid_top1)}\t{format_number(run.test_top1)}\t"
                f"{run.name}"
            )
        print(f"{len(page.data)} of {page.count} runs", file=sys.stderr)

    return speak_to_server(args, print_groups if args.group else print_runs)
