"""Weighing entries ahead in a worker process (monitor.events: weighpool, weighing, reading).

What must hold: features weighed in another process are exactly the features weighed here
(sentence keys included: str hashes differ between processes, the keys must not), they come
back in the entries' order, clustering with them decides exactly as without, and afterwards
the clusterer's statistics are the ones it would have had weighing every entry itself, even
when the worker was killed halfway.
"""
from __future__ import annotations

import os
import time
import signal
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.errors import WorkerLost
from monitor.events import reading, weighpool
from monitor.events.clusterer import ClusterConfig, Clusterer
from monitor.events.weighing import Weigher
from tests.support.corpus import DOCS

# Non-ASCII text (the lead and tail readings of a sentence differ), a long text cut at
# BODY_CHARS, an outlet named in the text, boilerplate: every branch of a reading.
EXTRA = [
    replace(DOCS[0], entry_id=10_001, title="İSTANBUL: Kılıçdaroğlu meets Erdoğan – Ankara Wire",
            text="İSTANBUL — Kılıçdaroğlu met Erdoğan on Monday. Ankara Wire reports. Встреча в Анкаре. " * 3),
    replace(DOCS[1], entry_id=10_002, text=("Police said the fire began at 3 a.m. on March 4. " * 120)),
]
# A short window and a small sample of the stream kept past it, so that entries leave the
# statistics during the run too (by default they keep thousands of entries, see weighing).
WINDOW = timedelta(days=2)
SAMPLE = 10


def weigher() -> Weigher:
    return Weigher(WINDOW.total_seconds(), min_entries=SAMPLE)


def clusterer(config: ClusterConfig) -> Clusterer:
    cl = Clusterer(config)
    cl.weigher.min_entries = SAMPLE
    return cl


def docs() -> list:
    return sorted([*DOCS, *EXTRA], key=lambda d: (d.published, d.entry_id))


def decided_on(f) -> tuple:
    """Everything of weighed features that a decision reads (the vector in its order), the name
    pairs that follow-ups are linked on and the names that let a weak match join included."""
    return (f.entry_id, f.feed_id, f.ts, list(f.vec.items()), f.lead_terms, f.lead_only, f.days,
            f.content_words, f.fingerprint, f.name_keys, f.specific)


def state(w: Weigher) -> tuple:
    return (dict(w.df.df), w.df.n, {f: dict(k) for f, k in w.boilerplate._seen.items()}, w.names._buckets,
            dict(w.case.capitalised), dict(w.case.lower), w._kept, sorted(w._expiry), w._now)


@pytest.fixture
def pooled(monkeypatch):
    monkeypatch.setattr(weighpool, "MIN_PARALLEL", 1)
    monkeypatch.setattr(weighpool, "BATCH", 7)  # several batches


def test_sentence_key_is_the_same_in_every_process():
    # a fixed value: a hash() based key would change with PYTHONHASHSEED
    assert reading.sentence_key(["police", "said", "fire"], frozenset()) == reading.sentence_key(
        ["police", "said", "fire"], frozenset())
    assert reading.sentence_key(["police", "said", "fire"], frozenset()) == 4014310636184710583
    assert reading.sentence_key(["posted", "3", "hours", "ago"], frozenset()) == reading.sentence_key(
        ["posted", "5", "hours", "ago"], frozenset())
    assert reading.sentence_key(["alone"], frozenset()) is None


def test_features_from_the_worker_equal_features_made_here_in_order(pooled):
    items = docs()
    here = weigher()
    expected = [decided_on(here.weigh(d)) for d in items]
    there = weigher()
    got = list(weighpool.weigh_ahead(there, items, len(items), workers=1))
    assert [doc.entry_id for doc, _ in got] == [d.entry_id for d in items]
    assert [decided_on(f) for _, f in got] == expected
    assert state(there) == state(here)  # the worker's statistics came back
    assert here.entries < len(items)  # entries left the window during the run
    assert any(not f.lead_only for _, f in got) and any(f.days for _, f in got)
    assert any(f.name_keys for _, f in got) and any(f.specific for _, f in got)


def test_clustering_with_features_from_the_worker_decides_as_without(pooled):
    items = docs()
    config = ClusterConfig(window=WINDOW)
    inline = clusterer(config)
    expected = [inline.assign(d) for d in items]
    mixed = clusterer(config)
    half = len(items) // 2
    got = [mixed.place(f) for _, f in weighpool.weigh_ahead(mixed.weigher, items[:half], half, workers=1)]
    got += [mixed.assign(d) for d in items[half:]]  # and on here, with the statistics handed back
    assert got == expected
    assert len({a.cluster_id for a in got}) < len(got)  # it did cluster


