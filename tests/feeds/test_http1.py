"""The fetcher's HTTP/1.1 connections (monitor.feeds.http1) against scripted servers on 127.0.0.1:
what goes on the wire, when a connection is reused, and the error code of each way a server can
break an exchange."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest

from monitor.errors import FailureReason
from monitor.feeds import http1
from tests.support.rawserver import RawServer

Script = Callable[[socket.socket, int], None]  # (connection, its number from 0)
Start = Callable[[Script], "Scripted"]  # the server fixture


class Scripted(RawServer):
    """A server on 127.0.0.1 that runs `script(conn, n)` for its n-th connection (no request
    read for it first), and keeps what each connection received."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.threads: list[threading.Thread] = []
        super().__init__(handle=lambda conn, head, stop: None)  # (the script does the serving)

    def _begin(self, conn: socket.socket, n: int) -> None:
        self.received.append(b"")
        thread = threading.Thread(target=self._run, args=(conn, n), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _run(self, conn: socket.socket, n: int) -> None:
        with conn:
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                self.script(_Recording(conn, self, n), n)  # type: ignore[arg-type]

    def close(self) -> None:
        super().close()
        for thread in self.threads:
            thread.join(5)


class _Recording:
    """A socket that keeps what it receives in the server's `received`."""

    def __init__(self, conn: socket.socket, server: Scripted, n: int) -> None:
        self._conn, self._server, self._n = conn, server, n

    def recv(self, size: int) -> bytes:
        data = self._conn.recv(size)
        self._server.received[self._n] += data
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def read_request(conn: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(4096)
        if not data:
            return head
        head += data
    return head


def answer(conn: socket.socket, reply: bytes, requests: int = 1) -> None:
    for _ in range(requests):
        if not read_request(conn):
            return
        conn.sendall(reply)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def dial(host: str, port: int, timeout: float) -> http1.Streams:
    """The pool's connect without the fetcher's address guard (the tests dial 127.0.0.1 only)."""
    async with asyncio.timeout(timeout):
        return await asyncio.open_connection(host, port)


@pytest.fixture
def server() -> Iterator[Callable[[Script], Scripted]]:
    started: list[Scripted] = []

    def start(script: Script) -> Scripted:
        started.append(Scripted(script))
        return started[-1]

    yield start
    for s in started:
        s.close()


def run(body: Callable[[http1.Pool], Awaitable[object]], *, max_idle: int = 4,
        tls: Callable[[], ssl.SSLContext] = ssl.create_default_context) -> object:
    async def main() -> object:
        pool = http1.Pool(dial, tls, connect_timeout=5, max_idle=max_idle)
        try:
            return await body(pool)
        finally:
            pool.close()

    return asyncio.run(main())


async def get_body(pool: http1.Pool, url: str, headers: list[tuple[str, str]] | None = None
                   ) -> tuple[int, dict[str, str], bytes]:
    response = await pool.get(url, headers or [])
    try:
        body = b"".join([chunk async for chunk in response.chunks()])
        return response.status, response.headers, body
    finally:
        await response.aclose()


def failure(body: Callable[[http1.Pool], Awaitable[object]]) -> http1.Failure:
    with pytest.raises(http1.Failure) as raised:
        run(body)
    return raised.value


# ---------------------------------------------------------------- the wire


def test_request_on_the_wire_and_connection_reused(server: Start) -> None:
    srv = server(lambda conn, n: answer(conn, OK, requests=2))
    url = f"http://127.0.0.1:{srv.port}/a b/é?q=ü&r=%41#fragment"

    async def two(pool: http1.Pool) -> list[object]:
        return [await get_body(pool, url, [("If-None-Match", '"v1"')]),
                await get_body(pool, f"http://127.0.0.1:{srv.port}/second", [])]

    first, second = run(two)  # type: ignore[misc]
    assert first == (200, {"content-length": "2"}, b"ok")
    assert second[2] == b"ok"
    assert srv.connections == 1
    requests = srv.received[0].split(b"\r\n\r\n")
    host = f"Host: 127.0.0.1:{srv.port}".encode()
    assert requests[0] == b"GET /a%20b/%C3%A9?q=%C3%BC&r=%41 HTTP/1.1\r\n" + host + b'\r\nIf-None-Match: "v1"'
    assert requests[1] == b"GET /second HTTP/1.1\r\n" + host


@pytest.mark.parametrize(
    ("url", "origin", "host_header", "target"),
    [("http://Example.COM/", ("http", "example.com", 80), "example.com", "/"),
     ("HTTPS://example.com:443", ("https", "example.com", 443), "example.com", "/"),
     ("http://example.com:8080/feed?x=1", ("http", "example.com", 8080), "example.com:8080", "/feed?x=1"),
     ("http://[2001:db8::1]:81/", ("http", "2001:db8::1", 81), "[2001:db8::1]:81", "/"),
     ("https://bücher.example/ä", ("https", "bücher.example", 443), "xn--bcher-kva.example", "/%C3%A4"),
     ("http://example.com/%7Euser/a%2Fb", ("http", "example.com", 80), "example.com", "/%7Euser/a%2Fb"),
     ("http://example.com/100%/a%zz?q=5%&r=%41", ("http", "example.com", 80), "example.com",
      "/100%25/a%25zz?q=5%25&r=%41")],
)
def test_split_url(url: str, origin: tuple[str, str, int], host_header: str, target: str) -> None:
    assert http1.split_url(url) == (origin, target, host_header)


def test_repeated_headers_are_joined_and_other_bytes_kept(server: Start) -> None:
    reply = (b"HTTP/1.1 200 OK\r\nVary: Accept\r\nVARY: Accept-Encoding\r\nX-Name: caf\xc3\xa9\r\n"
             b"X-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n")
    srv = server(lambda conn, n: answer(conn, reply))
    _, headers, _ = run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))  # type: ignore[misc]
    assert headers == {"vary": "Accept, Accept-Encoding", "x-name": "café", "x-latin": "café",
                       "content-length": "0"}


