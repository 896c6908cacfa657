"""The connections under the fetcher's pool (monitor.feeds.netstream), against real sockets on
127.0.0.1: bytes both ways, and httpcore's exceptions for a silent, closed, reset, refused or
non-TLS peer, which the fetcher turns into its error codes."""
from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator

import httpcore
import pytest

from monitor.feeds.netstream import AsyncioBackend

Serve = Callable[[socket.socket], None]


@pytest.fixture
def peer() -> Iterator[Callable[[Serve], int]]:
    """Start a one-connection server on 127.0.0.1 that runs `serve(conn)`; returns its port."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(serve: Serve) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(10)
        listeners.append(listener)

        def run() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                serve(conn)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return listener.getsockname()[1]

    yield start
    for thread in threads:
        thread.join(timeout=10)
    for listener in listeners:
        listener.close()


def connect(port: int) -> httpcore.AsyncNetworkStream:
    return AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)  # type: ignore[return-value]


def test_bytes_go_both_ways_and_closing_ends_the_connection(peer: Callable[[Serve], int]) -> None:
    seen: list[bytes] = []
    finished = threading.Event()

    def echo_upper(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100).upper())
        seen.append(conn.recv(100))  # b"" once the client has closed
        finished.set()

    port = peer(echo_upper)

    async def client() -> tuple[bytes, object, object]:
        stream = await connect(port)
        await stream.write(b"hello", timeout=5)
        got = await stream.read(100, timeout=5)
        facts = stream.get_extra_info("server_addr"), stream.get_extra_info("is_readable")
        await stream.aclose()
        await stream.aclose()  # twice is harmless
        return got, *facts

    got, server_addr, readable = asyncio.run(client())
    assert got == b"HELLO"
    assert server_addr == ("127.0.0.1", port)
    assert readable is False  # idle and open: fit for another request
    assert finished.wait(10) and seen == [b""]


def test_a_silent_server_is_a_read_timeout(peer: Callable[[Serve], int]) -> None:
    done = threading.Event()
    port = peer(lambda conn: done.wait(10))

    async def client() -> None:
        stream = await connect(port)
        try:
            await stream.read(100, timeout=0.2)
        finally:
            await stream.aclose()
            done.set()

    with pytest.raises(httpcore.ReadTimeout):
        asyncio.run(client())


def test_a_closed_connection_reads_empty_and_is_not_reused(peer: Callable[[Serve], int]) -> None:
    port = peer(lambda conn: None)  # accepts, then closes

    async def client() -> tuple[bool, bytes]:
        stream = await connect(port)
        for _ in range(500):  # until the close has arrived
            if stream.get_extra_info("is_readable"):
                break
            await asyncio.sleep(0.01)
        readable = stream.get_extra_info("is_readable")
        data = await stream.read(100, timeout=5)
        await stream.aclose()
        return readable, data

    assert asyncio.run(client()) == (True, b"")


def test_a_reset_is_a_read_error(peer: Callable[[Serve], int]) -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST

    port = peer(reset)

    async def client() -> None:
        stream = await connect(port)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        try:
            await stream.read(100, timeout=5)
        finally:
            await stream.aclose()

    with pytest.raises(httpcore.ReadError) as raised:
        asyncio.run(client())
    assert isinstance(raised.value.__cause__, ConnectionResetError)


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    # nothing listens on the port now

    with pytest.raises(httpcore.ConnectError) as raised:
        asyncio.run(connect(port))  # type: ignore[arg-type]
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)


def test_a_failed_tls_handshake_is_a_connect_error_caused_by_ssl(peer: Callable[[Serve], int]) -> None:
    def plain_http(conn: socket.socket) -> None:
        conn.recv(1000)  # the ClientHello
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    port = peer(plain_http)

    async def client() -> None:
        stream = await connect(port)
        await stream.start_tls(ssl.create_default_context(), server_hostname="localhost", timeout=5)

    with pytest.raises(httpcore.ConnectError) as raised:
        asyncio.run(client())
    # the fetcher tells tls_error from connect_error by this cause
    assert isinstance(raised.value.__cause__, ssl.SSLError)
