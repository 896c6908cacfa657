"""Readers during writes, a second writer, and a read transaction held open for 30 s.

The daemon polls 300 feeds every 2 s while news is published every second. Meanwhile
three processes loop over `clusters list`, `search` and `status`; a thread checks, each
time in one read transaction, that no feed update is half visible (entries without the
state that came with them, or state without its entries); `feeds add`, `recluster`,
`poll --all` and `feeds remove` come in as second writers; and one read transaction
stays open for 30 s, and on until the daemon has cycled and written under it. As the
README promises: no side may see "database is locked", every command must succeed and
every `--json` output parse, the daemon must go on cycling and writing during the long
read, and once the reader has gone the WAL must be cut back to its limit. Counts are
waited for (with a generous cap), not hoped for within a fixed time, so a loaded machine
runs longer instead of failing. bench/contention.py runs it for minutes.
"""
from __future__ import annotations

import json
import subprocess
import threading

import pytest

from monitor.storage.database import WAL_SIZE_LIMIT
from tests.support.feedfarm import FeedFarm
from tests.support.reliability import check_store, monitor, moved_back, polled_times, spawn, write_config
from tests.support.scenarios import LOCKED, READER_COMMANDS, Background, command_problems, contention_run

MIN_CHECKS = 20  # consistency checks, each a snapshot of the whole store, while everything ran
MIN_CYCLES = 4  # daemon cycles finished under the long read transaction


@pytest.mark.slow
def test_readers_writers_and_a_long_read_transaction(tmp_path):
    figures = contention_run(tmp_path, feeds=300, seconds=36, long_read=30, readers=3, min_checks=MIN_CHECKS,
                             min_cycles=MIN_CYCLES, log=lambda line: None)
    # every reader and second writer exited 0, printed JSON where asked and never said
    # "locked"; the daemon logged no failed cycle and nothing locked; no helper thread died
    assert figures["problems"] == [], "\n".join(figures["problems"][:30])
    assert set(figures["reader_runs"]) == {args[0] for args in READER_COMMANDS}
    assert figures["consistency_checks"] >= MIN_CHECKS
    assert set(figures["writers"]) == {"feeds add", "recluster --since", "poll --all", "feeds remove"}
    assert figures["long_read_seconds"] >= 30
    assert figures["daemon_exit"] == 0 and figures["daemon_cycles_during_long_read"] >= MIN_CYCLES
    assert figures["entries_written_during_long_read"] > 0  # the daemon kept writing under the reader
    assert figures["wal_peak_bytes"] > WAL_SIZE_LIMIT  # the WAL did grow behind the reader...
    assert figures["wal_after_bytes"] <= WAL_SIZE_LIMIT  # ...and was cut back once it went


@pytest.mark.slow
def test_two_polls_at_once_both_succeed(tmp_path):
    """An operator's `monitor poll` while the daemon's cycle runs: both succeed without a
    word about a locked database, both cluster the entries they stored, one after the other
    (the first to take the write lock clusters all), and no feed's state ever goes back to
    the slower poll's: watched while they run, and after each round no entry was first
    seen after its feed's last poll."""
    farm = FeedFarm(200, seed=9)
    problems: list[str] = []
    threads = Background(problems)
    stop = threading.Event()
    try:
        farm.publish(events=10, reporters=0.2, one_offs=1.0)
        config = write_config(tmp_path / "monitor.toml", farm)
        db = tmp_path / "monitor.db"
        (tmp_path / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(tmp_path / "feeds.opml"))

        def watch() -> None:
            seen = polled_times(db)
            while not stop.wait(0.02):
                now = polled_times(db)
                problems.extend(moved_back(seen, now))
                seen = now

        threads.start("watch", watch)
        for _ in range(3):
            farm.publish(events=3, reporters=0.4, one_offs=0.5)
            procs = [spawn(db, config, "poll", "--all") for _ in range(2)]
            for proc in procs:
                _, stderr = proc.communicate(timeout=120)
                assert proc.returncode == 0, stderr[-2000:]
                assert not LOCKED.search(stderr), stderr[-2000:]
            assert check_store(db, farm, complete=True) == []
    finally:
        stop.set()
        threads.join(timeout=30)
        farm.close()
    assert problems == [], "\n".join(problems[:20])


def test_a_helper_thread_that_raises_is_a_problem_not_a_warning():
    """The scenario's readers and checkers run on threads: one that dies (output that is not
    JSON, a timeout, a locked database) must fail the run, and stop its waiting."""
    problems: list[str] = []
    threads = Background(problems)
    threads.start("reader-0", lambda: json.loads("Traceback (most recent call last):"))
    threads.start("checker", lambda: None)
    threads.join(timeout=30)
    assert threads.failed.is_set()
    assert len(problems) == 1 and problems[0].startswith("thread reader-0 died: JSONDecodeError"), problems


def test_the_readme_promises_for_every_command_are_checked():
    """Exit 0, nothing said of a locked database, `--json` output that parses; a headline
    about something "blocked" is not a lock."""
    def run(code: int, stdout: str, stderr: str = "") -> list[str]:
        proc = subprocess.CompletedProcess([], code, stdout, stderr)
        return command_problems(("search", "x", "--json"), proc)

    assert run(0, json.dumps([{"title": "Telegram blocked in Iran"}])) == []
    assert run(0, "[]", "monitor: database /x/monitor.db is locked by another process (timed out waiting)")
    assert run(0, "[]", "sqlite3.OperationalError: database table is locked")
    assert run(0, '[{"title": "cut off')
    assert run(74, "", "monitor: database /x/monitor.db: disk I/O error")
