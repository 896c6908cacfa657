"""Read and weigh entries for clustering ahead of the decisions, in another process.

Clustering decides entries one at a time, in published order. Turning an entry into the
features it is decided on (monitor.events.reading: folding, sentences, tokens, terms; then
monitor.events.weighing: the feed's boilerplate, name spellings, document frequencies) depends
on the entry and on the stream's statistics, never on the decisions, and it is over half
of the work. So on a machine with more than one core a large run is weighed by a worker
process that holds a copy of the clusterer's Weigher, one batch ahead of the decisions.
Features come back in the entries' order, memory stays bounded however many entries are
clustered (a recluster of the whole store), and when the run ends the worker's statistics
are handed back, so the clusterer continues exactly as if it had weighed every entry itself.

Reading an entry (its sentences, tokens, terms) is pure and most of the weighing of a long
page, which then costs several times the decision: this process would wait for the
worker. So it reads part of each next batch itself and passes the readings on with the
entries (the worker weighs them as if it had read them): as large a part as makes the two
processes take as long over a batch, by the times each measures (`_balanced`). While a new
worker starts, it reads the first batches (the worker then only weighs them).

The statistics (megabytes of counts) are costly to pass: after a run they come back as
bytes and are unpickled only when this process needs them (`Weigher.hand_over`), while
the worker stays, holding the same statistics, for the next large run (a recluster, or a
bench's successive first polls) to go on with and nothing passed at all.

A poll that stores many entries can start the worker before it knows them all
(`ReadAhead`): the entries are sent to it as they are stored, and it reads them while
the poll goes on fetching and parsing; when the run begins, it weighs what it has read,
and this process decides. A poll can store entries faster than the worker reads them
(two cores, and parsing on them too): what is still waiting to be sent when the run begins
is not sent, and this process reads those entries as it does a share of each batch,
instead of idling while the worker catches up. Each reading is kept with the fields it
was made from, and used only for an entry whose fields are still those.

Small runs (a daemon cycle's new entries) are weighed in this process: starting a worker
and passing the statistics both ways would cost more than it saves; the first one takes
the statistics back and lets a waiting worker go. A failing worker
never fails clustering when the entries are a sequence (as monitor passes them): the
entries it weighed are weighed again here, and the rest too.
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain, islice
from multiprocessing.connection import Connection
from typing import Any, TypeVar, cast, overload

from monitor.errors import WorkerLost
from monitor.feeds.parsepool import FORKSERVER_PRELOAD, default_context, start_context
from monitor.logs import event, get_logger
from monitor.types import ClusterDoc

from .reading import plain, read, unplain
from .similarity import DocFeatures
from .weighing import Holder, Weigher

log = get_logger("cluster")

MIN_PARALLEL = 2000  # entries: below this, weighing here is faster than starting a worker
BATCH = 250  # entries per message: large enough that passing them costs little per entry
# This process reads part of each batch itself, as much as makes the worker and it take as long
# over a batch, up to MAX_SHARE (see _balanced). A reading costs about a quarter of its making to
# pass on, so this pays for long texts only.
MAX_SHARE = 0.8
# Batches this process reads, at most, while a new worker starts (they are its first batch).
STARTING_BATCHES = 4

# Entries a worker reads ahead of a run, at most (their readings wait in its memory, some
# 15 KB each), and how many a poll stores before it starts one (see ReadAhead).
AHEAD_MAX = 8000
AHEAD_FROM = 250

T = TypeVar("T")
_EMPTY: frozenset[str] = frozenset()


def _to_wire(f: DocFeatures) -> tuple:
    """What the decisions need of weighed features, as plain values (the statistics stay with
    the weigher). The vector's order is kept: sums over it are then the same, bit for bit."""
    terms = tuple(f.vec)
    lead = () if f.lead_only else tuple(i for i, t in enumerate(terms) if t in f.lead_terms)
    return (f.entry_id, f.feed_id, f.ts, terms, tuple(f.vec.values()), lead, tuple(f.days), f.content_words,
            f.fingerprint, f.lead_only, f.name_keys, tuple(f.specific))


