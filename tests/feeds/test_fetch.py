"""Fetching against real loopback servers: pytest-httpserver for well-behaved HTTP, small
threaded servers for what a well-behaved server never does (drip, hang, reset, bombs)."""
from __future__ import annotations

import asyncio
import gzip
import os
import resource
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from monitor.feeds.fetch import (
    Fetcher,
    FetchJob,
    FetchPolicy,
    fetch_all,
    fetch_one,
    parse_max_age,
    parse_retry_after,
)
from tests.support.loopback import LoopbackServer
from tests.support.rawserver import RawServer, stream

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Server = Callable[..., "RawServer"]  # the raw_server fixture: start a server with a handler


def allowing(server: HTTPServer, **kw: object) -> FetchPolicy:
    """A policy that lets fetches reach this one loopback server, and nothing else local."""
    return FetchPolicy(allow_hosts=(f"{server.host}:{server.port}",), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- servers (tests/support: rawserver, loopback)


@pytest.fixture
def raw_server() -> Iterator[Server]:
    servers: list[RawServer] = []

    def start(handle: Callable[[socket.socket, bytes, threading.Event], None]) -> RawServer:
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def raw_policy(server: RawServer, **kw: object) -> FetchPolicy:
    return FetchPolicy(allow_hosts=(f"127.0.0.1:{server.port}",), **kw)  # type: ignore[arg-type]


def reply(handler: BaseHTTPRequestHandler, status: int = 200, body: bytes = b"ok", **headers: str) -> None:
    handler.send_response(status)
    for name, value in {"Content-Length": str(len(body)), **headers}.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


# ---------------------------------------------------------------- the guard, end to end


def answer_ok(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0177.0.0.1", "2130706433", "0x7f.1", "127.1",
                                  "[::ffff:127.0.0.1]", "[::1]"])
def test_default_policy_refuses_loopback_before_connecting(raw_server: Server, host: str) -> None:
    server = raw_server(answer_ok)
    result = fetch_one(f"http://{host}:{server.port}/feed", now=NOW)
    assert result.error == "blocked_address", result
    assert "refused address" in result.detail
    assert result.status is None and result.body is None
    assert server.connections == 0


def test_default_policy_refuses_httpserver(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data("<rss/>")
    result = fetch_one(httpserver.url_for("/feed"), FetchPolicy(), NOW)
    assert result.error == "blocked_address"
    assert "for host localhost" in result.detail
    assert httpserver.log == []


def test_redirect_to_private_address_stops_at_the_guard(httpserver: HTTPServer, raw_server: Server) -> None:
    other = raw_server(answer_ok)
    to_ip = f"http://127.0.0.1:{httpserver.port}/secret"  # same server, but not the allowed host name
    httpserver.expect_request("/to-ip").respond_with_data("", 302, {"Location": to_ip})
    to_port = f"http://localhost:{other.port}/"  # allowed host name, other port
    httpserver.expect_request("/to-port").respond_with_data("", 301, {"Location": to_port})
    httpserver.expect_request("/secret").respond_with_data("secret")
    policy = allowing(httpserver)
    result = fetch_one(httpserver.url_for("/to-ip"), policy, NOW)
    assert result.error == "blocked_address" and "127.0.0.1" in result.detail
    assert result.permanent_url is None
    result = fetch_one(httpserver.url_for("/to-port"), policy, NOW)
    assert result.error == "blocked_address" and result.permanent_url is None
    assert [request.path for request, _ in httpserver.log] == ["/to-ip", "/to-port"]
    assert other.connections == 0


def test_allow_private_addresses_reaches_loopback(raw_server: Server) -> None:
    server = raw_server(answer_ok)
    result = fetch_one(f"http://localhost:{server.port}/", FetchPolicy(allow_private_addresses=True), NOW)
    assert result.ok and result.body == b"ok"


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.org/feed", "javascript:alert(1)"])
def test_redirect_to_other_scheme_is_refused(httpserver: HTTPServer, location: str) -> None:
    httpserver.expect_request("/feed").respond_with_data("", 302, {"Location": location})
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver), NOW)
    assert result.error == "bad_scheme"


def fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: Callable[[int], list[str]]) -> list[str]:
    """Answer lookups of *.test names with answers(call number); others go to the real resolver."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host: object, port: object, *args: object, **kw: object) -> list:  # type: ignore
        if isinstance(host, bytes):  # the fetcher passes ASCII names as bytes
            host = host.decode("ascii")
        if isinstance(host, str) and host.endswith(".test"):
            calls.append(host)
            addresses = answers(len(calls))
            if not addresses:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [info for address in addresses for info in real(address, port, *args, **kw)]
        return real(host, port, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


class RecordingDial:
    """Records every (address, port) the fetcher's guarded connect asks to dial, then connects to
    the loopback port `to` instead: the fetch completes, and no packet leaves the machine."""

    def __init__(self, to: int) -> None:
        self.dialled: list[tuple[str, int]] = []
        self._to = to

    async def __call__(self, address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.dialled.append((address, port))
        return await asyncio.open_connection("127.0.0.1", self._to)


def test_dns_answer_is_checked_and_pinned(monkeypatch: pytest.MonkeyPatch, raw_server: Server) -> None:
    """The public first answer is the address dialled; a rebinding second answer is never asked for;
    the request still names the host."""
    heads: list[bytes] = []

    def answer(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        heads.append(head)
        answer_ok(conn, head, stop)

    server = raw_server(answer)
    calls = fake_resolver(monkeypatch, lambda n: ["93.184.216.34"] if n == 1 else ["127.0.0.1"])
    dialer = RecordingDial(to=server.port)
    result = fetch_one(f"http://rebind.test:{server.port}/", FetchPolicy(), NOW, dial=dialer)
    assert dialer.dialled == [("93.184.216.34", server.port)]
    assert calls == ["rebind.test"]
    assert result.ok and result.body == b"ok", result
    assert server.connections == 1
    assert f"\r\nHost: rebind.test:{server.port}\r\n".encode() in heads[0]


def test_a_silent_address_leaves_the_next_one_its_time(monkeypatch: pytest.MonkeyPatch,
                                                       raw_server: Server) -> None:
    """A name with two addresses, the first of which never answers (an IPv6 address without a
    route, say): the fetch goes on to the second within the connect timeout, not the deadline."""
    server = raw_server(answer_ok)
    fake_resolver(monkeypatch, lambda n: ["93.184.216.34", "93.184.216.35"])
    dialled: list[str] = []

    async def dial(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        dialled.append(address)
        if address == "93.184.216.34":
            await asyncio.sleep(3600)  # silent
        return await asyncio.open_connection("127.0.0.1", server.port)

    started = time.monotonic()
    result = fetch_one(f"http://dual.test:{server.port}/", FetchPolicy(connect_timeout=0.5, timeout=60), NOW,
                       dial=dial)
    assert result.ok and result.body == b"ok", result
    assert dialled == ["93.184.216.34", "93.184.216.35"]
    assert time.monotonic() - started < UPPER_BOUND


def test_any_private_dns_answer_refuses_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """One private answer condemns the name: nothing is dialled, not even the public answer."""
    calls = fake_resolver(monkeypatch, lambda n: ["93.184.216.34", "127.0.0.1"])
    dialer = RecordingDial(to=9)  # never used: nothing may be dialled
    result = fetch_one("http://mixed.test/feed", FetchPolicy(), NOW, dial=dialer)
    assert result.error == "blocked_address"
    assert result.detail == "refused address 127.0.0.1 (loopback) for host mixed.test"
    assert calls == ["mixed.test"] and dialer.dialled == []


def test_unresolvable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_resolver(monkeypatch, lambda n: [])
    result = fetch_one("http://nowhere.test/feed", FetchPolicy(), NOW)
    assert result.error == "dns_error" and "nowhere.test" in result.detail


# ---------------------------------------------------------------- HTTP semantics


def test_conditional_get_returns_304(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/feed", headers={"If-None-Match": '"v1"', "If-Modified-Since": "Sat, 28 Feb 2026 10:00:00 GMT"}
    ).respond_with_data("", 304, {"Cache-Control": "max-age=600"})
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver), NOW,
                       etag='"v1"', last_modified="Sat, 28 Feb 2026 10:00:00 GMT")
    assert (result.status, result.error, result.body) == (304, None, None)
    assert result.not_modified and not result.ok
    assert result.etag == '"v1"' and result.last_modified == "Sat, 28 Feb 2026 10:00:00 GMT"
    assert result.max_age == 600


def test_200_returns_body_validators_and_headers(httpserver: HTTPServer) -> None:
    agent = "monitor-test/1 (+https://example.org)"
    modified = "Sun, 01 Mar 2026 11:00:00 GMT"
    httpserver.expect_request("/feed", headers={"User-Agent": agent}).respond_with_data(
        "<rss/>", 200, {"ETag": '"v2"', "Last-Modified": modified,
                        "Cache-Control": "public, max-age=300", "Content-Type": "application/rss+xml"})
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver, user_agent=agent), NOW)
    assert result.ok and result.body == b"<rss/>"
    assert (result.etag, result.last_modified, result.max_age) == ('"v2"', modified, 300)
    assert result.headers["content-type"] == "application/rss+xml"
    assert result.final_url == httpserver.url_for("/feed") and result.permanent_url is None
    assert result.elapsed > 0
    request = httpserver.log[0][0]
    assert "If-None-Match" not in request.headers
    assert "gzip" in request.headers["Accept-Encoding"] and "br" not in request.headers["Accept-Encoding"]


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


BODY = b"<rss><channel><title>News</title></channel></rss>" * 2000


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [
        ("gzip", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("gzip", gzip.compress(BODY[:50_000]) + gzip.compress(BODY[50_000:])),  # two members
        ("deflate", zlib.compress(BODY)),
        ("deflate", _raw_deflate(BODY)),  # servers that forget the zlib wrapper
        ("identity", BODY),
    ],
)
def test_compressed_bodies_are_decoded(httpserver: HTTPServer, encoding: str, payload: bytes) -> None:
    httpserver.expect_request("/feed").respond_with_data(payload, 200, {"Content-Encoding": encoding})
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver), NOW)
    assert result.ok and result.body == BODY
    assert "content-encoding" not in result.headers


@pytest.mark.parametrize(
    ("encoding", "payload", "error"),
    [
        ("br", b"\x1b\x03\x00\xf8", "decode_error"),  # not offered, so not decoded
        ("gzip", b"this is not gzip at all", "decode_error"),
        ("gzip", gzip.compress(BODY)[:-20], "truncated"),  # a whole HTTP body, but the gzip stream is cut
    ],
)
def test_bad_encodings_are_errors(httpserver: HTTPServer, encoding: str, payload: bytes, error: str) -> None:
    httpserver.expect_request("/feed").respond_with_data(payload, 200, {"Content-Encoding": encoding})
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver), NOW)
    assert result.error == error and result.body is None


@pytest.mark.parametrize(("status", "error"), [(500, "http_500"), (404, "http_404"), (410, "http_410"),
                                               (403, "http_403"), (204, "http_204")])
def test_error_statuses(httpserver: HTTPServer, status: int, error: str) -> None:
    httpserver.expect_request("/feed").respond_with_data("oops", status)
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver), NOW)
    assert (result.status, result.error, result.body, result.retry_after) == (status, error, None, None)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", 120.0),
        (503, "7", 7.0),
        (429, format_datetime(NOW + timedelta(minutes=30), usegmt=True), 1800.0),
        (429, format_datetime(NOW - timedelta(minutes=30), usegmt=True), 0.0),  # in the past: never negative
        (503, "999999999", 86400.0),  # capped
        (429, "soon", None),
    ],
)
def test_retry_after(httpserver: HTTPServer, status: int, retry_after: str, expected: float | None) -> None:
    httpserver.expect_request("/feed").respond_with_data("slow down", status, {"Retry-After": retry_after})
    result = fetch_one(httpserver.url_for("/feed"), allowing(httpserver), NOW)
    assert (result.status, result.error, result.retry_after) == (status, f"http_{status}", expected)


def test_no_cookies_carried_between_fetches() -> None:
    seen: list[str | None] = []

    def respond(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.headers.get("Cookie"))
        reply(handler, Set_Cookie="session=abc; Path=/")

    server = LoopbackServer(respond)
    try:
        url = f"http://127.0.0.1:{server.port}/"

        async def twice() -> None:
            async with Fetcher(FetchPolicy(allow_private_addresses=True)) as fetcher:
                for _ in range(2):
                    assert (await fetcher.fetch(FetchJob(1, url), NOW)).ok

        asyncio.run(twice())
    finally:
        server.close()
    assert seen == [None, None]


# ---------------------------------------------------------------- redirects


def test_301_308_chain_reports_permanent_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data("", 301, {"Location": "/older"})
    httpserver.expect_request("/older").respond_with_data("", 308, {"Location": "new"})  # relative
    httpserver.expect_request("/new").respond_with_data("<rss/>")
    result = fetch_one(httpserver.url_for("/old"), allowing(httpserver), NOW)
    assert result.ok and result.body == b"<rss/>"
    assert result.permanent_url == result.final_url == httpserver.url_for("/new")
    assert result.url == httpserver.url_for("/old")


@pytest.mark.parametrize("temporary", [302, 303, 307])
def test_temporary_redirect_in_chain_means_no_permanent_url(httpserver: HTTPServer, temporary: int) -> None:
    httpserver.expect_request("/old").respond_with_data("", 301, {"Location": "/moving"})
    httpserver.expect_request("/moving").respond_with_data("", temporary, {"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data("<rss/>")
    result = fetch_one(httpserver.url_for("/old"), allowing(httpserver), NOW)
    assert result.ok and result.permanent_url is None
    assert result.final_url == httpserver.url_for("/new")


@pytest.mark.parametrize("fragment", ["", "#top"])
def test_redirect_loop(httpserver: HTTPServer, fragment: str) -> None:
    """Caught at the hop that leads back, whether or not the feed's URL has a fragment."""
    httpserver.expect_request("/a").respond_with_data("", 301, {"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", 302, {"Location": httpserver.url_for("/a")})
    result = fetch_one(httpserver.url_for("/a") + fragment, allowing(httpserver), NOW)
    assert result.error == "redirect_loop" and result.permanent_url is None
    assert len(httpserver.log) == 2


@pytest.mark.parametrize(("start", "error"), [(0, "too_many_redirects"), (1, None)])
def test_at_most_five_redirects(httpserver: HTTPServer, start: int, error: str | None) -> None:
    for hop in range(6):
        httpserver.expect_request(f"/r{hop}").respond_with_data("", 302, {"Location": f"/r{hop + 1}"})
    httpserver.expect_request("/r6").respond_with_data("<rss/>")
    result = fetch_one(httpserver.url_for(f"/r{start}"), allowing(httpserver), NOW)
    assert result.error == error
    assert len(httpserver.log) == 6  # six requests either way: five redirects are followed, a sixth is not


# ---------------------------------------------------------------- misbehaving servers


# A deadline test: the limit is small, the server misbehaves far longer than the generous upper
# bound, so a deadline that is not enforced fails the test even on a loaded machine.
DEADLINE = 1.0
UPPER_BOUND = 20.0  # seconds: generous for a loaded machine, far below how long the servers misbehave
CLOCK_SLACK = 0.05  # the loop's clock and time.monotonic may round differently


def test_slow_drip_is_cut_at_the_deadline(raw_server: Server) -> None:
    """A body dripped one byte a second (each read well inside the read timeout) is cut at the
    overall deadline: 100 bytes would take 100 s."""
    def drip(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        while not stop.is_set():
            conn.sendall(b"x")
            stop.wait(0.5)

    server = raw_server(drip)
    started = time.monotonic()
    result = fetch_one(server.url, raw_policy(server, timeout=DEADLINE), NOW)
    took = time.monotonic() - started
    assert result.error == "timeout" and result.status == 200 and result.body is None, result
    assert result.elapsed >= DEADLINE - CLOCK_SLACK
    assert took < UPPER_BOUND


def test_hung_server_times_out(raw_server: Server) -> None:
    """A server that accepts and never answers (for two minutes) is given up at the deadline."""
    server = raw_server(lambda conn, head, stop: stop.wait(120))
    started = time.monotonic()
    result = fetch_one(server.url, raw_policy(server, timeout=DEADLINE), NOW)
    took = time.monotonic() - started
    assert result.error == "timeout" and result.status is None
    assert result.elapsed >= DEADLINE - CLOCK_SLACK
    assert took < UPPER_BOUND


def test_connection_reset_mid_body(raw_server: Server) -> None:
    def reset(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST

    server = raw_server(reset)
    result = fetch_one(server.url, raw_policy(server), NOW)
    assert result.error == "reset" and result.body is None and not result.ok


def test_body_shorter_than_declared_is_truncated(raw_server: Server) -> None:
    server = raw_server(lambda conn, head, stop: conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<rss><channel>"))
    result = fetch_one(server.url, raw_policy(server), NOW)
    assert result.error == "truncated" and result.body is None


def test_refused_connection(raw_server: Server) -> None:
    server = raw_server(lambda conn, head, stop: None)
    server.close()  # the port is now closed
    result = fetch_one(server.url, raw_policy(server), NOW)
    assert result.error == "connect_error"


def test_declared_length_over_cap_is_refused_unread(raw_server: Server) -> None:
    chunk = b"a" * 65536
    server = raw_server(lambda conn, head, stop: stream(
        conn, b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n", chunk, 200_000_000, stop))
    result = fetch_one(server.url, raw_policy(server), NOW)
    assert result.error == "too_large" and "content-length" in result.detail
    assert result.status == 200 and result.body is None


def measure_peak(fetch: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = fetch()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_200_mb_body_stops_at_cap_without_buffering(raw_server: Server) -> None:
    """The fetch stops reading at the cap: little memory, and the server got to send only a small
    part of the 200 MB (the cap plus what socket buffers hold) before the fetch returned."""
    chunk = b"a" * 65536
    sent: list[int] = []  # bytes the server handed to the socket, at the latest write that succeeded

    def endless(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")  # no length: ends with the connection
        total = 0
        while total < 200_000_000 and not stop.is_set():
            conn.sendall(chunk)
            total += len(chunk)
            sent.append(total)

    server = raw_server(endless)
    result, peak = measure_peak(lambda: fetch_one(server.url, raw_policy(server, max_bytes=2_000_000), NOW))
    sent_when_done = sent[-1]
    assert result.error == "too_large" and result.body is None  # type: ignore[attr-defined]
    assert peak < 8_000_000, peak
    assert sent_when_done < 40_000_000, sent_when_done


@pytest.fixture(scope="session")
def gzip_bomb() -> bytes:
    """1 GiB of zeros as one gzip member of about 1 MB, built without compressing 1 GiB."""
    block = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes every time
    end = compressor.flush()
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + first + repeat * 1023 + end + struct.pack("<II", crc, (1 << 30) & 0xFFFFFFFF)


def test_gzip_bomb_builder_is_valid_gzip() -> None:
    block = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    crc = zlib.crc32(block, zlib.crc32(block, zlib.crc32(block)))
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    small = header + first + repeat * 2 + end + struct.pack("<II", crc, 3 << 20)
    assert gzip.decompress(small) == bytes(3 << 20)


def test_gzip_bomb_is_too_large_and_costs_little_memory(raw_server: Server, gzip_bomb: bytes) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(gzip_bomb)}\r\n\r\n".encode()
    server = raw_server(lambda conn, _head, stop: conn.sendall(head + gzip_bomb))
    result, peak = measure_peak(lambda: fetch_one(server.url, raw_policy(server, max_bytes=2_000_000), NOW))
    assert len(gzip_bomb) < 1_100_000
    assert result.error == "too_large" and result.body is None  # type: ignore[attr-defined]
    # The capped body plus small steps; inflating whole 64 KiB reads would take 64 MiB at once.
    assert peak < 8_000_000, peak


def test_decoded_body_just_under_cap_is_kept(raw_server: Server) -> None:
    payload = gzip.compress(bytes(5_000_000))
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
    server = raw_server(lambda conn, _head, stop: conn.sendall(head + payload))
    assert fetch_one(server.url, raw_policy(server, max_bytes=5_000_000), NOW).body == bytes(5_000_000)
    assert fetch_one(server.url, raw_policy(server, max_bytes=4_999_999), NOW).error == "too_large"


# ---------------------------------------------------------------- concurrency


@pytest.mark.parametrize(
    ("hosts", "per_host", "max_connections", "expected"),
    [(["127.0.0.1"], 2, 20, 2),
     (["127.0.0.1", "localhost"], 2, 20, 4),  # the limit is per host name
     (["127.0.0.1", "localhost"], 2, 3, 3)],  # and the global bound holds over all hosts
)
def test_concurrency_limits(hosts: list[str], per_host: int, max_connections: int, expected: int) -> None:
    """The limit is reached (every request waits until `expected` are in flight at once) and never
    exceeded (the first full batch is held a while longer so an over-limit request shows up)."""
    limit_reached, batch_released = threading.Event(), threading.Event()

    def respond(handler: BaseHTTPRequestHandler) -> None:
        with server.lock:
            if server.in_flight >= expected:
                limit_reached.set()
        limit_reached.wait(60)
        if not batch_released.is_set():
            batch_released.wait(0.3)  # not a timing assertion: a window for a request over the limit
            batch_released.set()
        reply(handler)

    server = LoopbackServer(respond)
    try:
        jobs = [FetchJob(i, f"http://{hosts[i % len(hosts)]}:{server.port}/{i}") for i in range(16)]
        policy = FetchPolicy(allow_private_addresses=True, per_host=per_host, max_connections=max_connections,
                             timeout=120)
        results: dict[object, object] = {}
        fetch_all(jobs, policy, NOW, lambda job, result: results.__setitem__(job.key, result))
    finally:
        server.close()
    assert len(results) == 16 and all(r.ok for r in results.values())  # type: ignore[attr-defined]
    assert limit_reached.is_set()
    assert server.max_in_flight == expected


def test_results_arrive_as_they_complete_in_the_calling_thread() -> None:
    """The slow response is sent only once the fast result has been delivered: results that waited
    for each other (or for job order) would never get there."""
    fast_delivered = threading.Event()
    slow_waited: list[bool] = []

    def respond(handler: BaseHTTPRequestHandler) -> None:
        if "slow" in handler.path:
            slow_waited.append(fast_delivered.wait(60))
        reply(handler)

    server = LoopbackServer(respond)
    order: list[object] = []
    threads: set[int] = set()

    def on_result(job: FetchJob, result: object) -> None:
        order.append(job.key)
        threads.add(threading.get_ident())
        if job.key == "fast":
            fast_delivered.set()

    try:
        jobs = [FetchJob("slow", f"http://127.0.0.1:{server.port}/slow"),
                FetchJob("fast", f"http://127.0.0.1:{server.port}/fast"),
                FetchJob("bad", "ftp://example.org/")]
        fetch_all(jobs, FetchPolicy(allow_private_addresses=True, timeout=120), NOW, on_result)
    finally:
        server.close()
    assert order == ["bad", "fast", "slow"]
    assert slow_waited == [True]
    assert threads == {threading.get_ident()}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_thousand_jobs_on_one_host_within_few_descriptors() -> None:
    server = LoopbackServer(lambda handler: reply(handler, body=b"<rss/>"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    results: list[object] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 64, hard))  # far fewer than 1,000 feeds
        jobs = [FetchJob(i, f"http://127.0.0.1:{server.port}/feed/{i}") for i in range(1000)]
        fetch_all(jobs, FetchPolicy(allow_private_addresses=True), NOW,
                  lambda job, result: results.append(result))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        server.close()
    assert len(results) == 1000
    assert [r.error for r in results if not r.ok] == []  # type: ignore[attr-defined]
    assert len(server.requests) == 1000 and server.max_in_flight <= 2


class _ImportSpy:
    """A finder that records every import that reaches the import system (none is found here)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.names.append(name)


def test_fetching_imports_nothing_per_request() -> None:
    """A module that is not installed is searched for on sys.path at every import: httpcore (the
    fetcher's pool once) imported sniffio on every request, a quarter of a 304-only poll's time."""
    server = LoopbackServer(lambda handler: reply(handler, body=b"<rss/>"))
    policy = FetchPolicy(allow_hosts=(f"127.0.0.1:{server.port}",))
    results: list[object] = []
    spy = _ImportSpy()
    try:
        jobs = [FetchJob(i, server.url(f"/feed/{i}")) for i in range(40)]
        # the first requests make the imports a module makes lazily
        fetch_all(jobs[:5], policy, NOW, lambda job, result: results.append(result))
        sys.meta_path.insert(0, spy)
        try:
            fetch_all(jobs[5:], policy, NOW, lambda job, result: results.append(result))
        finally:
            sys.meta_path.remove(spy)
    finally:
        server.close()
    assert [r.status for r in results] == [200] * 40  # type: ignore[attr-defined]
    assert spy.names == []


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA and a certificate for the name "localhost" only."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *key, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "leaf.ext").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid,issuer\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return d


def test_https_verifies_the_url_name(tls_files: Path) -> None:
    """The guard resolves the name itself, yet TLS still sends SNI and checks the cert for that name."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    names: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_ctx)
    server.expect_request("/feed").respond_with_data("<rss/>")
    server.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
        port = server.port
        private_ok = FetchPolicy(allow_private_addresses=True)
        good = fetch_one(f"https://localhost:{port}/feed", FetchPolicy(allow_hosts=(f"localhost:{port}",)),
                         NOW, verify=client_ctx)
        wrong_name = fetch_one(f"https://127.0.0.1:{port}/feed", private_ok, NOW, verify=client_ctx)
        untrusted = fetch_one(f"https://localhost:{port}/feed", private_ok, NOW)
    finally:
        server.stop()
    assert good.ok and good.body == b"<rss/>"
    assert names[0] == "localhost"
    assert wrong_name.error == "tls_error" and "127.0.0.1" in wrong_name.detail
    assert untrusted.error == "tls_error"


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 0 ", 0.0), ("-5", None), ("", None), (None, None), ("1.5", None),
     ("Sun, 01 Mar 2026 12:10:00 GMT", 600.0), ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
     ("Wed, 01 Apr 2026 12:00:00 GMT", 3600.0), ("garbage", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW, cap=3600.0) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("max-age=60", 60.0), ("public, MAX-AGE=\"30\"", 30.0), ("no-cache", None), ("max-age=-1", None),
     ("s-maxage=10", None), (None, None), ("max-age=abc", None)],
)
def test_parse_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected


def test_policy_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="allow_hosts entry"):
        FetchPolicy(allow_hosts=("[::1",))
    with pytest.raises(ValueError, match="per_host"):
        FetchPolicy(per_host=0)
    assert FetchPolicy(allow_hosts=["a:1"]).allow_hosts == ("a:1",)  # type: ignore[arg-type]
    defaults = FetchPolicy()
    assert defaults.max_bytes == 10_000_000 and defaults.max_redirects == 5
    assert defaults.per_host == 2 and not defaults.allow_private_addresses


def test_304s_keep_the_connection_alive() -> None:
    """A 304 is read to its end so its connection goes back to the pool: 1,000 feeds, not 1,000 handshakes."""
    srv, peers = LoopbackServer(), []

    def not_modified(h) -> None:
        peers.append(h.client_address)
        h.send_response(304)
        h.send_header("ETag", '"v1"')
        h.end_headers()

    for i in range(5):
        srv.routes[f"/f{i}"] = not_modified
    results: list = []
    try:
        jobs = [FetchJob(key=i, url=srv.url(f"/f{i}"), etag='"v1"') for i in range(5)]
        fetch_all(jobs, FetchPolicy(per_host=1, allow_hosts=(f"127.0.0.1:{srv.port}",)), NOW,
                  lambda _job, result: results.append(result))
    finally:
        srv.close()
    assert [r.status for r in results] == [304] * 5
    assert len(set(peers)) == 1
