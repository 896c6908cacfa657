"""The address guard, from tables: every way of writing a refused address, and the exceptions."""
from __future__ import annotations

import ipaddress

import pytest

from monitor.feeds import guard

REFUSED_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("0177.0.0.1", "loopback"),  # octal, as inet_aton reads it
    ("2130706433", "loopback"),  # one 32-bit number
    ("0x7f.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("[::1]", "loopback"),
    ("::1", "loopback"),
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
    ("::ffff:7f00:1", "loopback"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("64:ff9b::127.0.0.1", "loopback"),  # NAT64
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
    ("2001:0:4136:e378:8000:63bf:3f57:fefe", "teredo"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("::", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("0xc0.0xa8.0.1", "private"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("[fe80::1%25eth0]", "link-local"),
    ("fe80::1", "link-local"),
    ("fd00::1", "private"),
    ("fec0::1", "site-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("100::1", "reserved"),
    ("4000::1", "reserved"),  # outside global unicast
]

PUBLIC_HOSTS = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700::1", "[2a00:1450:4001::1]",
                "::ffff:93.184.216.34", "2002:5db8:d822::1", "64:ff9b::8.8.8.8", "172.32.0.1", "100.128.0.1"]


@pytest.mark.parametrize(("host", "problem"), REFUSED_HOSTS)
def test_refused_spellings(host: str, problem: str) -> None:
    address = guard.parse_host(host)
    assert address is not None, host
    assert (guard.address_problem(address) or "").startswith(problem)
    refusal = guard.check_literal_host(host, 80)
    assert refusal is not None and refusal.code == "blocked_address"
    assert f"({problem}" in refusal.detail


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_addresses_pass(host: str) -> None:
    address = guard.parse_host(host)
    assert address is not None
    assert guard.address_problem(address) is None
    assert guard.check_literal_host(host, 443) is None


@pytest.mark.parametrize("host", ["example.org", "localhost", "127.0.0.1.", "1.2.3.4.5", "08.0.0.1",
                                  "deadbeef", "127.0.0.1 x"])
def test_names_are_not_addresses(host: str) -> None:
    """Names wait for DNS; the resolved addresses are checked then."""
    assert guard.parse_host(host) is None


def test_odd_spellings_read_as_the_os_reads_them() -> None:
    assert guard.parse_host("0177.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert guard.parse_host("1.2.3") == ipaddress.ip_address("1.2.0.3")
    assert guard.parse_host("0xdeadbeef") == ipaddress.ip_address("222.173.190.239")


def test_refusal_detail_names_address_and_host() -> None:
    refusal = guard.check_address("Example.ORG", 80, ipaddress.ip_address("127.0.0.1"))
    detail = "refused address 127.0.0.1 (loopback) for host example.org"
    assert refusal == guard.Refusal("blocked_address", detail)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "bad_scheme"),
        ("javascript:alert(1)", "bad_scheme"),
        ("ftp://example.org/feed", "bad_scheme"),
        ("gopher://example.org/", "bad_scheme"),
        ("data:text/plain,hi", "bad_scheme"),
        ("//example.org/feed", "bad_scheme"),
        ("example.org/feed", "bad_scheme"),
        ("http:///feed", "bad_url"),
        ("http://example.org:99999/", "bad_url"),
        ("http://example.org:http/", "bad_url"),
        ("http://example.org:0/", "bad_url"),
        ("http://[::1/", "bad_url"),
    ],
)
def test_check_url_refuses(url: str, code: str) -> None:
    refusal = guard.check_url(url)
    assert refusal is not None and refusal.code == code


@pytest.mark.parametrize("url", ["http://example.org/feed", "HTTPS://Example.org:8443/a?b=c",
                                 "http://[::1]:8080/", "http://127.0.0.1/"])
def test_check_url_accepts_http_urls(url: str) -> None:
    """check_url is syntax only: addresses are judged separately."""
    assert guard.check_url(url) is None


def test_url_host_port_defaults() -> None:
    assert guard.url_host_port("http://Example.org/x") == ("example.org", 80)
    assert guard.url_host_port("https://example.org/x") == ("example.org", 443)
    assert guard.url_host_port("http://[::1]:8080/") == ("::1", 8080)


LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize(
    ("entries", "host", "port", "allowed"),
    [
        (["intranet.local"], "intranet.local", 8080, True),  # no port: any port
        (["intranet.local"], "INTRANET.local.", 80, True),  # case and trailing dot do not matter
        (["intranet.local:8080"], "intranet.local", 8080, True),
        (["intranet.local:8080"], "intranet.local", 8081, False),  # with a port, only that port
        (["intranet.local:8080"], "other.local", 8080, False),
        (["127.0.0.1:8080"], "127.0.0.1", 8080, True),
        (["127.0.0.1:8080"], "127.1", 8080, True),  # same address, other spelling
        (["127.0.0.1:8080"], "localhost", 8080, False),  # matching is on the URL's host, not its address
        (["[::1]:8080"], "::1", 8080, True),
        (["[::1]:8080"], "::1", 8081, False),
        (["[::1]"], "::1", 9999, True),
        (["::1"], "0:0::1", 9999, True),
    ],
)
def test_allow_hosts(entries: list[str], host: str, port: int, allowed: bool) -> None:
    allow = guard.parse_allow_hosts(entries)
    refusal = guard.check_address(host, port, LOOPBACK, allowed=allow)
    assert (refusal is None) is allowed
    assert guard.host_allowed(host, port, allow) is allowed


def test_allow_private_addresses_switches_off_the_address_check_only() -> None:
    assert guard.check_address("x", 80, LOOPBACK, allow_private=True) is None
    assert guard.check_literal_host("10.0.0.1", 80, allow_private=True) is None
    assert guard.check_url("file:///etc/passwd") is not None  # schemes stay refused


@pytest.mark.parametrize("entry", ["", "host:", "host:0", "host:65536", "host:http", "[::1", "[::1]x",
                                   "[nope]:80", ":8080"])
def test_bad_allow_hosts_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="allow_hosts entry"):
        guard.parse_allow_hosts([entry])
