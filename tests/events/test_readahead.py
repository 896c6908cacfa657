"""Reading ahead: a worker reads entries while they are stored, then weighs the run.

Readings never leave the worker, so the run's features must be those made in this
process, whatever was read ahead: the same entries, others, or entries whose fields
changed since they were sent.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace

import pytest

from monitor.events import weighpool
from monitor.events.reading import read
from monitor.events.weighing import Weigher
from tests.events.test_weighpool import decided_on, docs, state, weigher


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weighpool, "MIN_PARALLEL", 1)
    monkeypatch.setattr(weighpool, "AHEAD_FROM", 1)
    monkeypatch.setattr(weighpool, "BATCH", 7)  # several batches


def made_here(items: list) -> tuple[list[tuple], tuple]:
    here = weigher()
    return [decided_on(here.weigh(d)) for d in items], state(here)


def test_a_reading_made_ahead_is_used_only_for_the_same_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = docs()[0]
    ahead: dict[int, tuple] = {}
    weighpool._read_ahead(ahead, [(doc.entry_id, doc.outlet, doc.title, doc.text)])
    assert ahead[doc.entry_id] == ((doc.outlet, doc.title, doc.text), read(doc.title, doc.text, doc.outlet))
    given = []
    monkeypatch.setattr(Weigher, "weigh", lambda self, d, reading=None: given.append(reading))
    fields = (doc.entry_id, doc.feed_id, doc.outlet, doc.title, doc.text, doc.published, None)
    weighpool._weigh(weigher(), fields, dict(ahead))
    assert given[-1] == ahead[doc.entry_id][1]  # the same outlet, title and text: read ahead
    edited = (*fields[:4], doc.text + " A correction was appended.", *fields[5:])
    weighpool._weigh(weigher(), edited, dict(ahead))
    assert given[-1] is None  # the text changed since: read again
    weighpool._weigh(weigher(), (999_999, *fields[1:]), dict(ahead))
    assert given[-1] is None  # never sent ahead


def test_a_run_weighed_by_a_worker_that_read_ahead_is_the_run_weighed_here(pooled: None) -> None:
    items = docs()
    expected, expected_state = made_here(items)
    ahead = weighpool.ReadAhead()
    # sent in another order, two of them with an older text, one never
    sent = items[1:][::-1]
    sent[0] = replace(sent[0], text="An earlier version of this report.")
    sent[5] = replace(sent[5], title="An earlier headline")
    ahead.add(sent)
    assert ahead.sent == len(items) - 1
    worker = ahead._worker
    there = weigher()
    got = [decided_on(f) for _, f in weighpool.weigh_ahead(there, items, len(items), workers=1, ahead=ahead)]
    assert got == expected
    assert there.holder is worker  # it weighed the run, and holds the statistics for the next one
    assert state(there) == expected_state  # (which takes them back)
    ahead.close()  # the run took the worker: nothing to let go


def test_at_most_ahead_max_entries_are_sent(pooled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weighpool, "AHEAD_MAX", 5)
    items = docs()
    ahead = weighpool.ReadAhead()
    ahead.add(items[:3])
    ahead.add(items[3:])
    assert ahead.sent == 5
    expected, _ = made_here(items)
    weighed = weighpool.weigh_ahead(weigher(), items, len(items), workers=1, ahead=ahead)
    assert [decided_on(f) for _, f in weighed] == expected


@pytest.mark.parametrize("when", ["while reading ahead", "during the run"])
def test_a_worker_killed_after_reading_ahead_costs_nothing_but_time(pooled: None, when: str) -> None:
    items = docs()
    expected, expected_state = made_here(items)
    ahead = weighpool.ReadAhead()
    worker = ahead._worker
    assert worker is not None
    ahead.add(items)
    if when == "while reading ahead":
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.join(timeout=20)
        ahead.add(items)  # sending to a dead worker is no error either
    there = weigher()
    got = []
    for n, (_, f) in enumerate(weighpool.weigh_ahead(there, items, len(items), workers=1, ahead=ahead)):
        got.append(decided_on(f))
        if n == 10 and when == "during the run":
            os.kill(worker.proc.pid, signal.SIGKILL)
    assert got == expected
    assert state(there) == expected_state
    assert not worker.proc.is_alive()


def test_a_run_smaller_than_it_was_started_for_lets_the_worker_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries stored may be clustered by another process first (two polls at once): the run
    is then smaller than the one the worker was started for, and it is weighed here."""
    items = docs()
    ahead = weighpool.ReadAhead()
    worker = ahead._worker
    assert worker is not None
    ahead.add(items)
    monkeypatch.setattr(weighpool, "AHEAD_FROM", len(items) + 1)
    expected, expected_state = made_here(items)
    there = weigher()
    got = [decided_on(f) for _, f in weighpool.weigh_ahead(there, items, len(items), workers=1, ahead=ahead)]
    assert got == expected
    assert state(there) == expected_state
    assert there.holder is None  # weighed here
    worker.proc.join(timeout=20)
    assert not worker.proc.is_alive()


