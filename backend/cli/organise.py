"""``tricklab runs`` and ``tricklab studies``: rename, notes, tags and archive on a running server.

They speak to the server through the Python client, as ``tricklab submit`` does: the token, the
retries and the errors by field come from there. RUN_IDS is one id or several separated by commas.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from backend.cli.common import add_server_arguments, speak_to_server

if TYPE_CHECKING:
    from tricklab import Client
    from tricklab.models import Run


def add_command(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser(
        "runs", help="rename, note, tag and archive runs", description="Change what a run is called and says."
    )
    verbs = runs.add_subparsers(dest="verb", metavar="VERB", required=True)
    rename = _verb(verbs, "rename", "give runs a new name", _rename)
    rename.add_argument("name", help="the new name (1 to 200 characters)")
    note = _verb(verbs, "note", "set the runs' notes (Markdown); an empty text clears them", _note)
    source = note.add_mutually_exclusive_group(required=True)
    source.add_argument("text", nargs="?", help="the notes")
    source.add_argument(
        "--file", type=argparse.FileType("r", encoding="utf-8"), help="read the notes from a file (- for stdin)"
    )
    for verb, help_text in (("tag", "add tags to runs"), ("untag", "remove tags from runs")):
        tag = _verb(verbs, verb, help_text, _tag)
        tag.add_argument("tags", nargs="+", metavar="TAG", help="a-z, 0-9, '.', '_', '-'; up to 32 characters")
    _verb(verbs, "archive", "hide finished runs from the default list (kept, with their files)", _archive)
    _verb(verbs, "restore", "bring archived runs back to the list", _archive)

    studies = commands.add_parser("studies", help="rename or delete studies", description="Rename or delete a study.")
    verbs = studies.add_subparsers(dest="verb", metavar="VERB", required=True)
    rename = _study_verb(verbs, "rename", "give a study a new name", _rename_study)
    rename.add_argument("name", help="the new name (1 to 200 characters)")
    delete = _study_verb(
        verbs, "delete", "delete a study with the runs it created, their files included", _delete_study
    )
    delete.add_argument("--keep-runs", action="store_true", help="keep its runs (in no study); delete the study only")


def _run_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected run ids separated by commas, e.g. 1,2,3: not {text!r}") from None
    if not all(run_id > 0 for run_id in ids):
        raise argparse.ArgumentTypeError(f"run ids are positive: not {text!r}")
    return ids


def _verb(
    verbs: argparse._SubParsersAction, name: str, help_text: str, handler: Callable[..., int]
) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    parser.add_argument("run_ids", type=_run_ids, metavar="RUN_IDS", help="a run id, or several: 1,2,3")
    add_server_arguments(parser)
    parser.set_defaults(handler=handler)
    return parser


def _study_verb(
    verbs: argparse._SubParsersAction, name: str, help_text: str, handler: Callable[..., int]
) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    parser.add_argument("study_id", type=int, metavar="STUDY_ID")
    add_server_arguments(parser)
    parser.set_defaults(handler=handler)
    return parser


def _rename(args: argparse.Namespace) -> int:
    return _change_runs(args, name=args.name)


def _note(args: argparse.Namespace) -> int:
    return _change_runs(args, notes=args.file.read() if args.file else args.text)


def _tag(args: argparse.Namespace) -> int:
    return _change_runs(args, **{"add_tags" if args.verb == "tag" else "remove_tags": args.tags})


def _archive(args: argparse.Namespace) -> int:
    return _change_runs(args, archived=args.verb == "archive")


def _change_runs(args: argparse.Namespace, **changes: Any) -> int:
    def change(client: Client) -> None:
        changed = client.update_runs(args.run_ids, **changes).data
        for run in changed:
            print(_describe(run))

    return speak_to_server(args, change)


def _describe(run: Run) -> str:
    tags = ", ".join(run.tags) if run.tags else "no tags"
    archived = "; archived" if run.archived_at else ""
    return f"run {run.id} ({run.name}): {tags}{archived}"


def _rename_study(args: argparse.Namespace) -> int:
    def rename(client: Client) -> None:
        study = client.update_study(args.study_id, name=args.name)
        print(f"study {study.id} is now {study.name!r}")

    return speak_to_server(args, rename)


def _delete_study(args: argparse.Namespace) -> int:
    def delete(client: Client) -> None:
        study = client.get_study(args.study_id)
        client.delete_study(args.study_id, keep_runs=args.keep_runs)
        kept = "its runs kept, in no study" if args.keep_runs else "with the runs it created"
        print(f"deleted study {study.id} ({study.name}), {kept}")

    return speak_to_server(args, delete)