def _from_wire(x: tuple) -> DocFeatures:
    entry_id, feed_id, ts, terms, weights, lead, days, words, fingerprint, lead_only, name_keys, specific = x
    lead_terms = frozenset(terms) if lead_only else frozenset(map(terms.__getitem__, lead))
    return DocFeatures(entry_id, feed_id, ts, {}, lead_terms, _EMPTY, frozenset(days), (), _EMPTY, words,
                       fingerprint, dict(zip(terms, weights, strict=True)), lead_only, name_keys=name_keys,
                       specific=frozenset(specific))


def _fields(doc: ClusterDoc) -> tuple:
    return doc.entry_id, doc.feed_id, doc.outlet, doc.title, doc.text, doc.published


def _payload(docs: list[ClusterDoc], share: float,
             among: AbstractSet[int] | None = None) -> tuple[bytes, int]:
    """A batch for the worker (see _items), pickled, and how many readings it carries."""
    items = _items(docs, share, among)
    return _pickled(items), sum(1 for item in items if item[6] is not None)


def _pickled(items: list[tuple]) -> bytes:
    """Items of a batch as sent to the worker; an empty batch is None (a run's end)."""
    return pickle.dumps(items or None, pickle.HIGHEST_PROTOCOL)


def _items(docs: list[ClusterDoc], share: float, among: AbstractSet[int] | None = None) -> list[tuple]:
    """Each entry's fields and its reading, made here for the first `share` of them, or of
    those whose entry ids are `among` (None for the rest: the worker reads those, or has
    read them ahead)."""
    if among is None:
        here = set(range(round(share * len(docs))))
    else:
        candidates = [i for i, d in enumerate(docs) if d.entry_id in among]
        here = set(candidates[:round(share * len(candidates))])
    return [(*_fields(d), plain(read(d.title, d.text, d.outlet)) if i in here else None)
            for i, d in enumerate(docs)]


def _balanced(share: float, here: float, there: float, entries: int, reading: float | None) -> float:
    """The share of a batch to read here, next, so that both processes take as long over a batch.

    `here` and `there` are the seconds this process (deciding on a batch, making the next
    payload) and the worker (weighing a batch) took over their last batch of `entries`, and
    `reading` what a reading costs here, in seconds (None: not measured yet). A reading moved
    here adds about as much here as it saves there, so moving gap / (2 x reading) of them would
    close the gap; half of that is moved, as the figures are a batch behind (a full step would
    overshoot). Before a reading is measured, a tenth of the batch moves.
    """
    gap = there - here
    if reading is None or reading <= 0.0:
        step = 0.1 if gap > 0 else -0.1
    else:
        step = gap / (4.0 * entries * reading)
    return min(MAX_SHARE, max(0.0, share + step))


def _weigh(weigher: Weigher, item: tuple, ahead: dict[int, tuple] | None = None) -> DocFeatures:
    """Weigh one item of a batch (see _payload), with its reading as it came, or as read ahead
    from the same outlet, title and text (`ahead`: entry id -> (those fields, reading))."""
    reading = None if item[6] is None else unplain(item[6])
    if reading is None and ahead:
        kept = ahead.pop(item[0], None)
        if kept is not None and kept[0] == item[2:5]:
            reading = kept[1]
    return weigher.weigh(ClusterDoc(*item[:6]), reading)


def _read_ahead(ahead: dict[int, tuple], items: list[tuple]) -> None:
    """Read entries sent ahead of a run: (entry id, outlet, title, text) each."""
    for entry_id, outlet, title, text in items:
        ahead[entry_id] = ((outlet, title, text), read(title, text, outlet))


