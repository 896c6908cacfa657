"""A real HTTP server on 127.0.0.1 for end-to-end tests: routes are plain functions.

Unlike a mock, it speaks real HTTP over a real socket, so the fetcher's timeouts, size
caps, redirects and conditional GETs are exercised as they are against publishers.
A route gets the request handler and writes whatever it likes, including nothing at all
(hung server), one byte a second (drip) or half a body and a reset.
"""
from __future__ import annotations

import email.utils
import gzip
import socket
import struct
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from xml.sax.saxutils import escape

Route = Callable[[BaseHTTPRequestHandler], None]


class LoopbackServer:
    """HTTP/1.1 (keep-alive) on 127.0.0.1 in a thread: one handler thread per connection.

    Requests go to `routes` by path (404 for any other path), or all to `respond` when given.
    It records every request (path, lower-cased headers) unless `record` is false, and counts
    requests in flight (`in_flight`, `max_in_flight`, under `lock`). `stop` is set at close,
    so routes that hold a connection can end. The feed farm (tests/support/feedfarm.py) is
    built on it; for HTTP broken below what a handler can write, see tests/support/rawserver.py.
    """

    def __init__(self, respond: Route | None = None, *, record: bool = True, report_errors: bool = True) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body often go out in two writes

            def do_GET(self) -> None:  # noqa: N802
                with outer.lock:
                    if record:
                        outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if respond is not None:
                        respond(self)
                    else:
                        route = outer.routes.get(self.path.split("?")[0])
                        if route is None:
                            send(self, 404, b"not found", "text/plain")
                        else:
                            route(self)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request, client_address) -> None:
                if report_errors:
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/rss+xml",
         **headers: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()
    h.wfile.write(body)


def feed_route(body: bytes, *, etag: str | None = None, ctype: str = "application/rss+xml") -> Route:
    """Serve a document with an ETag and answer If-None-Match with 304, as publishers do."""
    tag = etag or f'"{abs(hash(body))}"'

    def route(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == tag:
            h.send_response(304)
            h.send_header("ETag", tag)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        send(h, 200, body, ctype, ETag=tag)

    return route


def rss(items: list[dict], title: str = "Test feed", extra: str = "") -> bytes:
    """A small RSS 2.0 document; items: title, link, guid, summary, published (datetime)."""
    out = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
           f"<link>https://example.org/</link>{extra}"]
    for it in items:
        out.append("<item>")
        out.append(f"<title>{escape(it['title'])}</title>")
        if it.get("link"):
            out.append(f"<link>{escape(it['link'])}</link>")
        if it.get("guid"):
            out.append(f'<guid isPermaLink="false">{escape(it["guid"])}</guid>')
        when = it.get("published") or datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
        out.append(f"<pubDate>{email.utils.format_datetime(when)}</pubDate>")
        out.append(f"<description>{escape(it.get('summary', ''))}</description>")
        out.append("</item>")
    out.append("</channel></rss>")
    return "".join(out).encode("utf-8")


def drip(h: BaseHTTPRequestHandler) -> None:
    """Headers, then one byte a second: only an overall deadline stops this."""
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.end_headers()
    try:
        for ch in b"<?xml version='1.0'?><rss version='2.0'><channel>" * 100:
            h.wfile.write(bytes([ch]))
            h.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


def hung(h: BaseHTTPRequestHandler) -> None:
    """Accept the request and never answer."""
    time.sleep(30)


def reset_mid_body(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    h.wfile.write(rss([{"title": "partial", "guid": "p1"}])[:60])
    h.wfile.flush()
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.rfile.close()  # the makefile() reference would keep the socket open
    h.connection.close()  # linger 0: RST, not FIN
    h.close_connection = True


def huge(h: BaseHTTPRequestHandler, size: int = 200_000_000) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"<!-- " + b"x" * 65_000 + b" -->"
    sent = 0
    try:
        while sent < size:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        h.wfile.write(b"0\r\n\r\n")
    except OSError:
        pass


def gzip_bomb(size: int = 300_000_000) -> bytes:
    """`size` zero bytes, gzip-compressed (about size/1000 bytes on the wire)."""
    zeros = b"\0" * 1_000_000
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        for _ in range(size // len(zeros)):
            gz.write(zeros)
    return buf.getvalue()
