"""Readers during writes, a second writer, and a read transaction held open for 30 s.

The daemon polls 300 feeds every 2 s while news is published every second. Meanwhile
three processes loop over `clusters list`, `search` and `status`; a thread checks, each
time in one read transaction, that no feed update is half visible (entries without the
state that came with them, or state without its entries); `feeds add`, `recluster`,
`poll --all` and `feeds remove` come in as second writers; and one read transaction
stays open for 30 s. No side may see "database is locked", every command must succeed,
the daemon must go on cycling during the long read, and once the reader has gone the WAL
must be cut back to its limit. bench/contention.py runs it for minutes.
"""
from __future__ import annotations

import pytest

from monitor.store import WAL_SIZE_LIMIT
from tests.feedfarm import FeedFarm
from tests.reliability import check_store, monitor, spawn, write_config
from tests.scenarios import READER_COMMANDS, contention_run

pytestmark = pytest.mark.slow


def test_readers_writers_and_a_long_read_transaction(tmp_path):
    figures = contention_run(tmp_path, feeds=300, seconds=36, long_read=30, readers=3, log=lambda line: None)
    assert figures["problems"] == [], "\n".join(figures["problems"][:30])
    assert set(figures["reader_runs"]) == {args[0] for args in READER_COMMANDS}
    assert figures["consistency_checks"] >= 20
    assert set(figures["writers"]) == {"feeds add", "recluster --since", "poll --all", "feeds remove"}
    assert figures["daemon_exit"] == 0 and figures["daemon_cycles"] >= 4
    assert figures["entries_written_during_long_read"] > 0  # the daemon kept writing under the reader
    assert figures["wal_peak_bytes"] > WAL_SIZE_LIMIT  # the WAL did grow behind the reader...
    assert figures["wal_after_bytes"] <= WAL_SIZE_LIMIT  # ...and was cut back once it went


def test_two_polls_at_once_both_succeed(tmp_path):
    """An operator's `monitor poll` while the daemon's cycle runs: both cluster the entries
    they stored, one after the other (the first to take the write lock clusters all)."""
    farm = FeedFarm(200, seed=9)
    try:
        farm.publish(events=10, reporters=0.2, one_offs=1.0)
        config = write_config(tmp_path / "monitor.toml", farm)
        db = tmp_path / "monitor.db"
        (tmp_path / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(tmp_path / "feeds.opml"))
        for _ in range(3):
            farm.publish(events=3, reporters=0.4, one_offs=0.5)
            procs = [spawn(db, config, "poll", "--all") for _ in range(2)]
            for proc in procs:
                assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
                proc.stderr.close()
            assert check_store(db, farm, complete=True) == []
    finally:
        farm.close()
