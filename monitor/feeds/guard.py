"""Address guard: which URLs and network addresses a feed fetch may reach.

A feed URL comes from whoever can add a feed or answer a redirect, so without a guard
the poller would fetch http://169.254.169.254/ or http://localhost:6379/ on their behalf
(server-side request forgery). These pure functions decide; `fetch` calls them on every
redirect hop before connecting, and again on every address DNS returns, right before it
connects to that very address.

Hosts are read the way the operating system reads them: `inet_aton` accepts `127.1`,
`0x7f.1`, `0177.0.0.1` and `2130706433` as 127.0.0.1, and so does `getaddrinfo`, so a
guard that only knew dotted quads would wave them through.

IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
`::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address
inside; Teredo (2001::/32) sits in the IETF protocol block and is refused outright.
Outside 2000::/3 (global unicast) nothing IPv6 is public.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from monitor.errors import FailureReason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Refusal:
    """Why a URL or address is refused: `code` is a short error code, `detail` is for people."""

    code: FailureReason  # BAD_SCHEME, BAD_URL or BLOCKED_ADDRESS
    detail: str


# IANA special-purpose registries, with the name used in refusal details. Kept here rather
# than trusting ipaddress.is_global, whose answers differ between Python releases and
# which calls multicast, NAT64 and 6to4 addresses global.
_V4_SPECIAL = [
    (ipaddress.ip_network(net), name)
    for net, name in [
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes 255.255.255.255
    ]
]
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_V6_SPECIAL = [
    (ipaddress.ip_network(net), name)
    for net, name in [
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "reserved"),
        ("100::/64", "reserved"),
        ("2001::/32", "teredo"),
        ("2001::/23", "reserved"),  # IETF protocol assignments
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "reserved"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    ]
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")

# What inet_aton could take for an IPv4 address: digits, hex, dots. Anything else is a
# name (inet_aton would also accept "127.0.0.1 junk", which no resolver does).
_V4_SPELLING = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


def check_url(url: str) -> Refusal | None:
    """Refuse what is not an http(s) URL with a host; None when it may be fetched.

    Syntax only: the address check needs the resolved address (`check_address`).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        return Refusal(FailureReason.BAD_URL, f"unparseable URL {url!r}: {exc}")
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme or "(none)"
        return Refusal(FailureReason.BAD_SCHEME, f"scheme {shown} is not fetched, only http and https")
    if not parts.hostname:
        return Refusal(FailureReason.BAD_URL, f"no host in URL {url!r}")
    if port == 0:
        return Refusal(FailureReason.BAD_URL, f"port 0 in URL {url!r}")
    return None


def url_host_port(url: str) -> tuple[str, int]:
    """The URL's host (lower case, no brackets) and port, the scheme's default if none.

    Assumes `check_url` passed.
    """
    parts = urlsplit(url.strip())
    return parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme.lower()]


def parse_host(host: str) -> IPAddress | None:
    """The address a literal host stands for, read as the OS reads it; None for a name."""
    host = unquote(host).strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if host.endswith("."):
        return None  # "127.0.0.1." is a name to the resolver, which will not find it
    if _V4_SPELLING.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_problem(address: IPAddress) -> str | None:
    """Name the special-purpose range `address` is in ("loopback", "private"...), None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            problem = address_problem(embedded)
            if problem is None and address in _V4_COMPATIBLE:
                problem = "deprecated"  # IPv4-compatible addresses are not routed any more
            return f"{problem} (embedded {embedded})" if problem else None
        for net, name in _V6_SPECIAL:
            if address in net:
                return name
        return None if address in _V6_GLOBAL_UNICAST else "reserved"
    for net, name in _V4_SPECIAL:
        if address in net:
            return name
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries traffic for, if it is one of the embeddings."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _V4_COMPATIBLE and int(address) > 1:  # "::" and "::1" are themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


AllowList = frozenset[tuple[str, int | None]]


def _host_key(host: str) -> str:
    """One spelling per host: lower case, no trailing dot, addresses in canonical form."""
    host = unquote(host).strip("[]").lower().rstrip(".")
    address = parse_host(host)
    return str(address) if address is not None else host


def parse_allow_hosts(entries: Iterable[str]) -> AllowList:
    """Parse `allow_hosts` entries: "host", "host:port", "[v6]" or "[v6]:port".

    Raises ValueError naming the bad entry, for the configuration layer to report.
    """
    allowed: set[tuple[str, int | None]] = set()
    for entry in entries:
        text = entry.strip()
        port: str | None = None
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"allow_hosts entry {entry!r}: write IPv6 as [addr] or [addr]:port")
            port = rest[1:] if rest else None
            if not isinstance(parse_host(host), ipaddress.IPv6Address):
                raise ValueError(f"allow_hosts entry {entry!r}: [{host}] is not an IPv6 address")
        elif text.count(":") > 1:
            host = text  # a bare IPv6 address, no port
        else:
            host, sep, port_text = text.partition(":")
            port = port_text if sep else None
        if not host or (":" in host and parse_host(host) is None):
            raise ValueError(f"allow_hosts entry {entry!r}: no valid host")
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"allow_hosts entry {entry!r}: port must be 1-65535")
        allowed.add((_host_key(host), int(port) if port is not None else None))
    return frozenset(allowed)


def host_allowed(host: str, port: int, allowed: AllowList) -> bool:
    """True if `allow_hosts` names this URL host, with no port or with this port."""
    key = _host_key(host)
    return (key, None) in allowed or (key, port) in allowed


def check_address(
    host: str,
    port: int,
    address: IPAddress,
    *,
    allow_private: bool = False,
    allowed: AllowList = frozenset(),
) -> Refusal | None:
    """Refuse connecting to `address` for the URL host `host`; None when the connection may go ahead."""
    if allow_private or host_allowed(host, port, allowed):
        return None
    problem = address_problem(address)
    if problem is None:
        return None
    shown = _host_key(host)
    return Refusal(FailureReason.BLOCKED_ADDRESS, f"refused address {address} ({problem}) for host {shown}")


def check_literal_host(
    host: str, port: int, *, allow_private: bool = False, allowed: AllowList = frozenset()
) -> Refusal | None:
    """Refuse a host written as an address before anything is sent; names wait for DNS."""
    address = parse_host(host)
    if address is None:
        return None
    return check_address(host, port, address, allow_private=allow_private, allowed=allowed)
