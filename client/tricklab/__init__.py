"""tricklab's Python client: ``from tricklab import Client``. It needs httpx, httpx-sse and pydantic only."""

from tricklab.client import Client
from tricklab.errors import Busy, Conflict, Incomplete, Invalid, NotFound, Refused, TricklabError, Unreachable

__all__ = ["Busy", "Client", "Conflict", "Incomplete", "Invalid", "NotFound", "Refused", "TricklabError", "Unreachable"]
