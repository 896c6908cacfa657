"""Reading entries ahead in worker processes (monitor.readpool, monitor.reading).

What must hold: readings made in another process are exactly the readings made here
(sentence keys included: str hashes differ between processes, the keys must not), they
come back in the entries' order, and clustering with them decides exactly as without.
"""
from __future__ import annotations

import os
import signal
from dataclasses import replace

import pytest

from monitor import readpool, reading
from monitor.cluster import Clusterer, ClusterConfig
from tests.test_cluster import DOCS

# Non-ASCII text (the lead and tail readings of a sentence differ), a long text cut at
# BODY_CHARS, an outlet named in the text, boilerplate: every branch of a reading.
EXTRA = [
    replace(DOCS[0], entry_id=10_001, title="İSTANBUL: Kılıçdaroğlu meets Erdoğan – Ankara Wire",
            text="İSTANBUL — Kılıçdaroğlu met Erdoğan on Monday. Ankara Wire reports. Встреча в Анкаре. " * 3),
    replace(DOCS[1], entry_id=10_002, text=("Police said the fire began at 3 a.m. on March 4. " * 120)),
]


def docs() -> list:
    return [*DOCS, *EXTRA]


def test_sentence_key_is_the_same_in_every_process():
    # a fixed value: a hash() based key would change with PYTHONHASHSEED
    assert reading.sentence_key(["police", "said", "fire"], frozenset()) == reading.sentence_key(
        ["police", "said", "fire"], frozenset())
    assert reading.sentence_key(["police", "said", "fire"], frozenset()) == 4014310636184710583
    assert reading.sentence_key(["posted", "3", "hours", "ago"], frozenset()) == reading.sentence_key(
        ["posted", "5", "hours", "ago"], frozenset())
    assert reading.sentence_key(["alone"], frozenset()) is None


def test_readings_from_workers_equal_readings_made_here_in_order(monkeypatch):
    monkeypatch.setattr(readpool, "MIN_PARALLEL", 1)
    monkeypatch.setattr(readpool, "BATCH", 7)  # several batches, some in flight at once
    items = docs()
    got = list(readpool.read_ahead(items, len(items), workers=2))
    assert [doc.entry_id for doc, _ in got] == [d.entry_id for d in items]
    for doc, r in got:
        assert r == reading.read(doc.title, doc.text, doc.outlet)
    assert any(not s[0].isascii() for _, r in got for s in r.sentences)  # the non-ASCII branch was read
    assert any(not r.complete for _, r in got)  # and the long-text one


def test_clustering_with_readings_from_workers_decides_as_without(monkeypatch):
    monkeypatch.setattr(readpool, "MIN_PARALLEL", 1)
    monkeypatch.setattr(readpool, "BATCH", 5)
    inline = Clusterer(ClusterConfig())
    expected = [inline.assign(d) for d in DOCS]
    pooled = Clusterer(ClusterConfig())
    got = [pooled.assign(d, r) for d, r in readpool.read_ahead(DOCS, len(DOCS), workers=1)]
    assert got == expected
    assert len({a.cluster_id for a in got}) < len(got)  # it did cluster


def test_small_runs_are_read_here_without_workers(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("workers were started for a small run")

    monkeypatch.setattr(readpool, "_Workers", no_pool)
    got = list(readpool.read_ahead(DOCS, len(DOCS)))
    assert len(got) == len(DOCS) < readpool.MIN_PARALLEL
    assert got[0][1] == reading.read(DOCS[0].title, DOCS[0].text, DOCS[0].outlet)


def test_a_killed_worker_costs_nothing_but_time(monkeypatch):
    pools = []
    real = readpool._Workers

    def capture(n):
        pools.append(real(n))
        return pools[-1]

    monkeypatch.setattr(readpool, "_Workers", capture)
    monkeypatch.setattr(readpool, "MIN_PARALLEL", 1)
    monkeypatch.setattr(readpool, "BATCH", 4)
    items = docs()
    got = []
    for n, pair in enumerate(readpool.read_ahead(items, len(items), workers=2)):
        got.append(pair)
        if n == 0:
            for proc, _ in pools[0].procs:
                os.kill(proc.pid, signal.SIGKILL)
    assert [d.entry_id for d, _ in got] == [d.entry_id for d in items]
    assert all(r == reading.read(d.title, d.text, d.outlet) for d, r in got)
    assert not any(proc.is_alive() for proc, _ in pools[0].procs)


@pytest.mark.parametrize("cores,expected", [(1, 0), (2, 1), (8, 2)])
def test_workers_leave_a_core_for_the_decisions(monkeypatch, cores, expected):
    monkeypatch.setattr(readpool.os, "cpu_count", lambda: cores)
    assert readpool.workers_available() == expected