def test_warming_with_features_from_the_worker_is_warming_here(pooled):
    items = docs()
    config = ClusterConfig(window=WINDOW)
    rows = [(d, i % 5 + 1) for i, d in enumerate(items)]
    here, there = clusterer(config), clusterer(config)
    for doc, cid in rows:
        here.warm(doc, cid)
    for (doc, cid), f in weighpool.weigh_ahead(there.weigher, rows, len(rows), lambda row: row[0], workers=1):
        there.keep(f, cid)
    new = replace(DOCS[2], entry_id=20_000, published=items[-1].published)
    assert there.assign(new) == here.assign(new)
    assert state(there.weigher) == state(here.weigher)


def test_small_runs_are_weighed_here_without_a_worker(monkeypatch):
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started for a small run")

    monkeypatch.setattr(weighpool, "_Worker", no_worker)
    w = weigher()
    got = list(weighpool.weigh_ahead(w, DOCS, len(DOCS)))
    assert len(got) == len(DOCS) < weighpool.MIN_PARALLEL
    assert w.entries > 0 and got[0][1].vec


def started_workers(monkeypatch) -> list:
    """The weighing workers started from now on, in order."""
    workers = []
    real = weighpool._Worker

    def capture(weigher):
        workers.append(real(weigher))
        return workers[-1]

    monkeypatch.setattr(weighpool, "_Worker", capture)
    return workers


def test_a_killed_worker_costs_nothing_but_time(pooled, monkeypatch):
    workers = started_workers(monkeypatch)
    items = docs()
    here = weigher()
    expected = [decided_on(here.weigh(d)) for d in items]
    there = weigher()
    got = []
    for n, (doc, f) in enumerate(weighpool.weigh_ahead(there, items, len(items), workers=1)):
        got.append(decided_on(f))
        if n == 10:  # in the second batch: the first was weighed there, the rest must be here
            os.kill(workers[0].proc.pid, signal.SIGKILL)
    assert got == expected
    assert state(there) == state(here)
    assert not workers[0].proc.is_alive()


