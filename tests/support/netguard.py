"""Keeps the test suite on this machine: any connection, datagram or name lookup that would send
a packet beyond loopback is refused before it is made, and recorded.

It is an audit hook (sys.addaudithook), so it sees what every library does, in every thread:
the socket module raises its audit events before the system call (connect, sendto, sendmsg)
and before asking the resolver (getaddrinfo, gethostbyname, gethostbyaddr). The hook raises
NetworkRefused there, so nothing leaves, and records the violation, because the code under
test may well swallow the exception (the fetcher turns it into "connect_error"); conftest
fails the test during which a violation was recorded.

Allowed: 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104, Unix sockets, and lookups that need no DNS
server: IP literals, `localhost`, and this machine's own name (smtplib resolves it for its EHLO
greeting), which /etc/hosts answers. Not `*.localhost`: the C library sends those to the
configured name server like any other name.

Audit hooks cannot be removed, so install() runs once per interpreter: in the pytest process
from conftest, and in every child Python (`python -m monitor`, multiprocessing's spawn and
forkserver) from netguard_site/sitecustomize.py, which conftest puts on PYTHONPATH. Violations
go to the file named by LOG_ENV when it is set, so children's violations reach the pytest
process; forked children inherit the hook and the file.
"""
from __future__ import annotations

import os
import re
import socket
import sys

LOG_ENV = "TESTS_NETGUARD_LOG"  # not MONITOR_*: tests scrub those from the environments they build

_CONNECTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_LOOKUPS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"})
_EVENTS = _CONNECTS | _LOOKUPS
_IPV4_SPELLING = re.compile(r"[0-9a-fA-FxX.]+")  # what inet_aton reads: 127.1, 0x7f.1, 2130706433...


class NetworkRefused(PermissionError):
    """Raised instead of a connection or lookup that would leave the machine.

    An OSError, so code under test handles it like any refused connection instead of
    breaking somewhere unrelated; the recorded violation is what fails the test.
    """


_installed = False
_own_name = ""
_log: str | None = None
_pending: list[str] = []  # violations recorded while no log file is set
_log_offset = 0  # how much of the log take() has already returned


def install(log: str | None = None) -> None:
    """Add the audit hook (once per interpreter) and, if given, the file violations go to."""
    global _installed, _own_name
    if log is not None:
        set_log(log)
    if not _installed:
        _own_name = socket.gethostname().lower()
        sys.addaudithook(_hook)
        _installed = True


def set_log(path: str) -> None:
    """Record violations in `path` (appended to, one line each) from now on."""
    global _log, _log_offset
    _log = path
    _log_offset = os.path.getsize(path) if os.path.exists(path) else 0


def take() -> list[str]:
    """Violations recorded since the last call, by this process and by its children."""
    global _log_offset
    found, _pending[:] = list(_pending), []
    if _log is not None and os.path.exists(_log):
        with open(_log, "rb") as f:
            f.seek(_log_offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a child may be writing its line right now
        _log_offset += len(complete)
        found += complete.decode("utf-8", "replace").splitlines()
    return found


def _hook(event: str, args: tuple) -> None:
    if event not in _EVENTS:  # every audited event in the process passes here: keep this cheap
        return
    problem = _connect_problem(*args) if event in _CONNECTS else _lookup_problem(event, args[0])
    if problem is not None:
        _record(f"pid {os.getpid()}: {event} {problem}")
        raise NetworkRefused(f"tests stay on this machine: {event} {problem} refused")


def _record(line: str) -> None:
    if _log is None:
        _pending.append(line)
        return
    try:
        fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line.replace("\n", " ") + "\n").encode())  # one write: lines never interleave
        finally:
            os.close(fd)
    except OSError:  # a full or vanished disk must not hide the violation
        _pending.append(line)
        print(f"netguard: {line}", file=sys.stderr)


def _connect_problem(sock: socket.socket, address: object) -> str | None:
    if address is None:  # sendmsg on a connected socket: its connect was checked
        return None
    family = getattr(sock, "family", None)
    if family == socket.AF_UNIX:
        return None
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and address:
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if isinstance(host, str) and (_is_loopback(host) or _is_local_name(host)):
            return None
    return f"to {address!r} (family {family!r})"


def _lookup_problem(event: str, host: object) -> str | None:
    if host is None or host in ("", b""):  # a passive or local lookup: no resolver involved
        return None
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return f"of {host!r}"
    if _is_local_name(host):
        return None
    if event == "socket.gethostbyaddr":  # a reverse lookup asks DNS about any address but loopback
        return None if _is_loopback(host) else f"of {host!r}"
    return None if _packed(host) is not None else f"of {host!r}"


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or (bool(name) and name == _own_name)


def _packed(host: str) -> bytes | None:
    """The address an IP literal stands for, read as the C library reads it; None for a name."""
    try:
        return socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except (OSError, ValueError):
        pass
    if _IPV4_SPELLING.fullmatch(host):
        try:
            return socket.inet_aton(host)
        except (OSError, ValueError):
            return None
    return None


def _is_loopback(host: str) -> bool:
    packed = _packed(host)
    if packed is None:
        return False
    if len(packed) == 4:
        return packed[0] == 127
    return packed == bytes(15) + b"\x01" or (packed[:12] == bytes(10) + b"\xff\xff" and packed[12] == 127)