def _worker_main(conn: Connection) -> None:
    """Worker loop: the weigher first (entries to read ahead may come before it), then batches
    of entry fields in, their features out; None ends a run and asks for a copy of the weigher
    (the worker goes on with it); a closed pipe ends it.

    One pipe, holding only this end: when the parent dies (even by SIGKILL) the pipe
    closes and recv() raises, so the worker never outlives the process it serves.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    gc.disable()  # as in the deciding process (cluster.collection_paused): the statistics hold no cycles
    weigher: Weigher | None = None
    ahead: dict[int, tuple] = {}  # entry id -> (outlet, title, text), reading: read ahead of a run
    try:
        while True:
            data = conn.recv_bytes()
            began = time.perf_counter()
            message = pickle.loads(data)
            if isinstance(message, Weigher):
                weigher = message
            elif isinstance(message, tuple):  # ("read", entries) sent ahead of a run
                _read_ahead(ahead, message[1])
            elif message is None:  # a run's end
                ahead.clear()
                conn.send(weigher)
            else:  # a batch: its features, and how long this process took over it (unpickling included)
                wires = [_to_wire(_weigh(cast(Weigher, weigher), item, ahead)) for item in message]
                conn.send((time.perf_counter() - began, wires))
    except (EOFError, OSError):
        return


def workers_available() -> int:
    """1 when there is a core beside the one that decides, else 0."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


class _Worker:
    """The weighing process and its pipe. At most one batch is in flight: the worker sends
    only after it has received a whole batch, and it is sent the next one only after its
    answer was read, so the two ends never both block on a full pipe."""

    state: bytes = b""  # the statistics as of the end of the last run, pickled

    def __init__(self, weigher: Weigher | None) -> None:
        context = start_context(default_context())
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(FORKSERVER_PRELOAD)
        self.conn, child = context.Pipe(duplex=True)
        self.proc = context.Process(target=_worker_main, args=(child,), name="monitor-weigh", daemon=True)
        self.proc.start()
        child.close()
        if weigher is None:
            return  # it is sent later (ReadAhead)
        try:
            self.conn.send(weigher)
        except BaseException:
            self.close()
            raise

    def waiting(self) -> bool:
        """Alive, with the statistics of its last run, for the next one."""
        return bool(self.state) and self.proc.is_alive()

    def take_back(self) -> Weigher:
        """The statistics as of the end of the last run; the worker is let go."""
        self.close()
        weigher: Weigher = pickle.loads(self.state)
        return weigher

    def close(self) -> None:
        self.conn.close()  # the worker's recv() raises and it ends
        self.proc.join(timeout=1.0)
        if self.proc.is_alive():  # still weighing a batch nobody will use
            self.proc.kill()
            self.proc.join(timeout=2.0)


def _waiting(held: Holder | None) -> _Worker | None:
    """The worker that holds a weigher's statistics and waits for the next run, if any."""
    waiting = getattr(held, "waiting", None)
    return cast(_Worker, held) if waiting is not None and waiting() else None


@overload
def weigh_ahead(weigher: Weigher, items: Iterable[ClusterDoc], expected: int, *,
                workers: int | None = None, ahead: ReadAhead | None = None,
                ) -> Iterator[tuple[ClusterDoc, DocFeatures]]: ...
@overload
def weigh_ahead(weigher: Weigher, items: Iterable[T], expected: int, doc_of: Callable[[T], ClusterDoc], *,
                workers: int | None = None, ahead: ReadAhead | None = None,
                ) -> Iterator[tuple[T, DocFeatures]]: ...