def test_a_killed_worker_under_a_stream_is_a_clear_error(pooled, monkeypatch):
    workers = started_workers(monkeypatch)
    items = docs()
    stream = (d for d in items)  # what was weighed cannot be weighed again
    with pytest.raises(WorkerLost, match=r"died after \d+ entries"):
        weighed = weighpool.weigh_ahead(weigher(), stream, len(items), workers=1)
        for n, _ in enumerate(weighed):
            if n == 10:
                os.kill(workers[0].proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("cores,expected", [(1, 0), (2, 1), (8, 1)])
def test_a_worker_only_beside_the_core_that_decides(monkeypatch, cores, expected):
    monkeypatch.setattr(weighpool.os, "cpu_count", lambda: cores)
    assert weighpool.workers_available() == expected


def test_successive_runs_go_on_in_the_same_worker_without_passing_the_statistics(pooled, monkeypatch):
    """A recluster or a bench's run of first polls: the worker that weighed one run keeps its
    statistics for the next; this process takes them back only when it weighs itself."""
    started = started_workers(monkeypatch)
    items = docs()
    here = weigher()
    expected = [decided_on(here.weigh(d)) for d in items]
    there = weigher()
    thirds = [items[: len(items) // 3], items[len(items) // 3 : -3], items[-3:]]
    got = [decided_on(f) for _, f in weighpool.weigh_ahead(there, thirds[0], len(thirds[0]), workers=1)]
    got += [decided_on(f) for _, f in weighpool.weigh_ahead(there, thirds[1], len(thirds[1]), workers=1)]
    assert len(started) == 1 and started[0].proc.is_alive()  # one worker for both runs, still waiting
    monkeypatch.setattr(weighpool, "MIN_PARALLEL", 10)  # the last run is small: weighed here
    got += [decided_on(f) for _, f in weighpool.weigh_ahead(there, thirds[2], len(thirds[2]), workers=1)]
    assert got == expected
    assert state(there) == state(here)
    started[0].proc.join(timeout=20)
    assert not started[0].proc.is_alive()  # let go once the statistics came back


@pytest.mark.parametrize("when", ["between runs", "during the second run"])
def test_a_worker_killed_while_it_holds_the_statistics_costs_nothing_but_time(pooled, monkeypatch, when):
    started = started_workers(monkeypatch)
    items = docs()
    here = weigher()
    expected = [decided_on(here.weigh(d)) for d in items]
    there = weigher()
    half = len(items) // 2
    got = [decided_on(f) for _, f in weighpool.weigh_ahead(there, items[:half], half, workers=1)]
    if when == "between runs":
        os.kill(started[0].proc.pid, signal.SIGKILL)
        started[0].proc.join(timeout=20)
    for n, (_, f) in enumerate(weighpool.weigh_ahead(there, items[half:], len(items) - half, workers=1)):
        got.append(decided_on(f))
        if n == 10 and when == "during the second run":
            os.kill(started[0].proc.pid, signal.SIGKILL)
    assert got == expected
    assert state(there) == state(here)
    assert len(started) == (2 if when == "between runs" else 1)  # a dead worker is replaced, not reused


def test_entries_read_here_ahead_of_the_worker_weigh_the_same(pooled, monkeypatch):
    """When this process waits for the worker (long pages), it reads part of each batch itself
    and passes the readings on: reading is pure, so features and statistics are the same."""
    monkeypatch.setattr(weighpool, "_balanced", lambda *args: weighpool.MAX_SHARE)  # as when the worker is slower
    items, read_here = weighed_there_reading_here(monkeypatch)
    assert len(read_here) > len(items) // 3  # a good part of them was read here


def weighed_there_reading_here(monkeypatch) -> tuple[list, list[str]]:
    """Weigh docs() ahead in a worker, asserting that features and statistics are the ones
    weighed here; return the entries and the titles of those this process read."""
    read_here: list[str] = []
    real_read = weighpool.read
    monkeypatch.setattr(weighpool, "read", lambda *args: read_here.append(args[0]) or real_read(*args))
    items = docs()
    here = weigher()
    expected = [decided_on(here.weigh(d)) for d in items]
    there = weigher()
    got = [decided_on(f) for _, f in weighpool.weigh_ahead(there, items, len(items), workers=1)]
    assert got == expected
    assert state(there) == state(here)
    return items, read_here


@pytest.mark.parametrize("stream", [False, True])
def test_a_worker_that_cannot_start_costs_nothing(pooled, monkeypatch, stream):
    """The first batch is taken, and read here, while the worker starts: when it cannot start,
    that batch and the rest are weighed here, from a sequence or from a stream alike."""
    def no_process(weigher):
        raise OSError("no process for you")

    monkeypatch.setattr(weighpool, "_Worker", no_process)
    items = docs()
    here = weigher()
    expected = [decided_on(here.weigh(d)) for d in items]
    there = weigher()
    source = (d for d in items) if stream else items
    got = [(doc.entry_id, decided_on(f)) for doc, f in weighpool.weigh_ahead(there, source, len(items), workers=1)]
    assert got == [(d.entry_id, e) for d, e in zip(items, expected, strict=True)]
    assert state(there) == state(here)


@pytest.mark.parametrize("here,there,reading,expected", [
    (0.050, 0.090, 0.0002, 0.7),  # the worker took 40 ms longer: 200 readings would close it, half moves
    (0.090, 0.050, 0.0002, 0.3),  # this process took longer: it reads less
    (0.050, 0.090, None, 0.6),  # a reading here not measured yet: a tenth of the batch
    (0.090, 0.050, None, 0.4),
    (0.010, 0.500, 0.0002, weighpool.MAX_SHARE),  # never more than MAX_SHARE
    (0.500, 0.010, 0.0002, 0.0),  # nor less than nothing
])
def test_the_share_read_here_closes_half_the_gap_between_the_processes(here, there, reading, expected):
    assert weighpool._balanced(0.5, here, there, 250, reading) == pytest.approx(expected)


def test_while_a_new_worker_starts_this_process_reads_its_first_batches(pooled, monkeypatch):
    """Starting a process takes a while (the first start starts the fork server): meanwhile
    this process reads the first batch, then more, up to STARTING_BATCHES batches, and the
    worker only weighs them. Features and statistics are the same."""
    real = weighpool._Worker

    def slow_start(weigher):
        time.sleep(1.0)  # far longer than reading the test corpus: the cap ends the reading
        return real(weigher)

    monkeypatch.setattr(weighpool, "_Worker", slow_start)
    monkeypatch.setattr(weighpool, "_balanced", lambda *args: 0.0)  # later batches: all read there
    items, read_here = weighed_there_reading_here(monkeypatch)
    assert len(items) > weighpool.STARTING_BATCHES * weighpool.BATCH
    cap = weighpool.STARTING_BATCHES * weighpool.BATCH
    assert read_here[:cap] == [d.title for d in items[:cap]]
    # and most of the next batch, made before the worker's first figures come back (see weigh_ahead)
    assert read_here[cap:] == [d.title for d in items[cap : cap + round(weighpool.MAX_SHARE * weighpool.BATCH)]]
