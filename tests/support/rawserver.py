"""A raw TCP server on 127.0.0.1 for HTTP servers that misbehave below what an HTTP server library lets
one write: a drip, a hang, a reset, a body longer or shorter than declared, a stream without end.

Well-behaved HTTP (routes, keep-alive, counting requests in flight) is tests/support/loopback.py.
"""
from __future__ import annotations

import socket
import threading
from typing import Callable


class RawServer:
    """TCP server on 127.0.0.1: `handle(conn, request_head, stop)` runs per connection in a thread."""

    def __init__(self, handle: Callable[[socket.socket, bytes, threading.Event], None]) -> None:
        self.handle = handle
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._begin(conn, self.connections - 1)

    def _begin(self, conn: socket.socket, n: int) -> None:
        """Serve connection number `n` (from 0) on a thread of its own."""
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                self.handle(conn, head, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(2)


def stream(conn: socket.socket, head: bytes, chunk: bytes, total: int, stop: threading.Event) -> None:
    """Send `head`, then `chunk` repeatedly up to `total` bytes, until the client goes away."""
    conn.sendall(head)
    sent = 0
    while sent < total and not stop.is_set():
        conn.sendall(chunk[: total - sent])
        sent += len(chunk)
