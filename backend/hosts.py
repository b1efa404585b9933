"""Which ``Host`` headers the server answers; any other gets 400.

A DNS-rebinding page points a name of its own at this machine, so the victim's browser sends that
name in ``Host``: refusing unknown names closes the attack. An address in ``Host`` cannot come from
rebinding (the page's origin is then that address itself), so a server bound to every interface
answers any address, and names only from its list.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PORT = re.compile(r"[0-9]{1,5}")


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_name(value: str) -> str | None:
    """The name in a ``Host`` value: lower case, without its port, IPv6 brackets or a final dot;
    None when the value is not a host (with an optional port)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and _PORT.fullmatch(port[1:]))):
            return None
        return name if isinstance(_address(name), ipaddress.IPv6Address) else None
    name, colon, port = value.partition(":")
    if colon and not _PORT.fullmatch(port):
        return None
    name = name.removesuffix(".")
    return name if _NAME.fullmatch(name) else None


def bare_name(value: str) -> str | None:
    """A host name or address alone (no port), as ``host_name`` writes it; None for anything else."""
    address = _address(value.strip().strip("[]"))
    if isinstance(address, ipaddress.IPv6Address):
        return str(address)
    name = host_name(value)
    return name if name is not None and ":" not in value else None


def is_loopback(bind_host: str) -> bool:
    name = bind_host.strip("[]").lower()
    address = _address(name)
    return name == "localhost" or (address is not None and address.is_loopback)


def machine_names() -> set[str]:
    """This machine's host name, and its full name when the resolver gives one that extends it
    (``getfqdn`` answers "localhost" where /etc/hosts lists the name on a loopback line)."""
    name = socket.gethostname().lower()
    full = socket.getfqdn().lower()
    return {name, full} if full.partition(".")[0] == name.partition(".")[0] else {name}


@dataclass(frozen=True)
class AllowedHosts:
    names: frozenset[str]
    any_address: bool  # bound to every interface: any address in Host reaches this machine

    @classmethod
    def for_bind(cls, bind_host: str, extra: Iterable[str] = ()) -> AllowedHosts:
        """Loopback names on a loopback bind; otherwise the bind address and this machine's names
        (and, bound to every interface, its loopback names and any address); plus ``extra``."""
        bind = bind_host.strip("[]").lower()
        names = set(extra)
        if is_loopback(bind):
            names |= LOOPBACK_NAMES | {bind}
        elif bind in WILDCARD_BINDS:
            names |= LOOPBACK_NAMES | machine_names()
        else:
            names |= {bind} | machine_names()
        return cls(frozenset(names), any_address=bind in WILDCARD_BINDS)

    def allows(self, host: str | None) -> bool:
        name = host_name(host) if host else None
        if name is None:
            return False
        return name in self.names or (self.any_address and _address(name) is not None)
