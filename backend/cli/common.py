"""What the commands share: their exit codes, the settings they read, their log lines."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.settings import Settings
    from tricklab import Client

EXIT_FAILED, EXIT_USAGE = 1, 2


def load_settings(**overrides: Any) -> Settings:
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


def log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """--server and --token, for the commands that speak to a running server through the client."""
    from tricklab.client import DEFAULT_URL

    parser.add_argument(
        "--server",
        default=os.environ.get("TRICKLAB_SERVER", DEFAULT_URL),
        help=f"server URL (default $TRICKLAB_SERVER or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TRICKLAB_TOKEN") or None,
        help="the API token, when the server needs one (default $TRICKLAB_TOKEN)",
    )


def speak_to_server(args: argparse.Namespace, action: Callable[[Client], None]) -> int:
    """Run ``action`` with a client of ``--server``; each error as one line, naming the field at fault."""
    from tricklab import Client
    from tricklab.errors import Invalid, TricklabError, Unreachable

    with Client(args.server, token=args.token or "") as client:
        try:
            action(client)
        except Unreachable as exc:
            print(f"error: cannot reach {client.url}: {exc}; is `tricklab serve` running?", file=sys.stderr)
            return EXIT_FAILED
        except Invalid as exc:
            for field, message in exc.fields.items():
                print(f"error: {field}: {message}", file=sys.stderr)
            return EXIT_USAGE
        except TricklabError as exc:
            print(f"error: {exc.status} from {client.url}: {exc.detail}", file=sys.stderr)
            return EXIT_FAILED
    return 0
