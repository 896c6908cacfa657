"""HTTP/1.1 for the fetcher: httptools' parser over asyncio's streams, with a keep-alive pool.

httptools (llhttp, the parser of Node.js) reads the protocol: status lines, headers, chunked
and length-delimited bodies, whether a connection may be reused. This module writes the
requests (a GET with a few headers), moves the bytes over asyncio streams and keeps idle
connections per origin. The fetcher asks for one GET at a time and decides everything else
itself: redirects, content decoding, size caps, deadlines (see monitor.feeds.fetch).

Why not httpx's transport and httpcore's pool, which the fetcher used before: a conditional
GET answered 304 cost about 0.5 ms of CPU through them and 0.16 ms through h11 directly
(658 of them over loopback, one process: 0.34 s against 0.11 s, medians of 7 alternating
runs). Their layers (URL and header models, request queueing, tracing, AnyIO locks) do
nothing this fetcher needs, and on an all-304 poll the fetching thread is the bottleneck.
Through h11 a third of that thread's time was still h11's own Python; httptools parses in C
and calls back once per header.

Failures are `Failure(code, detail)` with the fetcher's error codes; an overall deadline is
the caller's `asyncio.timeout`; each step of connecting (a lookup, one address's attempt,
the TLS handshake) has the pool's connect timeout.
"""
from __future__ import annotations

import asyncio
import os
import re
import select
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import httptools

from monitor.errors import FailureReason

READ_SIZE = 64 * 1024
MAX_HEAD = 100 * 1024  # the largest response head accepted (httpcore's limit too)
KEEPALIVE = 5.0  # seconds an idle connection is kept for reuse
DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters sent as they are in a request target; anything else is percent-encoded (UTF-8).
_SAFE_PATH = "/%!$&'()*+,;=:@-._~"
_SAFE_QUERY = _SAFE_PATH + "?"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a "%" that starts no escape is sent as %25
# What a request header may be (RFC 9110 5.1, 5.5): a token for a name; for a value, visible
# ASCII and spaces or tabs between them (a stored validator is sent back as the server gave it)
# (h11's rules: no NUL, no white space but spaces and tabs inside; it took these answers and
# sent these requests)
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[^\x00\s]+(?:[ \t]+[^\x00\s]+)*|", re.ASCII)
_FIELD_BYTES = re.compile(rb"[^\x00\s]+(?:[ \t]+[^\x00\s]+)*|")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# (host, port, timeout) -> an open TCP connection; `timeout` bounds each step (a lookup, one
# address's attempt), so that an address that never answers does not use up the others' time
Connect = Callable[[str, int, float], Awaitable[Streams]]