def weigh_ahead(weigher: Weigher, items: Iterable[Any], expected: int,
                doc_of: Callable[[Any], ClusterDoc] = lambda item: item, *,
                workers: int | None = None, ahead: ReadAhead | None = None,
                ) -> Iterator[tuple[Any, DocFeatures]]:
    """Each item with the features of its document (`doc_of(item)`) as `weigher.weigh` makes
    them, in order. When the iterator is exhausted, `weigher` holds the statistics of all
    the items, wherever they were weighed (until then it must not be used).

    `expected` is how many items there are (or about): the worker starts only for
    MIN_PARALLEL or more. `workers` overrides workers_available() (0: weigh here).
    `ahead`: a worker that has read entries ahead of this run; it weighs the run when it has
    AHEAD_FROM items or more (its readings are made, so a smaller run than MIN_PARALLEL pays),
    and is let go otherwise.
    """
    n_workers = workers_available() if workers is None else workers
    early = ahead.worker() if ahead is not None else None
    if early is not None and (n_workers < 1 or expected < AHEAD_FROM):
        early.close()
        early = None
    if early is None and (n_workers < 1 or expected < MIN_PARALLEL):
        for item in items:
            yield item, weigher.weigh(doc_of(item))
        return
    source = iter(items)
    batch = list(islice(source, BATCH))
    worker: _Worker | None = None
    done = 0  # items yielded with features from the worker
    kept = looping = False
    # A worker that read ahead has the readings, but for the entries it was never sent (when
    # the poll stored them faster than it read): only those are for this process to read.
    among = ahead.unsent if ahead is not None and early is not None else None
    adapt = early is None or bool(among)
    # With nothing to decide yet, this process reads most of the first batch itself, and all
    # of it (and more) while a new worker starts; then the two share the reading (see _balanced).
    share = MAX_SHARE if adapt else 0.0
    reading: float | None = None  # seconds a reading takes here, with passing it on
    first = [doc_of(i) for i in batch]
    try:
        if early is not None:
            worker = early
            worker.conn.send(weigher)
            payload, _ = _payload(first, share, among)
        else:  # a worker that holds the statistics already, from the last run: nothing to pass
            worker = _waiting(weigher.holder)
            if worker is None:
                def read_while(started: Callable[[], bool]) -> bytes:
                    """The first batch, read here, and more batches for as long as the worker starts."""
                    items = _items(first, 1.0)
                    while not started() and len(batch) < STARTING_BATCHES * BATCH:
                        more = list(islice(source, BATCH))
                        batch.extend(more)
                        items += _items([doc_of(i) for i in more], 1.0)
                        if not more:
                            break
                    return _pickled(items)

                worker, payload = _start_while(weigher, read_while)
            else:
                payload, _ = _payload(first, share)
        worker.conn.send_bytes(payload)
        sent = time.perf_counter()
        looping = True  # items past the first batch are taken from here on
        while batch:
            following = list(islice(source, BATCH))
            # ready before the answer arrives; reading is pure, so where it happens changes nothing
            began = time.perf_counter()
            payload, made = _payload([doc_of(i) for i in following], share, among)
            if made:
                reading = (time.perf_counter() - began) / made
            here = time.perf_counter() - sent
            there, wires = pickle.loads(worker.conn.recv_bytes())
            worker.conn.send_bytes(payload)  # weighed while this one is decided on
            sent = time.perf_counter()
            # Long pages make weighing several times the deciding: this process would wait for
            # the worker, so it reads part of each batch itself (less when the worker waits).
            readable = len(batch) if among is None else sum(doc_of(i).entry_id in among for i in batch)
            if adapt and readable:  # (a batch with nothing to read here says nothing of the share)
                share = _balanced(share, here, there, readable, reading)
            for item, wire in zip(batch, wires, strict=True):
                yield item, _from_wire(wire)
                done += 1
            batch = following
        state = worker.conn.recv_bytes()  # the statistics, to be unpickled only when needed here
        if weigher.holder is None:
            weigher.hand_over(worker)
        worker.state = state
        kept = True
        return
    except (EOFError, OSError) as exc:
        error = exc
    finally:
        if worker is not None and not kept:
            worker.close()
    # the worker died (or never started): weigh again here what it had weighed, then go on here
    event(log, "weigh_worker_failed", logging.WARNING, error=f"{type(error).__name__}: {error}", weighed=done)
    if not isinstance(items, Sequence):
        if looping:
            raise WorkerLost(f"the weighing worker died after {done} entries: {error}")
        items = chain(batch, source)  # it never started: go on with the first batch, taken already
    for item in islice(items, done):
        weigher.weigh(doc_of(item))
    for item in islice(items, done, None):
        yield item, weigher.weigh(doc_of(item))


