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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

from .logs import event, get_logger
from .parsepool import FORKSERVER_PRELOAD, default_context
from .reading import Reading, read
from .types import ClusterDoc

log = get_logger("cluster")

MIN_PARALLEL = 2000  # entries: below this, reading here is faster than starting workers
BATCH = 250  # entries per task: large enough that passing them costs little per entry
READ_AHEAD = 6  # batches in flight at most

T = TypeVar("T")


def _read_batch(batch: list[tuple[str, str, str]]) -> list[Reading]:
    return [read(title, text, outlet) for title, text, outlet in batch]


def _fields(doc: ClusterDoc) -> tuple[str, str, str]:
    return doc.title, doc.text, doc.outlet


def workers_available() -> int:
    """Worker processes worth starting: the cores beside the one that decides (at most two)."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


def read_ahead(items: Iterable[T], expected: int, doc_of: Callable[[T], ClusterDoc] = lambda item: item, *,
               workers: int | None = None) -> Iterator[tuple[T, Reading]]:
    """Each item with the reading of its document (`doc_of(item)`), in order.

    `expected` is how many items there are (or about): workers start only for
    MIN_PARALLEL or more. `workers` overrides workers_available() (0: read here).
    """
    n_workers = workers_available() if workers is None else workers
    if n_workers < 1 or expected < MIN_PARALLEL:
        for item in items:
            doc = doc_of(item)
            yield item, read(doc.title, doc.text, doc.outlet)
        return
    context = multiprocessing.get_context(default_context())
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
    pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=context)
    pending: deque[tuple[list[T], Future | None]] = deque()
    broken = False
    source = iter(items)
    try:
        while True:
            while len(pending) < READ_AHEAD:
                batch = [item for _, item in zip(range(BATCH), source)]
                if not batch:
                    break
                future = None if broken else pool.submit(_read_batch, [_fields(doc_of(i)) for i in batch])
                pending.append((batch, future))
            if not pending:
                return
            batch, future = pending.popleft()
            readings = None
            if future is not None:
                try:
                    readings = future.result()
                except Exception as exc:  # a dead worker: read here from now on
                    if not broken:
                        event(log, "read_pool_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
                    broken = True
            if readings is None:
                readings = _read_batch([_fields(doc_of(i)) for i in batch])
            yield from zip(batch, readings)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