class Failure(Exception):
    """A failed exchange, with its error code (monitor.errors.FailureReason) decided."""

    def __init__(self, code: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _Stale(Exception):
    """A kept-alive connection closed by the server before it answered: try a new one."""


class Origin(NamedTuple):
    scheme: str  # "http" or "https"
    host: str  # lower case, no brackets, as urlsplit gives it
    port: int


def split_url(url: str) -> tuple[Origin, str, str]:
    """(origin, request target, Host header) of an http(s) URL that monitor.feeds.guard passed."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[scheme]
    try:
        name = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise Failure(FailureReason.BAD_URL, f"host {host!r} is not a valid name: {exc}") from None
    shown = f"[{name}]" if ":" in name else name
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    target = quote(_LONE_PERCENT.sub("%25", parts.path or "/"), safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(_LONE_PERCENT.sub("%25", parts.query), safe=_SAFE_QUERY)
    return Origin(scheme, host, port), target, host_header


def client_context(verify: ssl.SSLContext | bool = True) -> ssl.SSLContext:
    """The TLS context for fetching: certifi's authorities unless SSL_CERT_FILE or SSL_CERT_DIR
    name others (as httpx did); an SSLContext is used as given; False verifies nothing."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif os.environ.get("SSL_CERT_FILE"):
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    elif os.environ.get("SSL_CERT_DIR"):
        context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Connection:
    __slots__ = ("idle_since", "origin", "reader", "reused", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.reused = False

    def close(self) -> None:
        """Close at once: no waiting on the peer (a TLS close_notify that is never answered
        would hold the fetch)."""
        self.writer.transport.abort()

    def fit_for_reuse(self, now: float) -> bool:
        """Idle for less than KEEPALIVE, and nothing to read: data nobody asked for (a 408
        pushed onto an idle connection), or the server's close, either of which makes it
        unfit for another request: the data would be read as the next request's answer.
        What asyncio has read off the socket already waits in the reader's buffer, which
        StreamReader does not expose."""
        reader = self.reader
        if now - self.idle_since > KEEPALIVE or self.writer.transport.is_closing() or reader.at_eof() \
                or getattr(reader, "_buffer", None):
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return False
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)


class _Answer:
    """One answer on a connection, as the parser reads it (these methods are its callbacks).

    Informational answers (1xx) before it are read and left out. Bytes after it (a 304 sent
    with a body, a second answer) set `after`: nothing that follows can be trusted to be the
    answer to a later request."""

    __slots__ = ("after", "body", "chunked", "complete", "head_bytes", "head_done", "headers",
                 "keep_alive", "length", "parser", "problem", "reason", "received", "stalled", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # What servers send and h11 read, which llhttp refuses by default: line breaks without
        # a CR, headers folded over lines, Content-Length beside chunks (the chunks count, and
        # the connection is not used again: see on_message_complete), white space after a
        # chunk's size, other versions than 1.0 and 1.1 in the status line. Header values are
        # held to h11's rules here (on_header).
        self.parser.set_dangerous_leniencies(
            lenient_optional_cr_before_lf=True, lenient_headers=True, lenient_chunked_length=True,
            lenient_spaces_after_chunk_size=True, lenient_version=True)
        self.after = self.complete = self.keep_alive = False
        self.body: list[bytes] = []  # body bytes parsed and not yet taken
        self.problem = ""  # what makes the answer unreadable, found by a callback
        self.stalled = 0  # bytes read after the head with no body byte among them (trailers, say)
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0  # bytes of this answer fed before its head was complete
        self.head_done = self.chunked = False
        self.length: int | None = None  # Content-Length
        self.received = 0  # body bytes

    def feed(self, data: bytes) -> None:
        """Parse bytes read from the connection."""
        body_before = self.received
        if not self.head_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            raise  # a bug here, not the server's
        except httptools.HttpParserUpgrade:
            if not self.complete:
                raise Failure(FailureReason.PROTOCOL_ERROR,
                              "broken HTTP from the server: it switched to another protocol") from None
            self.after = True
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise Failure(FailureReason.PROTOCOL_ERROR, f"broken HTTP from the server: {exc}") from None
            self.after = True  # not the answer's own bytes: they come after it
        if self.problem:
            raise Failure(FailureReason.PROTOCOL_ERROR, f"broken HTTP from the server: {self.problem}")
        if not self.head_done:
            if self.head_bytes > MAX_HEAD:
                raise Failure(FailureReason.PROTOCOL_ERROR,
                              f"broken HTTP from the server: a response head of more than {MAX_HEAD} bytes")
        elif not self.complete:
            self.stalled = 0 if self.received > body_before else self.stalled + len(data)
            if self.stalled > MAX_HEAD:  # trailers, chunk extensions: as bounded as a head
                raise Failure(FailureReason.PROTOCOL_ERROR,
                              f"broken HTTP from the server: more than {MAX_HEAD} bytes with no body in them")

    def closed(self, reused: bool) -> None:
        """The server closed the connection: the end of a body that runs to the close, or a failure."""
        if not self.head_done and self.head_bytes == 0:  # no byte of the answer (an informational one, maybe)
            if reused:
                raise _Stale()
            raise Failure(FailureReason.PROTOCOL_ERROR, "the server closed the connection without answering")
        if not self.head_done:
            raise Failure(FailureReason.PROTOCOL_ERROR,
                          "broken HTTP from the server: peer unexpectedly closed connection")
        if self.chunked:
            missing = "incomplete chunked read"
        elif self.length is not None:
            missing = f"received {self.received} bytes, expected {self.length}"
        else:  # neither length nor chunks: the body ends where the server closes
            self.complete = True
            self.keep_alive = False
            return
        raise Failure(FailureReason.TRUNCATED,
                      f"peer closed connection without sending complete message body ({missing})")

    # -- the parser's callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.after = True

    def on_status(self, data: bytes) -> None:
        if not self.complete:
            self.reason += data

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete or self.head_done:  # trailers after a chunked body are not headers
            return
        value = value.rstrip(b" \t")  # white space after a value is not part of it (RFC 9110 5.5)
        if not _FIELD_BYTES.fullmatch(value):  # a NUL, a line break: it could not be sent back
            self.problem = self.problem or f"a {name.decode('latin-1')!r} header with {value[:40]!r}"
        self.headers.append((name, value))
        if name.lower() == b"content-length" and value.isdigit():
            self.length = int(value)

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        self.status = self.parser.get_status_code()
        self.head_done = True
        codings = b", ".join(v for n, v in self.headers if n.lower() == b"transfer-encoding")
        if codings:
            self.chunked = codings.lower() == b"chunked"
            if not self.chunked:  # as h11: a body in any other coding cannot be read
                self.problem = self.problem or f"transfer coding {codings.decode('latin-1')!r}"

    def on_body(self, data: bytes) -> None:
        if not self.complete:
            self.body.append(data)
            self.received += len(data)

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if self.status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._begin()
            return
        # HTTP/1.0 answers are not reused (as h11), nor those with both lengths: a server that
        # frames its answers so may not frame the next one as meant
        self.keep_alive = (self.parser.should_keep_alive() and self.parser.get_http_version() == "1.1"
                           and not (self.chunked and self.length is not None))
        self.complete = True


class Response:
    """Status and headers of one response; read the body with `chunks()`, then `aclose()`.

    `headers` has lower-case names; a repeated header's values are joined with ", ".
    """

    def __init__(self, pool: Pool, connection: _Connection, answer: _Answer) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._answer = answer
        self.status: int = answer.status
        self.reason = answer.reason.decode("latin-1")
        headers: dict[str, str] = {}
        for raw_name, raw_value in answer.headers:
            name = raw_name.decode("latin-1").lower()
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError:
                value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (as sent: no content decoding)."""
        connection, answer = self._connection, self._answer
        while connection is not None:
            while answer.body:
                yield answer.body.pop(0)
            if answer.complete:
                return
            data = await _read(connection, answer)
            if data:
                answer.feed(data)
            else:
                answer.closed(connection.reused)

    async def aclose(self) -> None:
        """Back to the pool when read to its end and reusable, closed otherwise."""
        connection, self._connection = self._connection, None
        if connection is not None:
            answer = self._answer
            self._pool.release(connection, answer.complete and not answer.body and answer.keep_alive
                               and not answer.after)


async def _read(connection: _Connection, answer: _Answer) -> bytes:
    """The next bytes from the connection (b"": the server closed it)."""
    try:
        return await connection.reader.read(READ_SIZE)
    except OSError as exc:
        if connection.reused and not answer.head_done:  # no answer yet: the request goes again
            raise _Stale() from None
        raise Failure(FailureReason.RESET, f"{type(exc).__name__}: {exc}") from None


def _request(target: str, host_header: str, headers: list[tuple[str, str]]) -> bytes:
    """A GET on the wire, its headers checked: a name that is no token, or a value with a line
    break or a NUL, would be a different request (ASCII only, as h11 sent them)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not value.isascii() or not _FIELD_VALUE.fullmatch(value):
            raise Failure(FailureReason.ERROR,
                          f"cannot send the request: the header {name!r} cannot carry {value!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("ascii")


class Pool:
    """Connections by origin, reused while they are idle and fit.

    `connect(host, port, timeout)` opens a TCP connection (the fetcher's resolves and checks
    the addresses first); TLS goes on top here, checked against the URL's host name. `tls()` is
    asked for the TLS context at the first https connection only: loading certificate
    authorities takes about 20 ms. At most `max_idle` idle connections are kept.
    """

    def __init__(self, connect: Connect, tls: Callable[[], ssl.SSLContext], *, connect_timeout: float,
                 max_idle: int) -> None:
        self._connect = connect
        self._tls = tls
        self._context: ssl.SSLContext | None = None
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0

    async def get(self, url: str, headers: list[tuple[str, str]]) -> Response:
        """Send GET `url` with `headers` (Host is added) and read the response's head."""
        origin, target, host_header = split_url(url)
        request = _request(target, host_header, headers)
        connection = self._take(origin)
        if connection is not None:
            try:
                return await self._exchange(connection, request)
            except _Stale:  # closed by the server as it was taken: once more, on a new connection
                pass
        return await self._exchange(await self._open(origin), request)

    async def _exchange(self, connection: _Connection, request: bytes) -> Response:
        try:
            try:
                connection.writer.write(request)
                await connection.writer.drain()
            except OSError as exc:
                if connection.reused:
                    raise _Stale() from None
                raise Failure(FailureReason.RESET, f"{type(exc).__name__}: {exc}") from None
            answer = _Answer()
            while not answer.head_done:
                data = await _read(connection, answer)
                if data:
                    answer.feed(data)
                else:
                    answer.closed(connection.reused)
            return Response(self, connection, answer)
        except BaseException:
            connection.close()
            raise

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.fit_for_reuse(now):
                connection.reused = True
                return connection
            connection.close()
        return None

    async def _open(self, origin: Origin) -> _Connection:
        timeout = self._connect_timeout
        if origin.scheme == "https" and self._context is None:
            try:
                self._context = self._tls()
            except (OSError, ssl.SSLError) as exc:  # SSL_CERT_FILE naming a missing or broken file
                raise Failure(FailureReason.TLS_ERROR,
                              f"cannot load the certificate authorities: {exc}") from None
        try:
            reader, writer = await self._connect(origin.host, origin.port, timeout)
            if self._context is not None and origin.scheme == "https":
                try:
                    async with asyncio.timeout(timeout):
                        await writer.start_tls(self._context, server_hostname=origin.host)
                except BaseException:
                    writer.transport.abort()
                    raise
        except TimeoutError:
            raise Failure(FailureReason.TIMEOUT, f"no connection within {timeout:g} s") from None
        except ssl.SSLError as exc:  # certificate and handshake failures
            raise Failure(FailureReason.TLS_ERROR, str(exc)) from None
        except OSError as exc:
            raise Failure(FailureReason.CONNECT_ERROR, f"{type(exc).__name__}: {exc}") from None
        return _Connection(origin, reader, writer)

    def release(self, connection: _Connection, reusable: bool) -> None:
        if not reusable:
            # unread body, "Connection: close", an error, or bytes after the answer (a 304
            # that came with a body): nothing after them can be trusted to be an answer
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1
        if self._idle_count > self._max_idle:
            oldest = min((idle[0] for idle in self._idle.values() if idle), key=lambda c: c.idle_since)
            self._idle[oldest.origin].remove(oldest)
            self._idle_count -= 1
            oldest.close()

    def close(self) -> None:
        """Close every idle connection (connections in use are closed by their responses)."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._idle_count = 0