def test_informational_answers_are_skipped(server: Start) -> None:
    reply = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + OK
    srv = server(lambda conn, n: answer(conn, reply))
    assert run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/")) == (
        200, {"content-length": "2"}, b"ok")


def test_chunked_body_is_read_whole(server: Start) -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n<rs\r\n2\r\ns/\r\n1\r\n>\r\n0\r\n\r\n"
    srv = server(lambda conn, n: answer(conn, reply))
    assert run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))[2] == b"<rss/>"  # type: ignore[index]


def test_a_body_ended_by_the_close_is_read_whole(server: Start) -> None:
    """HTTP/1.0 style: no length, no chunks; the body ends where the server closes."""
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n<rss>" + b"x" * 70_000 + b"</rss>"
    srv = server(lambda conn, n: answer(conn, reply))
    status, _, body = run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))  # type: ignore[misc]
    assert (status, len(body), body[-6:]) == (200, 70_011, b"</rss>")


def test_an_answer_in_many_small_pieces_is_read_as_one(server: Start) -> None:
    """The parser is fed what each read brings: a status line, a header, a chunk size or an
    informational answer cut anywhere reads as if it had come whole."""
    reply = (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 Fine Thanks\r\n"
             b"Content-Type: application/rss+xml\r\nETag: \"v2\"\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"3\r\n<rs\r\n2\r\ns/\r\n1\r\n>\r\n0\r\n\r\n")

    def script(conn: socket.socket, n: int) -> None:
        for _ in range(2):
            read_request(conn)
            for i in range(0, len(reply), 3):
                conn.sendall(reply[i:i + 3])
                threading.Event().wait(0.002)

    srv = server(script)

    async def body(pool: http1.Pool) -> list[object]:
        response = await pool.get(f"http://127.0.0.1:{srv.port}/", [])
        reason = response.reason
        rest = b"".join([chunk async for chunk in response.chunks()])
        await response.aclose()
        return [reason, (response.status, response.headers, rest),
                await get_body(pool, f"http://127.0.0.1:{srv.port}/")]

    reason, first, second = run(body)  # type: ignore[misc]
    assert reason == "Fine Thanks"
    assert first == second == (200, {"content-type": "application/rss+xml", "etag": '"v2"',
                                      "transfer-encoding": "chunked"}, b"<rss/>")
    assert srv.connections == 1  # read to its end, the connection served the second request


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 200 OK\nETag: \"v2\"\nContent-Length: 2\n\nok",  # line breaks without CR
     b"HTTP/1.1 200 OK\r\nETag:  \"v2\" \t\r\nContent-Length: 2\r\n\r\nok",  # white space around a value
     b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nETag: \"v2\"\r\nContent-Length: 2\r\n\r\nok",  # a folded header
     b"HTTP/1.1 200 OK\r\nETag: \"v2\"\r\nTransfer-Encoding: chunked\r\n\r\n2 \t\r\nok\r\n0\r\n\r\n"],  # spaces after a size
    ids=["bare-lf", "spaces", "folded", "chunk-size-spaces"],
)
def test_answers_off_the_standard_that_servers_send_are_read(server: Start, reply: bytes) -> None:
    srv = server(lambda conn, n: answer(conn, reply, requests=2))

    async def body(pool: http1.Pool) -> list[object]:
        return [await get_body(pool, f"http://127.0.0.1:{srv.port}/") for _ in range(2)]

    first, second = run(body)  # type: ignore[misc]
    assert first == second and first[0] == 200 and first[2] == b"ok"
    assert first[1]["etag"] == '"v2"'
    assert srv.connections == 1


