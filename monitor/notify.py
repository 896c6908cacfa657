"""systemd notification protocol (sd_notify) over the datagram socket in $NOTIFY_SOCKET.

A few lines of stdlib instead of a dependency: READY=1 once the daemon can work,
WATCHDOG=1 from the healthy main loop, STOPPING=1 on shutdown. Without NOTIFY_SOCKET
(a terminal, tests, other supervisors) every call is a no-op.
"""
from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send one state string; True if a socket was there to take it. Never raises."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_seconds() -> float | None:
    """How often to ping: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None if off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
