"""tricklab's Python client: ``from tricklab import Client``. It needs httpx, httpx-sse and pydantic only."""

from tricklab.client import Client
from tricklab.errors import Busy, Conflict, Invalid, NotFound, Refused, TricklabError, Unreachable

__all__ = ["Busy", "Client", "Conflict", "Invalid", "NotFound", "Refused", "TricklabError", "Unreachable"]
