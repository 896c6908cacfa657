"""TCP and TLS connections for httpcore's connection pool, on asyncio's own streams.

httpcore's default asynchronous backend goes through AnyIO, which opens a cancel scope for
every read and write (`anyio.fail_after`). Fetching is one event loop on its own thread,
so that layer buys nothing here, and it costs about a quarter of the CPU of a conditional
GET answered 304 (658 of them over loopback: 1.01 s of CPU through AnyIO, 0.74 s through
this; medians of 7 alternating runs). This backend keeps httpcore's contract: its
timeouts (asyncio.timeout) and its exceptions (ConnectError, ConnectTimeout, ReadError,
ReadTimeout, WriteError, WriteTimeout, each chained to the error it maps, so that a
certificate failure can still be told from a refused connection).

Only monitor.feeds.fetch uses it, inside the address guard, which resolves host names and
checks every address before connect_tcp is asked to dial one.
"""
from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: an asyncio stream reader and writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout(f"no data within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ReadError(f"{type(exc).__name__}: {exc}") from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"could not send within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.WriteError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Close at once, as AnyIO's stream does: no waiting on the peer (a TLS close_notify
        from a server that never answers it would hold the fetch)."""
        transport = self._writer.transport
        if transport.is_closing():
            return
        transport.close()
        try:
            await asyncio.sleep(0)  # lets a plain socket finish closing in the usual way
        finally:  # even when the fetch is being cancelled
            transport.abort()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            await self.aclose()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:  # ssl.SSLError: certificate and handshake failures
            await self.aclose()
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # the pool drops a kept-alive connection the server closed
            return _readable(self._writer.get_extra_info("socket"))
        name = _EXTRA_INFO.get(info)
        return None if name is None else self._writer.get_extra_info(name)


# httpcore's names for a connection's details -> asyncio's
_EXTRA_INFO = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
               "socket": "socket"}


def _readable(sock: socket.socket | None) -> bool:
    """Whether an idle connection has something to read: data nobody asked for, or the
    server's close. Either way it is not fit for another request (True when it has no socket)."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Dials with asyncio.open_connection; see the module's docstring."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
