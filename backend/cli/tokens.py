"""``tricklab token``: create, list and revoke API tokens in the server's database."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from backend.cli.common import EXIT_FAILED, load_settings


def add_command(commands: argparse._SubParsersAction) -> None:
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

    settings = load_settings()
    database = Database(settings.database_url, busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)
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
