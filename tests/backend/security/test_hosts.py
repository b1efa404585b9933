"""Allowed hosts: loopback names on a loopback bind, the machine's names beyond it, any address on a
wildcard bind; every other name (a DNS-rebinding page's) is refused."""

import pytest

from backend.hosts import AllowedHosts, bare_name, host_name, is_loopback, machine_names


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8000", "::1"),
        ("gpu-box.lab.:80", "gpu-box.lab"),
        ("[::1", None),
        ("[evil.example]:80", None),
        ("::1", None),  # an IPv6 address needs its brackets in Host
        ("host:80:80", None),
        ("host:８０", None),  # a port of Unicode digits
        ("host:123456", None),
        ("evil.example/path", None),
        ("", None),
    ],
)
def test_host_header_names(value, name):
    assert host_name(value) == name


def test_bare_names_have_no_port():
    assert [bare_name(value) for value in ("gpu.lab", "::1", "[::1]", "gpu.lab:80", "http://gpu.lab")] == [
        "gpu.lab",
        "::1",
        "::1",
        None,
        None,
    ]


def test_loopback_binds():
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "10.1.2.3", "gpu-box"))


def test_a_loopback_server_answers_its_loopback_names_only():
    allowed = AllowedHosts.for_bind("127.0.0.1")
    for host in ("127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:8000"):
        assert allowed.allows(host), host
    for foreign in ("evil.example:8000", "10.1.2.3:8000", "127.0.0.1.nip.io:8000", None, "", "[::1"):
        assert not allowed.allows(foreign), foreign
    assert AllowedHosts.for_bind("127.0.0.1", ["proxy.lab"]).allows("proxy.lab:443")


def test_a_wildcard_bind_answers_the_machine_names_and_any_address():
    allowed = AllowedHosts.for_bind("0.0.0.0")
    hostname = sorted(machine_names())[0]
    for host in (f"{hostname}:8000", "10.1.2.3:8000", "[fe80::1]:8000", "localhost:8000", "127.0.0.1"):
        assert allowed.allows(host), host
    assert not allowed.allows("evil.example:8000")


def test_a_bind_to_one_address_answers_it_and_the_machine_names():
    allowed = AllowedHosts.for_bind("10.1.2.3", ["gpu.lab"])
    hostname = sorted(machine_names())[0]
    for host in ("10.1.2.3:8000", f"{hostname}:8000", "gpu.lab"):
        assert allowed.allows(host), host
    for host in ("10.9.9.9:8000", "localhost:8000", "evil.example"):
        assert not allowed.allows(host), host