def test_trailers_are_neither_headers_nor_unbounded(server: Start) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    srv = server(lambda conn, n: answer(conn, chunked + b"ETag: \"trailer\"\r\n\r\n"))
    assert run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/")) == (
        200, {"transfer-encoding": "chunked"}, b"ok")

    def endless(conn: socket.socket, n: int) -> None:
        answer(conn, chunked + b"X-T: ")
        for _ in range(100):  # 6.4 MB of one trailer, unless the client stops reading first
            conn.sendall(b"t" * 64_000)

    srv = server(endless)
    error = failure(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))
    assert error.code == FailureReason.PROTOCOL_ERROR and "with no body in them" in error.detail


@pytest.mark.parametrize(
    ("reply", "detail"),
    [(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", "transfer coding 'gzip'"),
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok", "'identity'"),
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n", "'chunked, gzip'"),
     (b"HTTP/1.1 200 OK\r\nETag: \"a\x00b\"\r\nContent-Length: 2\r\n\r\nok", "'ETag' header"),
     (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      "switched to another protocol")],
    ids=["gzip", "identity", "chunked-gzip", "nul-in-value", "upgrade"],
)
def test_answers_h11_refused_are_refused(server: Start, reply: bytes, detail: str) -> None:
    """A body in a transfer coding other than chunks cannot be read (the feed would get the coded
    bytes, or the fetch wait for a close); a header value with a NUL could not be sent back."""
    srv = server(lambda conn, n: answer(conn, reply))
    error = failure(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))
    assert error.code == FailureReason.PROTOCOL_ERROR and detail in error.detail, error.detail


def test_a_kept_alive_connection_closed_after_an_informational_answer_is_retried(server: Start) -> None:
    def script(conn: socket.socket, n: int) -> None:
        answer(conn, OK)
        if n == 0:
            answer(conn, b"HTTP/1.1 100 Continue\r\n\r\n")  # and the server closes, with no answer

    srv = server(script)

    async def body(pool: http1.Pool) -> list[object]:
        return [await get_body(pool, f"http://127.0.0.1:{srv.port}/{i}") for i in range(2)]

    assert [r[2] for r in run(body)] == [b"ok", b"ok"]  # type: ignore[attr-defined, index]
    assert srv.connections == 2