def _start_while(weigher: Weigher, work: Callable[[Callable[[], bool]], bytes]) -> tuple[_Worker, bytes]:
    """A new worker for `weigher`, and `work(started)` done here while it starts (`started()`
    tells whether it has): starting a process waits on the fork server, and the first start
    starts that server, which imports the package."""
    started: list[_Worker | BaseException] = []

    def start() -> None:
        try:
            started.append(_Worker(weigher))
        except BaseException as exc:  # handed to the caller
            started.append(exc)

    thread = threading.Thread(target=start, name="monitor-weigh-start", daemon=True)
    thread.start()
    try:
        result = work(lambda: bool(started))
    except BaseException:
        thread.join()
        if not isinstance(started[0], BaseException):
            started[0].close()  # the work failed: nobody will use the worker
        raise
    thread.join()
    outcome = started[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome, result


class ReadAhead:
    """A weighing worker started before a run, reading its entries as they are stored.

    `add` never blocks the caller: a thread hands the entries to the worker, which reads
    them while this process goes on (a poll's fetching, parsing and storing). The run
    (`weigh_ahead(..., ahead=this)`) then sends the weigher, and the worker weighs the
    entries with the readings it made, or reads them then (an entry it was not sent, or
    whose fields changed since). Readings made ahead never cross the pipe. Entries still
    waiting to be sent when the run begins stay here (`unsent`): the run reads them here.

    At most AHEAD_MAX entries are sent; a worker that dies meanwhile is dropped, and the
    run weighs as it would have without it.
    """

    def __init__(self) -> None:
        self._worker: _Worker | None = _Worker(None)
        self._queue: queue.SimpleQueue[list[tuple] | None] = queue.SimpleQueue()
        self._failed = False
        self._stopping = False  # the run begins: what is still queued is not sent
        self._unsent: set[int] = set()
        self._sent = 0
        self._thread = threading.Thread(target=self._send, name="monitor-read-ahead", daemon=True)
        self._thread.start()

    def add(self, docs: Iterable[ClusterDoc]) -> None:
        """Queue these entries to be sent and read (up to AHEAD_MAX in all)."""
        room = max(0, AHEAD_MAX - self._sent)
        items = [(d.entry_id, d.outlet, d.title, d.text) for d in islice(docs, room)]
        if items and self._worker is not None:
            self._sent += len(items)
            self._queue.put(items)

    @property
    def sent(self) -> int:
        """Entries added (queued to be sent; those not sent by the run's start are `unsent`)."""
        return self._sent

    @property
    def unsent(self) -> frozenset[int]:
        """Ids of the entries added but never sent: the worker had not taken them in when the
        run began (it reads more slowly than a poll can store), so the run's deciding
        process reads them, while the worker weighs (see weigh_ahead). Known once `worker()`
        has returned."""
        return frozenset(self._unsent)

    def _send(self) -> None:
        worker = cast(_Worker, self._worker)
        while (items := self._queue.get()) is not None:
            if self._stopping:
                self._unsent.update(item[0] for item in items)
                continue
            if self._failed:
                continue
            try:
                worker.conn.send(("read", items))
            except (OSError, ValueError):  # it died, or was closed
                self._failed = True

    def worker(self) -> _Worker | None:
        """The worker, once the entries on their way to it are handed over (those still
        queued are not sent: see `unsent`); None if it died. It is the caller's from then on
        (to weigh a run, or to close)."""
        worker = self._stop_sending()
        if worker is None:
            return None
        if self._failed or not worker.proc.is_alive():
            worker.close()
            return None
        return worker

    def close(self) -> None:
        """Let the worker go, unless a run took it. What it holds is only readings: it is
        killed at once, which also ends a send the thread may be blocked in."""
        worker = self._stop_sending(kill=True)
        if worker is not None:
            worker.close()

    def _stop_sending(self, kill: bool = False) -> _Worker | None:
        """Take the worker (None if taken already) once the thread has handed it everything,
        or at once when it is killed first."""
        worker, self._worker = self._worker, None
        if worker is None:
            return None
        if kill:
            worker.proc.kill()
        self._stopping = True  # a send under way finishes; what is queued behind it stays here
        self._queue.put(None)
        self._thread.join()
        return worker
