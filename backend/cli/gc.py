"""``tricklab gc``: remove the checkpoints of finished runs that nobody keeps, and say how much it freed."""

from __future__ import annotations

import argparse
import sys

from backend.cli.common import EXIT_FAILED, load_settings


def add_command(commands: argparse._SubParsersAction) -> None:
    gc = commands.add_parser(
        "gc",
        help="remove the checkpoints of finished runs nobody keeps",
        description="Remove the checkpoints/ folder of finished runs, except runs finished less than "
        "TRICKLAB_GC_KEEP_DAYS days ago, teachers of queued or running runs, and runs marked to keep. "
        "Configs, metrics, results, TensorBoard events and logs stay.",
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    gc.add_argument(
        "--keep-days",
        type=float,
        default=None,
        metavar="DAYS",
        help="keep the checkpoints of runs finished less than DAYS ago (default $TRICKLAB_GC_KEEP_DAYS or 7)",
    )
    gc.set_defaults(handler=_gc)


def _gc(args: argparse.Namespace) -> int:
    from backend import migrate
    from backend.db import Database
    from backend.services.checkpoint_gc import collect_checkpoints

    overrides = {} if args.keep_days is None else {"gc_keep_days": args.keep_days}
    settings = load_settings(**overrides)
    database = Database(settings.database_url, busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)
    try:
        migrate.upgrade(database)
        with database.session(write=True) as session:
            collection = collect_checkpoints(
                session=session, settings=settings, keep_days=settings.gc_keep_days, dry_run=args.dry_run
            )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        database.dispose()
    verb = "would remove" if collection.dry_run else "removed"
    for run in collection.removed:
        print(f"run {run.run_id} ({run.name}): {verb} {_size(run.checkpoint_bytes)} of checkpoints")
    for run_id, reason in collection.kept.items():
        print(f"run {run_id}: kept ({reason})")
    freed = "would free" if collection.dry_run else "freed"
    print(f"{freed} {_size(collection.freed_bytes)} from {len(collection.removed)} runs", file=sys.stderr)
    return 0


def _size(count: int) -> str:
    """Bytes as the run page writes them: "512 bytes", "3.4 MiB"."""
    value, unit = float(count), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