@pytest.mark.parametrize("value", ['"v1"\r\nX-Injected: 1', "v1\n", "a\x00b", " v1", "café"])
def test_a_header_value_that_would_change_the_request_is_not_sent(server: Start, value: str) -> None:
    """A stored validator goes back as the server sent it, but a line break (or another control
    character, spaces around it, or a character outside ASCII) would make another request."""
    srv = server(lambda conn, n: answer(conn, OK))
    error = failure(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/", [("If-None-Match", value)]))
    assert error.code == FailureReason.ERROR and error.detail.startswith("cannot send the request")
    assert srv.connections == 0
    for sent in ['W/"v 1"', '"a\x01b\x7f"']:  # within the rules (h11's): it goes as it is
        srv = server(lambda conn, n: answer(conn, OK))
        assert run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/", [("If-None-Match", sent)]))
        assert f"If-None-Match: {sent}\r\n".encode() in srv.received[0]


# ---------------------------------------------------------------- reuse


def test_a_connection_the_server_closed_while_idle_is_not_reused(server: Start) -> None:
    srv = server(lambda conn, n: answer(conn, OK))  # one answer, then the server closes

    async def body(pool: http1.Pool) -> list[object]:
        first = await get_body(pool, f"http://127.0.0.1:{srv.port}/")
        for _ in range(500):  # until the close has arrived
            if srv.threads and not srv.threads[0].is_alive():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        return [first, await get_body(pool, f"http://127.0.0.1:{srv.port}/")]

    assert [r[2] for r in run(body)] == [b"ok", b"ok"]  # type: ignore[attr-defined, index]
    assert srv.connections == 2


def test_a_connection_idle_past_keepalive_is_not_reused(server: Start,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    srv = server(lambda conn, n: answer(conn, OK, requests=2))  # willing to answer twice on one
    monkeypatch.setattr(http1, "KEEPALIVE", 0.0)

    async def body(pool: http1.Pool) -> list[object]:
        first = await get_body(pool, f"http://127.0.0.1:{srv.port}/")
        await asyncio.sleep(0.01)
        return [first, await get_body(pool, f"http://127.0.0.1:{srv.port}/")]

    assert [r[2] for r in run(body)] == [b"ok", b"ok"]  # type: ignore[attr-defined, index]
    assert srv.connections == 2


def test_an_answer_pushed_onto_an_idle_connection_is_not_taken_for_the_next_one(server: Start) -> None:
    """A server may send a 408 on a connection it keeps idle: what comes before a request is
    no answer to it. The next request goes on a new connection."""
    def script(conn: socket.socket, n: int) -> None:
        answer(conn, OK)
        if n == 0:
            conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
            answer(conn, OK)  # (were a request sent here, it would be answered too)

    srv = server(script)

    async def body(pool: http1.Pool) -> list[object]:
        first = await get_body(pool, f"http://127.0.0.1:{srv.port}/")
        await asyncio.sleep(0.3)  # the 408 arrives, and asyncio reads it off the socket
        return [first, await get_body(pool, f"http://127.0.0.1:{srv.port}/")]

    assert [r[0] for r in run(body)] == [200, 200]  # type: ignore[attr-defined, index]
    assert srv.connections == 2


def test_bytes_after_an_answer_close_its_connection(server: Start) -> None:
    """A 304 has no body; one sent with a body leaves bytes that no later answer may start with."""
    srv = server(lambda conn, n: answer(conn, b"HTTP/1.1 304 Not Modified\r\n\r\nstray" if n == 0 else OK))

    async def body(pool: http1.Pool) -> list[object]:
        return [(await get_body(pool, f"http://127.0.0.1:{srv.port}/"))[0] for _ in range(2)]

    assert run(body) == [304, 200]
    assert srv.connections == 2


def test_authorities_that_cannot_be_loaded_are_a_tls_error(server: Start) -> None:
    srv = server(lambda conn, n: answer(conn, OK))

    def tls() -> ssl.SSLContext:
        return ssl.create_default_context(cafile="/nonexistent/ca.pem")

    with pytest.raises(http1.Failure) as raised:
        run(lambda pool: pool.get(f"https://127.0.0.1:{srv.port}/", []), tls=tls)
    error = raised.value
    assert error.code == FailureReason.TLS_ERROR
    assert error.detail.startswith("cannot load the certificate authorities")
    assert srv.connections == 0  # found out before connecting


def test_a_kept_alive_connection_closed_on_the_request_is_retried_once(
        server: Start) -> None:
    def script(conn: socket.socket, n: int) -> None:
        answer(conn, OK)
        if n == 0:
            read_request(conn)  # the second request arrives, and the server closes without a word

    srv = server(script)

    async def body(pool: http1.Pool) -> list[object]:
        return [await get_body(pool, f"http://127.0.0.1:{srv.port}/{i}") for i in range(2)]

    assert [r[2] for r in run(body)] == [b"ok", b"ok"]  # type: ignore[attr-defined, index]
    assert srv.connections == 2
    assert b"GET /1 " in srv.received[0] and b"GET /1 " in srv.received[1]


def test_a_new_connection_closed_without_an_answer_is_not_retried(server: Start) -> None:
    srv = server(lambda conn, n: read_request(conn) and None)
    error = failure(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))
    assert error.code == FailureReason.PROTOCOL_ERROR
    assert error.detail == "the server closed the connection without answering"
    assert srv.connections == 1


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
     b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
     b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",  # (as h11: not 1.0)
     # both lengths: read by its chunks, and a server that frames an answer so is not trusted with
     # the next one
     b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
    ids=["close", "http-1.0", "http-1.0-keep-alive", "length-and-chunks"],
)
def test_a_connection_the_server_will_close_is_not_kept(server: Start, reply: bytes) -> None:
    srv = server(lambda conn, n: answer(conn, reply, requests=2))

    async def body(pool: http1.Pool) -> list[object]:
        return [await get_body(pool, f"http://127.0.0.1:{srv.port}/") for _ in range(2)]

    assert [r[2] for r in run(body)] == [b"ok", b"ok"]  # type: ignore[attr-defined, index]
    assert srv.connections == 2


