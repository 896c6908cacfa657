"""Read entries for clustering ahead of the decisions, in other processes.

Clustering decides entries one at a time, in published order, on one core. Reading an
entry's text (monitor.reading: folding, sentences, tokens, terms, sentence keys) depends
on the entry alone and is about a third of the work, so on a machine with more than one
core it is done by worker processes a few batches ahead of the decisions. Readings come
back in the order of the entries and never more than READ_AHEAD batches ahead, so memory
stays bounded however many entries are clustered (a recluster of the whole store).

Small runs (a daemon cycle's new entries) are read in this process: starting workers
would cost more than it saves. A failing worker never fails clustering: its batch, and
every later one, is read here instead.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import TypeVar

from .logs import event, get_logger
from .parsepool import FORKSERVER_PRELOAD, default_context
from .reading import Reading, read
from .types import ClusterDoc

log = get_logger("cluster")

MIN_PARALLEL = 2000  # entries: below this, reading here is faster than starting workers
BATCH = 250  # entries per task: large enough that passing them costs little per entry

T = TypeVar("T")


def _read_batch(batch: list[tuple[str, str, str]]) -> list[Reading]:
    """Readings to send back. Sentences go as plain tuples (the same fields, in order): a
    named tuple is rebuilt through a Python call on arrival, which made unpickling 4x slower."""
    return [r._replace(sentences=tuple(map(tuple, r.sentences)))
            for r in (read(title, text, outlet) for title, text, outlet in batch)]


def _reader_main(conn: Connection) -> None:
    """Worker loop: a batch of (title, text, outlet) in, its readings out; None or a closed pipe ends it.

    One pipe per worker, holding only this end: when the parent dies (even by SIGKILL)
    the pipe closes and recv() raises, so a worker never outlives the process it serves.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            batch = conn.recv()
            if batch is None:
                return
            conn.send(_read_batch(batch))
        except (EOFError, OSError):
            return


def _fields(doc: ClusterDoc) -> tuple[str, str, str]:
    return doc.title, doc.text, doc.outlet


def workers_available() -> int:
    """Worker processes worth starting: the cores beside the one that decides (at most two)."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


class _Workers:
    """Reader processes, each with its own pipe and at most one batch in flight.

    One batch at a time per worker keeps the two ends from ever both blocking on a full
    pipe (the worker sends only after it has received the whole batch).
    """

    def __init__(self, n: int) -> None:
        context = multiprocessing.get_context(default_context())
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(FORKSERVER_PRELOAD)
        self.procs: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        for _ in range(n):
            parent, child = context.Pipe(duplex=True)
            proc = context.Process(target=_reader_main, args=(child,), name="monitor-read", daemon=True)
            proc.start()
            child.close()
            self.procs.append((proc, parent))

    def close(self) -> None:
        for proc, conn in self.procs:
            try:
                conn.send(None)
            except (EOFError, OSError):
                pass
        for proc, conn in self.procs:
            proc.join(timeout=1.0)
            if proc.is_alive():  # still reading a batch nobody will use
                proc.kill()
                proc.join(timeout=2.0)
            conn.close()


def read_ahead(items: Iterable[T], expected: int, doc_of: Callable[[T], ClusterDoc] = lambda item: item, *,
               workers: int | None = None) -> Iterator[tuple[T, Reading]]:
    """Each item with the reading of its document (`doc_of(item)`), in order.

    `expected` is how many items there are (or about): workers start only for
    MIN_PARALLEL or more. `workers` overrides workers_available() (0: read here).
    """
    n_workers = workers_available() if workers is None else workers
    if n_workers < 1 or expected < MIN_PARALLEL:
        for item in items:
            yield item, read(*_fields(doc_of(item)))
        return
    pool = _Workers(n_workers)
    source = iter(items)
    in_flight: deque[tuple[list[T], Connection | None]] = deque()  # in order; None: read here
    idle = deque(conn for _, conn in pool.procs)
    broken = False

    def send_next() -> bool:
        batch = [item for _, item in zip(range(BATCH), source)]
        if not batch:
            return False
        conn = None if broken or not idle else idle.popleft()
        if conn is not None:
            try:
                conn.send([_fields(doc_of(i)) for i in batch])
            except (EOFError, OSError):
                conn = None
        in_flight.append((batch, conn))
        return True

    try:
        while len(idle) and send_next():
            pass
        while in_flight:
            batch, conn = in_flight.popleft()
            readings = None
            if conn is not None:
                try:
                    readings = conn.recv()
                    idle.append(conn)
                except (EOFError, OSError) as exc:  # a dead worker: read here from now on
                    if not broken:
                        event(log, "read_pool_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
                    broken = True
            if readings is None:
                readings = _read_batch([_fields(doc_of(i)) for i in batch])
            if not in_flight or idle:
                send_next()  # the next batch is read while this one is decided on
            yield from zip(batch, readings)
    finally:
        pool.close()
