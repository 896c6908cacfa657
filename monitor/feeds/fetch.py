"""Fetching feeds over HTTP: the only module of `monitor` that talks HTTP (its connections
are monitor.feeds.http1's).

Every fetch returns a FetchResult and never raises: one feed's failure is a value the
caller records, not an exception that stops the others. `FetchResult.error` codes (members
of monitor.errors.FailureReason, but for http_NNN):

    bad_url             the URL cannot be parsed or has no host
    bad_scheme          not http or https (file:, javascript:, ftp:...), also on a redirect
    blocked_address     the address guard refused the destination (see monitor.feeds.guard)
    dns_error           the host name does not resolve
    connect_error       the connection was refused or the network is unreachable
    tls_error           TLS handshake or certificate verification failed
    timeout             the overall deadline (connect to last byte) or connect timeout passed
    reset               the connection broke while sending or receiving
    truncated           the body ended before its declared length or compressed end
    protocol_error      the server spoke broken HTTP
    decode_error        bad gzip/deflate data, or a content-encoding we did not offer
    too_large           the decoded body is over max_bytes
    redirect_loop       a redirect led back to a URL already visited in this fetch
    too_many_redirects  more than max_redirects redirects
    http_NNN            the final status was neither 200 nor 304 (http_404, http_410, http_429...)
    error               anything unexpected (the detail names the exception)

`status` is the last HTTP status seen, None if no response arrived. A 304 has no error
and no body, and carries the job's validators unless the server sent new ones; a 200
carries the decoded body and its validators; 429 and 503 carry `retry_after` too (the
caller decides they do not count as failures). `permanent_url` is set only when every
hop was a 301 or 308 and the final URL answered.

Why it is built this way:
- Requests go over monitor.feeds.http1 (httptools' parser on asyncio's streams, a keep-alive
  pool), not httpx: see that module for what httpx's layers cost an all-304 poll.
- Redirects are followed here, so each hop passes the guard first.
- DNS is resolved by a guarded connect inside the connection pool: it checks every
  address the resolver returns and connects to one of those, so a name cannot pass the
  check and then resolve elsewhere (DNS rebinding). The URL keeps its host name, so the
  Host header, TLS SNI, certificate verification and connection reuse work as usual;
  rewriting URLs to addresses would share pooled TLS connections between names.
- Content-Encoding is decoded here with a bounded output per step: a decoder that inflates a
  whole network read at once (httpx's does) turns 64 KiB of a gzip bomb into 64 MiB in one call.
  Only gzip and deflate are offered; brotli has no portable way to bound its output.
- One deadline (asyncio.timeout) covers connect, redirects and the last body byte, so a
  server that drips one byte a second cannot hold a worker past `timeout`.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urldefrag, urljoin, urlsplit

from monitor import __version__
from monitor.errors import FailureReason, http_reason
from monitor.feeds import guard, http1
from monitor.feeds.http1 import Failure  # an error code already decided; caught in Fetcher.fetch
from monitor.types import FetchResult

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate"
_STEP = 64 * 1024  # most decoded bytes produced per inflate call


@dataclass(frozen=True)
class FetchPolicy:
    """How fetches behave; built from the [polling] configuration."""

    user_agent: str = f"monitor/{__version__}"
    timeout: float = 20.0  # overall deadline per fetch, connect to last byte, all redirects
    connect_timeout: float = 10.0
    max_bytes: int = 10_000_000  # decoded body size cap
    max_redirects: int = 5
    per_host: int = 2  # concurrent fetches per hostname:port
    max_connections: int = 20  # concurrent fetches overall (and the pool size)
    allow_private_addresses: bool = False
    allow_hosts: tuple[str, ...] = ()  # "host", "host:port", "[v6]:port": exempt from the address check
    max_retry_after: float = 86400.0  # cap for Retry-After, seconds

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        guard.parse_allow_hosts(self.allow_hosts)  # raises ValueError naming a bad entry
        for name in ("timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_bytes", "per_host", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_redirects < 0 or self.max_retry_after < 0:
            raise ValueError("max_redirects and max_retry_after must not be negative")


@dataclass(frozen=True)
class FetchJob:
    """One URL to fetch, with the validators of its last 200 for a conditional GET."""

    key: object  # the caller's id for the job, e.g. the feed id; returned untouched
    url: str
    etag: str | None = None
    last_modified: str | None = None


Dial = Callable[[str, int], Awaitable[http1.Streams]]  # (address, port) -> an open TCP connection


class _GuardedConnect:
    """Resolve, check every address, then dial a checked address (no second lookup).

    `dial` opens the connections to the checked addresses: asyncio's open_connection, unless
    a test passes one that records the address it is asked to dial (and connects to a
    loopback server instead), which proves the pinning without sending a packet off the
    machine.
    """

    def __init__(self, allow_private: bool, allowed: guard.AllowList, dial: Dial | None = None) -> None:
        self._dial: Dial = dial or asyncio.open_connection  # (asyncio sets TCP_NODELAY)
        self._allow_private = allow_private
        self._allowed = allowed

    async def __call__(self, host: str, port: int, timeout: float) -> http1.Streams:
        """Each address in turn, each within `timeout`: an address that is refused, unreachable
        or silent (an IPv6 answer without a route to it) leaves the next one its full time."""
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            raise Failure(FailureReason.TIMEOUT, f"cannot resolve {host} within {timeout:g} s") from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(timeout):
                    return await self._dial(address, port)
            except (OSError, TimeoutError) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _resolve(self, host: str, port: int) -> list[str]:
        literal = guard.parse_host(host)
        if literal is not None:  # an address in the URL: nothing to look up
            answers = [str(literal)]
        else:
            try:
                # as bytes: given a str, the resolver imports and runs Python's IDNA codec even
                # for an ASCII name
                name = host.encode("ascii") if host.isascii() else host.encode("idna")
                infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise Failure(FailureReason.DNS_ERROR, f"cannot resolve {host}: {exc}") from None
            answers = [str(sockaddr[0]) for *_, sockaddr in infos]
        addresses: list[str] = []
        for text in answers:
            refusal = guard.check_address(host, port, ipaddress.ip_address(text),
                                          allow_private=self._allow_private, allowed=self._allowed)
            if refusal is not None:  # one bad answer condemns the name: no picking the good ones
                raise Failure(refusal.code, refusal.detail)
            if text not in addresses:
                addresses.append(text)
        if not addresses:
            raise Failure(FailureReason.DNS_ERROR, f"no address for {host}")
        return addresses


def _refuse_other_schemes(location: str) -> None:
    """Refuse a redirect to javascript:, file:... before its URL is joined to the request's
    (joined, some of them would fail later with a vague error; this names the real problem)."""
    scheme = urlsplit(location).scheme.lower()
    if scheme and scheme not in guard.ALLOWED_SCHEMES:
        raise Failure(FailureReason.BAD_SCHEME, f"redirect to a {scheme} URL refused")


class _Inflater:
    """Streaming gzip/deflate decoder that never produces more than _STEP bytes per call."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._obj = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._started = False  # deflate: zlib-wrapped or raw, decided on the first bytes
        self._members = 0  # complete gzip members seen; bytes after one may be junk
        self._output_since_end = 0
        self._ignore_rest = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data and not self._ignore_rest:
            if self._obj.eof:  # another gzip member (valid), or junk after the end
                if not self._gzip:
                    return
                self._obj = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                out = self._obj.decompress(data, _STEP)
            except zlib.error as exc:
                if not self._gzip and not self._started:
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)  # servers that send raw deflate
                    self._started = True
                    continue
                if self._members:
                    self._ignore_rest = True
                    return
                raise Failure(FailureReason.DECODE_ERROR, f"bad compressed data: {exc}") from None
            self._started = True
            self._output_since_end += len(out)
            if self._obj.eof:
                self._members += 1
                self._output_since_end = 0
                data = self._obj.unused_data
            else:
                data = self._obj.unconsumed_tail
            if out:
                yield out

    def finish(self) -> Iterator[bytes]:
        if self._members and not self._output_since_end:
            return  # what followed a complete member was padding, not a cut-off member
        while not self._obj.eof and not self._ignore_rest:
            out = self._obj.decompress(b"", _STEP)  # output still held back by the step limit
            if not out:
                raise Failure(FailureReason.TRUNCATED, "compressed body ended early")
            yield out