def test_a_response_closed_unread_closes_its_connection(server: Start) -> None:
    hello = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    srv = server(lambda conn, n: answer(conn, hello, requests=2))

    async def body(pool: http1.Pool) -> bytes:
        response = await pool.get(f"http://127.0.0.1:{srv.port}/", [])
        await response.aclose()  # the body was never read: the connection cannot serve another
        return (await get_body(pool, f"http://127.0.0.1:{srv.port}/"))[2]

    assert run(body) == b"hello"
    assert srv.connections == 2


def test_at_most_max_idle_connections_are_kept(server: Start) -> None:
    srv = server(lambda conn, n: answer(conn, OK, requests=3))

    async def body(pool: http1.Pool) -> None:
        url = f"http://127.0.0.1:{srv.port}/"
        for _ in range(2):
            await asyncio.gather(*(get_body(pool, url) for _ in range(3)))  # three connections at once

    run(body, max_idle=2)
    # of the first three, the one idle longest was closed: the second round reused two, opened one
    assert srv.connections == 4
    assert sorted(r.count(b"GET ") for r in srv.received) == [1, 1, 2, 2]


# ---------------------------------------------------------------- failures


def _reset_mid_body(conn: socket.socket, n: int) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    threading.Event().wait(0.1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST


@pytest.mark.parametrize(
    ("script", "code", "detail"),
    [(lambda conn, n: answer(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
      FailureReason.TRUNCATED, "received 3 bytes, expected 10"),
     (lambda conn, n: answer(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc"),
      FailureReason.TRUNCATED, "incomplete chunked read"),
     (lambda conn, n: answer(conn, b"SPDY/3 200 OK\r\n\r\n"), FailureReason.PROTOCOL_ERROR, "broken HTTP"),
     (lambda conn, n: answer(conn, b"HTTP/1.1 200 OK\r\nContent-Le"), FailureReason.PROTOCOL_ERROR,
      "peer unexpectedly closed connection"),
     (lambda conn, n: answer(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc"),
      FailureReason.PROTOCOL_ERROR, "broken HTTP"),
     (lambda conn, n: answer(conn, b"HTTP/1.1 200 OK\r\nX: " + b"y" * 200_000 + b"\r\n\r\n"),
      FailureReason.PROTOCOL_ERROR, "broken HTTP"),
     (_reset_mid_body, FailureReason.RESET, "ConnectionResetError")],
    ids=["short", "short-chunked", "not-http", "cut-head", "two-lengths", "huge-head", "reset"],
)
def test_each_broken_exchange_has_its_code(server: Start, script: Script,
                                           code: FailureReason, detail: str) -> None:
    srv = server(script)
    error = failure(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"))
    assert error.code == code and detail in error.detail, error.detail


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    # nothing listens on the port now
    error = failure(lambda pool: pool.get(f"http://127.0.0.1:{port}/", []))
    assert error.code == FailureReason.CONNECT_ERROR and "ConnectionRefusedError" in error.detail


def test_a_tls_handshake_with_a_plain_server_is_a_tls_error(server: Start) -> None:
    def plain_http(conn: socket.socket, n: int) -> None:
        conn.recv(1000)  # the ClientHello
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    srv = server(plain_http)
    contexts: list[ssl.SSLContext] = []

    def tls() -> ssl.SSLContext:
        contexts.append(ssl.create_default_context())
        return contexts[-1]

    async def twice(pool: http1.Pool) -> list[FailureReason]:
        codes = []
        for _ in range(2):
            try:
                await pool.get(f"https://127.0.0.1:{srv.port}/", [])
            except http1.Failure as exc:
                codes.append(exc.code)
        return codes

    assert run(twice, tls=tls) == [FailureReason.TLS_ERROR] * 2
    assert len(contexts) == 1  # built at the first https connection, then kept


def test_plain_http_builds_no_tls_context(server: Start) -> None:
    srv = server(lambda conn, n: answer(conn, OK))

    def tls() -> ssl.SSLContext:
        raise AssertionError("no TLS context is needed for http")

    assert run(lambda pool: get_body(pool, f"http://127.0.0.1:{srv.port}/"), tls=tls)[2] == b"ok"  # type: ignore[index]
