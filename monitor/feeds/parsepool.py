"""Parse feed documents in worker processes, with a time budget per parse.

Why processes: parsing is CPU-bound (0.4 ms per entry for a headline feed, several ms for
full-text content; feedparser and html.parser hold the GIL all the while),
and feedparser's author-email regex backtracks quadratically on a long `<author>` value:
a crafted 40 KB author keeps one parse busy for many seconds. A regex runs inside C, where
Python never gets to handle a signal or check a flag, so the only reliable way to stop it
is to kill the process running it. `concurrent.futures` cannot kill one task; this pool
keeps one pipe per worker process, kills a worker whose parse overruns `parse_timeout`,
reports `ParseError("parse_timeout")` for that feed and starts a replacement, while the
other workers go on.

Why "forkserver": the daemon's main process runs asyncio plus library threads (the fetcher's,
sqlite, logging); fork() of a multi-threaded process copies locks that other threads may
hold, and the child can deadlock. The fork server is a small single-threaded process started
once, with `monitor.feeds.parse` (and so feedparser) already imported, so a worker or a
replacement starts quickly, without importing anything again. Where forkserver does not exist,
"spawn" is used.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Literal, cast

from monitor.errors import FailureReason, ParseError
from monitor.types import ParsedFeed

from .rawfeed import MAX_FIELD

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext

Outcome = ParsedFeed | ParseError
DEFAULT_PARSE_TIMEOUT = 10.0
# Imported once in the fork server, so that workers start without importing anything:
# parsing here, weighing entries for clustering in monitor.events.weighpool.
FORKSERVER_PRELOAD = ["monitor.feeds.parse", "monitor.events.weighing"]


StartMethod = Literal["fork", "forkserver", "spawn"]


def start_context(method: StartMethod) -> ForkContext | ForkServerContext | SpawnContext:
    """multiprocessing.get_context, typed as what it returns for these methods (contexts with a Process)."""
    return cast("ForkContext | ForkServerContext | SpawnContext", multiprocessing.get_context(method))


def default_context() -> StartMethod:
    """forkserver where the platform has it (Linux, macOS), else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@dataclass
class _Task:
    key: Hashable
    body: bytes
    headers: dict[str, str]
    fetched_at: datetime
    base_url: str | None


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: _Task | None = None
    started: float = 0.0  # time.monotonic() when `task` was handed over
    done: int = 0  # tasks finished, for recycling


def _parse_task(task: _Task, max_entries: int, max_field: int) -> Outcome:
    # Imported here, not by the process that runs the pool: a worker has it from the fork
    # server (FORKSERVER_PRELOAD), and the polling process, which parses nothing itself, does
    # not pay for feedparser at start-up.
    from .parse import parse_feed

    try:
        return parse_feed(
            task.body,
            task.headers,
            task.fetched_at,
            max_entries=max_entries,
            max_field=max_field,
            base_url=task.base_url,
        )
    except ParseError as exc:
        return exc