async def _read_body(response: http1.Response, max_bytes: int) -> bytes:
    """The decoded body, or Failure once it passes max_bytes: never all in memory first."""
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
        raise Failure(FailureReason.DECODE_ERROR, f"unsupported content-encoding {', '.join(codings)}")
    inflater = _Inflater(codings[0]) if codings else None
    declared = response.headers.get("content-length", "")
    if not codings and declared.isdigit() and int(declared) > max_bytes:
        raise Failure(FailureReason.TOO_LARGE, f"content-length {declared} is over {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0

    def take(pieces: Iterable[bytes]) -> None:
        nonlocal size
        for piece in pieces:
            size += len(piece)
            if size > max_bytes:
                raise Failure(FailureReason.TOO_LARGE, f"body is over {max_bytes} bytes")
            chunks.append(piece)

    async for raw in response.chunks():
        take(inflater.feed(raw) if inflater else (raw,))
    if inflater:
        take(inflater.finish())
    return b"".join(chunks)


_DRAIN_MAX = 64 * 1024  # an unwanted body up to this size is read so that its connection is reused


async def _drain(response: http1.Response) -> None:
    """Read a small unwanted body (304, redirect, error page) to its end.

    The pool takes a connection back only when its response was read to the
    end; one closed unread is dropped, so without this every 304 costs a new TCP (and TLS)
    connection. A body over _DRAIN_MAX is not worth reading: that connection is dropped.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _DRAIN_MAX:
        return
    size = 0
    async for chunk in response.chunks():
        size += len(chunk)
        if size > _DRAIN_MAX:
            return


def parse_retry_after(value: str | None, now: datetime, cap: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), in [0, cap]."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap)


def parse_max_age(value: str | None) -> float | None:
    """max-age seconds from a Cache-Control value, or None."""
    for directive in (value or "").split(","):
        name, _, argument = directive.partition("=")
        if name.strip().lower() == "max-age":
            argument = argument.strip().strip('"')
            return float(argument) if argument.isdigit() else None
    return None


def _classify(exc: Exception, policy: FetchPolicy) -> tuple[FailureReason, str]:
    """Map an exception to (error code, detail)."""
    if isinstance(exc, Failure):
        return exc.code, exc.detail
    if isinstance(exc, TimeoutError):
        return FailureReason.TIMEOUT, f"no complete response within {policy.timeout:g} s"
    return FailureReason.ERROR, f"{type(exc).__name__}: {exc}"


@dataclass
class _Progress:
    """What is known so far, so a failure still reports the last URL and status."""

    url: str
    started: float  # time.monotonic() when the fetch had its slots: its `elapsed` counts from here
    status: int | None = None
    permanent: bool = True
    redirects: int = 0
    seen: set[str] = field(default_factory=set)


class Fetcher:
    """Fetches feeds over one connection pool; use as `async with Fetcher(policy) as f`.

    Concurrency is bounded per host (policy.per_host, keyed by the job URL's hostname:port)
    and overall (policy.max_connections); a fetch's deadline starts once it has its slots.

    What this does itself: redirects, each hop checked by the guard; decoding bodies with
    bounded output. What it never does: proxies from the environment, and cookies, so one
    feed's cookies never follow it into other fetches.
    """

    def __init__(self, policy: FetchPolicy, *, verify: ssl.SSLContext | bool = True,
                 dial: Dial | None = None) -> None:
        self.policy = policy
        self._verify = verify  # an SSLContext lets tests trust their own certificate authority
        self._dial = dial  # tests only: see _GuardedConnect
        self._allowed = guard.parse_allow_hosts(policy.allow_hosts)
        self._pool: http1.Pool | None = None
        self._headers = [("User-Agent", policy.user_agent), ("Accept", ACCEPT),
                         ("Accept-Encoding", ACCEPT_ENCODING)]
        self._slots = asyncio.Semaphore(policy.max_connections)
        self._host_slots: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        p = self.policy
        connect = _GuardedConnect(p.allow_private_addresses, self._allowed, self._dial)
        self._pool = http1.Pool(connect, lambda: http1.client_context(self._verify),
                                connect_timeout=p.connect_timeout, max_idle=p.max_connections)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def fetch(self, job: FetchJob, now: datetime) -> FetchResult:
        """Fetch one job; `now` dates Retry-After. Never raises (except on cancellation)."""
        refusal = guard.check_url(job.url)
        if refusal is not None:
            return FetchResult(url=job.url, status=None, error=refusal.code, detail=refusal.detail)
        host, port = guard.url_host_port(job.url)
        host_slots = self._host_slots.get(f"{host}:{port}")
        if host_slots is None:
            host_slots = self._host_slots[f"{host}:{port}"] = asyncio.Semaphore(self.policy.per_host)
        async with host_slots, self._slots:
            progress = _Progress(url=job.url, started=time.monotonic())
            try:
                async with asyncio.timeout(self.policy.timeout):
                    result = await self._follow(job, now, progress)
            except Exception as exc:
                code, detail = _classify(exc, self.policy)
                result = FetchResult(url=job.url, status=progress.status, final_url=progress.url, error=code,
                                     detail=detail, elapsed=time.monotonic() - progress.started)
        log.debug("fetch url=%s status=%s error=%s elapsed=%.3f", job.url, result.status, result.error,
                  result.elapsed)
        return result

    async def _follow(self, job: FetchJob, now: datetime, progress: _Progress) -> FetchResult:
        """Request, following redirects by hand so every hop passes the guard first."""
        pool = self._pool
        assert pool is not None, "use Fetcher as an async context manager"
        headers = list(self._headers)
        if job.etag:
            headers.append(("If-None-Match", job.etag))
        if job.last_modified:
            headers.append(("If-Modified-Since", job.last_modified))
        url = job.url
        while True:
            # the job's own URL was checked by `fetch`; a redirect's target is checked here
            refusal = (guard.check_url(url) if progress.redirects else None) or guard.check_literal_host(
                *guard.url_host_port(url), allow_private=self.policy.allow_private_addresses,
                allowed=self._allowed)
            if refusal is not None:
                raise Failure(refusal.code, refusal.detail)
            progress.url, progress.status = url, None
            response = await pool.get(url, headers)
            try:
                progress.status = response.status
                progress.seen.add(urldefrag(url).url)  # as redirect targets are compared
                location = response.headers.get("location", "").strip()
                if response.status in REDIRECT_STATUSES and location:
                    _refuse_other_schemes(location)
                    target = urldefrag(urljoin(url, location)).url
                    if target in progress.seen:
                        raise Failure(FailureReason.REDIRECT_LOOP, f"{url} redirects back to {target}")
                    limit = self.policy.max_redirects
                    if progress.redirects >= limit:
                        raise Failure(FailureReason.TOO_MANY_REDIRECTS, f"more than {limit} redirects")
                    progress.redirects += 1
                    progress.permanent &= response.status in PERMANENT_REDIRECTS
                    await _drain(response)
                    url = target
                    continue
                body = None
                if response.status == 200:
                    body = await _read_body(response, self.policy.max_bytes)
                else:
                    await _drain(response)
                return self._result(job, url, response, body, now, progress)
            finally:
                await response.aclose()  # back to the pool when read to the end, else closed

    def _result(self, job: FetchJob, here: str, response: http1.Response, body: bytes | None, now: datetime,
                progress: _Progress) -> FetchResult:
        status = response.status
        headers = response.headers
        moved = here if progress.redirects and progress.permanent else None
        elapsed = time.monotonic() - progress.started
        if status == 200:
            if "content-encoding" in headers:  # they describe the wire, not the decoded body
                headers.pop("content-encoding")
                headers.pop("content-length", None)
            return FetchResult(url=job.url, status=status, body=body, headers=headers,
                               etag=headers.get("etag"), last_modified=headers.get("last-modified"),
                               permanent_url=moved, final_url=here,
                               max_age=parse_max_age(headers.get("cache-control")), elapsed=elapsed)
        if status == 304:  # the stored validators stay valid unless the server sent new ones
            return FetchResult(url=job.url, status=status, headers=headers,
                               etag=headers.get("etag") or job.etag,
                               last_modified=headers.get("last-modified") or job.last_modified,
                               permanent_url=moved, final_url=here,
                               max_age=parse_max_age(headers.get("cache-control")), elapsed=elapsed)
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(headers.get("retry-after"), now, self.policy.max_retry_after)
        return FetchResult(url=job.url, status=status, headers=headers, permanent_url=moved, final_url=here,
                           retry_after=retry_after, error=http_reason(status),
                           detail=f"HTTP {status} {response.reason}".strip(), elapsed=elapsed)

    async def fetch_many(
        self, jobs: Iterable[FetchJob], now: datetime
    ) -> AsyncGenerator[tuple[FetchJob, FetchResult], None]:
        """Fetch jobs concurrently, yielding (job, result) as each completes.

        Close the iterator (contextlib.aclosing) when stopping early: that cancels the rest.
        """
        queue: asyncio.Queue[tuple[FetchJob, FetchResult]] = asyncio.Queue()

        async def run(job: FetchJob) -> None:
            try:
                result = await self.fetch(job, now)
            except Exception as exc:  # a bug must not leave the consumer waiting forever
                result = FetchResult(url=job.url, status=None, error=FailureReason.ERROR, detail=repr(exc))
            queue.put_nowait((job, result))

        tasks = [asyncio.create_task(run(job)) for job in jobs]
        try:
            for _ in tasks:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def fetch_all(
    jobs: Iterable[FetchJob],
    policy: FetchPolicy,
    now: datetime,
    on_result: Callable[[FetchJob, FetchResult], None],
    *,
    verify: ssl.SSLContext | bool = True,
    dial: Dial | None = None,
) -> None:
    """Fetch all jobs on a fresh event loop; `on_result` runs in the calling thread as each completes.

    An exception from `on_result` stops the run and propagates. `dial` is for tests (see
    _GuardedConnect).
    """

    async def main() -> None:
        async with (
            Fetcher(policy, verify=verify, dial=dial) as fetcher,
            contextlib.aclosing(fetcher.fetch_many(jobs, now)) as results,
        ):
            async for job, result in results:
                on_result(job, result)

    asyncio.run(main())


def fetch_one(
    url: str,
    policy: FetchPolicy | None = None,
    now: datetime | None = None,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    verify: ssl.SSLContext | bool = True,
    dial: Dial | None = None,
) -> FetchResult:
    """Fetch one URL synchronously (CLI and tests)."""
    results: list[FetchResult] = []
    job = FetchJob(key=url, url=url, etag=etag, last_modified=last_modified)
    fetch_all([job], policy or FetchPolicy(), now or datetime.now(UTC),
              lambda _job, result: results.append(result), verify=verify, dial=dial)
    return results[0]
