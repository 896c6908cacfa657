"""Mail servers on 127.0.0.1 for the transport and outbox tests: aiosmtpd, and one that never speaks."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support.smtpserver import SILENCE, SmtpServer


@pytest.fixture
def smtp_server():
    servers: list[SmtpServer] = []

    def start(**smtp_parameters) -> SmtpServer:
        server = SmtpServer(**smtp_parameters)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def silent_server():
    """Accepts TCP connections and says nothing for SILENCE seconds, then hangs up.

    The SMTP client must give up on the greeting long before: a client without a greeting
    timeout waits the whole SILENCE and then sees a closed connection, not a timeout.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    held: list[tuple[float, socket.socket]] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append((time.monotonic(), conn))
            except OSError:
                pass
            for accepted, conn in held:
                if time.monotonic() - accepted > SILENCE:
                    conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for _, c in held:
        c.close()
    sock.close()