def _worker_main(conn: Connection, max_entries: int, max_field: int) -> None:
    """Worker loop: receive a task, send back ("ok", ParsedFeed) or ("error", reason, detail).

    ParseError is sent as its parts: exceptions whose __init__ takes two arguments do not
    survive pickling intact.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if task is None:
            return
        outcome = _parse_task(task, max_entries, max_field)
        if isinstance(outcome, ParseError):
            message: tuple = ("error", outcome.reason, outcome.detail)
        else:
            message = ("ok", outcome)
        try:
            conn.send(message)
        except (EOFError, OSError):
            return


class ParsePool:
    """Parse many documents concurrently; each parse gets at most `parse_timeout` seconds.

    Use as a context manager from one thread; `submit()` documents, then iterate
    `results()` to get `(key, ParsedFeed | ParseError)` pairs as parses complete (not in
    submission order). `workers=0` parses in the calling process, in order, without a time
    budget: for tests and tiny runs only. A worker is replaced after `max_tasks_per_worker`
    parses, so memory that a large document left fragmented is given back.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        parse_timeout: float = DEFAULT_PARSE_TIMEOUT,
        max_entries: int = 1000,
        max_field: int = MAX_FIELD,
        max_tasks_per_worker: int = 500,
        context: StartMethod | None = None,
    ) -> None:
        if parse_timeout <= 0:
            raise ValueError("parse_timeout must be positive")
        self.workers = (os.cpu_count() or 1) if workers is None else max(0, workers)
        self.parse_timeout = parse_timeout
        self.max_tasks_per_worker = max_tasks_per_worker
        self.max_entries = max_entries
        self.max_field = max_field
        self._context_name = context or default_context()
        self._ctx = start_context(self._context_name)
        self._pending: deque[_Task] = deque()
        self._pool: list[_Worker] = []
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ParsePool:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker processes (done lazily by submit() otherwise)."""
        if self._closed:
            raise RuntimeError("ParsePool is closed")
        if self._context_name == "forkserver":
            # Import feedparser once in the fork server, not in every worker.
            self._ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        while len(self._pool) < self.workers:
            self._pool.append(self._new_worker())

    def _new_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self.max_entries, self.max_field),
            name="monitor-parse",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process=process, conn=parent)

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        if kill and worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=2)
        worker.conn.close()
        self._pool.remove(worker)

    def _replace(self, worker: _Worker) -> None:
        self._retire(worker, kill=True)
        if not self._closed:
            self._pool.append(self._new_worker())

    def pids(self) -> list[int]:
        """Process ids of the current workers (for logs and diagnostics)."""
        return [w.process.pid for w in self._pool if w.process.pid is not None]

    def close(self) -> None:
        """Stop the workers: idle ones are asked to exit, busy ones are killed."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._pool):
            if worker.task is None:
                with contextlib.suppress(EOFError, OSError):
                    worker.conn.send(None)
        deadline = time.monotonic() + 1.0
        for worker in list(self._pool):
            if worker.task is None:
                worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._retire(worker, kill=True)
        self._pending.clear()

    # -- work --------------------------------------------------------------------------

    def submit(
        self,
        key: Hashable,
        body: bytes,
        headers: Mapping[str, str],
        fetched_at: datetime,
        *,
        base_url: str | None = None,
    ) -> None:
        """Queue one document; its outcome comes out of results() under `key`."""
        if self._closed:
            raise RuntimeError("ParsePool is closed")
        self._pending.append(_Task(key, body, dict(headers), fetched_at, base_url))
        if self.workers:
            if not self._pool:
                self.start()
            self._dispatch()

    def _dispatch(self) -> None:
        for worker in list(self._pool):
            if not self._pending:
                return
            if worker.task is not None:
                continue
            task = self._pending.popleft()
            try:
                worker.conn.send(task)
            except (EOFError, OSError):
                self._pending.appendleft(task)  # the worker died while idle: replace it, retry
                self._replace(worker)
                continue
            worker.task = task
            worker.started = time.monotonic()

    def results(self, wait_at_most: float | None = None) -> Iterator[tuple[Hashable, Outcome]]:
        """Yield `(key, ParsedFeed | ParseError)` for every submitted document as it finishes.

        Ends when nothing is pending or running, or, with `wait_at_most`, once that many
        seconds pass without a parse finishing: the parses still running come out of a later
        call, and the caller can submit more meanwhile (so an idle worker is not kept waiting
        behind a slow parse). A parse over budget yields ParseError("parse_timeout"); a worker
        that dies yields ParseError("parser_crashed").
        """
        if not self.workers:
            while self._pending:
                pending = self._pending.popleft()
                yield pending.key, _parse_task(pending, self.max_entries, self.max_field)
            return
        give_up = None if wait_at_most is None else time.monotonic() + wait_at_most
        while True:
            self._dispatch()
            busy = [w for w in self._pool if w.task is not None]
            if not busy:
                return
            until = min(w.started for w in busy) + self.parse_timeout
            if give_up is not None:
                until = min(until, give_up)
            waitables = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            ready = set(wait(waitables, timeout=max(0.0, until - time.monotonic())))
            now = time.monotonic()
            finished = 0
            for worker in busy:
                task = worker.task
                assert task is not None
                if worker.conn in ready:
                    outcome = self._receive(worker)
                elif worker.process.sentinel in ready:
                    code = worker.process.exitcode
                    self._replace(worker)
                    outcome = ParseError(FailureReason.PARSER_CRASHED,
                                         f"parse worker exited with code {code}")
                elif now - worker.started >= self.parse_timeout:
                    self._replace(worker)
                    outcome = ParseError(FailureReason.PARSE_TIMEOUT,
                                         f"parse took longer than {self.parse_timeout:g} s")
                else:
                    continue
                finished += 1
                self._dispatch()  # refill the freed worker before the caller stores this outcome
                yield task.key, outcome
            if wait_at_most is not None and give_up is not None:
                if not finished and time.monotonic() >= give_up:
                    return
                if finished:
                    give_up = time.monotonic() + wait_at_most

    def _receive(self, worker: _Worker) -> Outcome:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError) as exc:
            self._replace(worker)
            return ParseError(FailureReason.PARSER_CRASHED, f"parse worker failed: {type(exc).__name__}")
        worker.task = None
        worker.done += 1
        if worker.done >= self.max_tasks_per_worker:
            self._replace(worker)  # idle now, so nothing is lost
        if message[0] == "ok":
            return message[1]
        return ParseError(message[1], message[2])

    def parse_many(
        self, items: Iterable[tuple[Hashable, bytes, Mapping[str, str], datetime]]
    ) -> Iterator[tuple[Hashable, Outcome]]:
        """Submit `(key, body, headers, fetched_at)` items and yield outcomes as they finish."""
        for key, body, headers, fetched_at in items:
            self.submit(key, body, headers, fetched_at)
        yield from self.results()