def test_closing_lets_the_worker_go_at_once() -> None:
    ahead = weighpool.ReadAhead()
    worker = ahead._worker
    assert worker is not None
    ahead.add(docs() * 20)  # more than it can have read by now
    ahead.close()
    assert not worker.proc.is_alive()
    ahead.close()  # closing twice is harmless
    assert ahead.worker() is None


def test_entries_still_queued_when_the_run_begins_are_read_here(pooled: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll can store entries faster than the worker reads them. What is still queued for it
    when the run begins is not sent: this process reads those entries (and not the ones the
    worker has) while the worker weighs, and the run's features and statistics are the same."""
    items = docs()
    expected, expected_state = made_here(items)
    read_here: list[str] = []
    real_read = weighpool.read
    monkeypatch.setattr(weighpool, "read", lambda *args: read_here.append(args[0]) or real_read(*args))
    monkeypatch.setattr(weighpool, "_balanced", lambda *args: 1.0)  # all that is left to read, here
    ahead = weighpool.ReadAhead()
    worker = ahead._worker
    assert worker is not None
    os.kill(worker.proc.pid, signal.SIGSTOP)  # it takes nothing in, so sending blocks
    resume = threading.Timer(1.0, os.kill, (worker.proc.pid, signal.SIGCONT))
    def taken() -> None:
        for _ in range(1000):  # until the sending thread has taken what was added
            if ahead._queue.empty():
                return
            time.sleep(0.01)

    try:
        ahead.add(items[::2])  # sent: the pipe holds them until the worker takes them in
        taken()
        # a large message, for entries not in the run, fills the pipe and holds the sender
        ahead.add([replace(d, entry_id=90_000 + i, text="Filler text. " * 200_000)
                   for i, d in enumerate(items[:3])])
        taken()
        late = items[1::2]
        for start in range(0, len(late), 5):
            ahead.add(late[start:start + 5])  # queued behind it
        resume.start()  # the worker takes the first message in, and the run begins
        there = weigher()
        weighed = weighpool.weigh_ahead(there, items, len(items), workers=1, ahead=ahead)
        got = [decided_on(f) for _, f in weighed]
    finally:
        resume.cancel()
        os.kill(worker.proc.pid, signal.SIGCONT)
    assert ahead.unsent == {d.entry_id for d in late}
    # of each batch, the entries never sent; of the first two batches (made before the worker's
    # first figures come back) MAX_SHARE of them, then as _balanced says (here: all)
    expected_here = []
    for start in range(0, len(items), weighpool.BATCH):
        unsent = [d.title for d in items[start:start + weighpool.BATCH] if d.entry_id in ahead.unsent]
        early = start < 2 * weighpool.BATCH
        expected_here += unsent[:round(weighpool.MAX_SHARE * len(unsent))] if early else unsent
    assert read_here == expected_here
    assert got == expected
    assert state(there) == expected_state
