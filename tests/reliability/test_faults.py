"""Faults around the daemon: a full disk, a read-only database, a mail server that is down.

What must hold each time: the cycle fails cleanly with one clear log line, the daemon
stays up and recovers once the fault is gone, nothing already stored is damaged (integrity,
every feed's entries and state together), and nothing is lost afterwards.

How real each fault is:
- disk full: a real filesystem that is really full (a 8 MB tmpfs, mounted in a user and
  mount namespace so no privileges are needed; skipped where unprivileged namespaces are
  off), with `monitor run` as a subprocess; plus SQLite's own SQLITE_FULL in-process, by
  capping the daemon connection's page count (`PRAGMA max_page_count`), which runs anywhere;
- read-only: a read-only bind mount of the database folder, for commands started on it
  (namespaces again); a filesystem cannot turn read-only under a process that has the file
  open for writing without a forced remount, so for the daemon mid-run SQLite's own
  SQLITE_READONLY is produced on its connection (`PRAGMA query_only`);
- SMTP: aiosmtpd really stopped (connection refused) for five poll cycles, then restarted.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.core import open_monitor
from monitor.daemon import Daemon
from monitor.logs import KeyValueFormatter
from tests.support.feedfarm import FeedFarm, Mailbox
from tests.support.reliability import check_digests, check_store, monitor, monitor_argv, write_config

ROOT = Path(__file__).resolve().parents[2]


def namespaces_work(tmp_path: Path) -> bool:
    """Can we mount a tmpfs in our own user and mount namespace (no privileges needed)?"""
    target = tmp_path / "probe"
    target.mkdir()
    try:
        return subprocess.run(["unshare", "-Urm", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def log_lines():
    """The `monitor` logger's lines as the daemon writes them (key=value), collected in a list."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(KeyValueFormatter(with_time=False))
    logger = logging.getLogger("monitor")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture
def world(tmp_path):
    farm = FeedFarm(40, seed=17)
    farm.publish(events=4, reporters=0.3, one_offs=1.0)
    config = write_config(tmp_path / "monitor.toml", farm, topics=False,
                          polling={"interval": '"1s"', "min_interval": '"1s"', "parse_workers": "1"})
    db = tmp_path / "monitor.db"
    (tmp_path / "feeds.opml").write_bytes(farm.opml())
    monitor(db, config, "feeds", "import", str(tmp_path / "feeds.opml"))
    monitor(db, config, "poll")
    yield farm, config, db
    farm.close()


def counts(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        return (conn.execute("SELECT count(*) FROM entries").fetchone()[0],
                conn.execute("SELECT count(*) FROM memberships").fetchone()[0])
    finally:
        conn.close()


def dump(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def run_cycle_after(daemon: Daemon, seconds: float = 1.1) -> None:
    time.sleep(seconds)  # every feed is due again (interval 1 s)
    daemon.cycle()


@pytest.mark.parametrize("fault", ["database full", "read-only"])
def test_daemon_cycle_fails_cleanly_and_recovers(world, fault):
    farm, config, db = world
    before = counts(db)
    with open_monitor(str(config), str(db)) as mon, log_lines() as lines:
        daemon = Daemon(mon)
        conn = mon.store.db.conn
        if fault == "database full":
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL at the next page the database needs
        else:
            conn.execute("PRAGMA query_only = ON")  # SQLITE_READONLY on the next write
        for _ in range(3):
            farm.publish(events=6, reporters=0.6, one_offs=1.0)  # news keeps coming during the fault
            run_cycle_after(daemon)
        failed = [line for line in lines if "event=cycle_failed" in line]
        assert len(failed) >= 2, lines
        reason = "database or disk is full" if fault == "database full" else "is read-only"
        assert "error=StorageError" in failed[0] and reason in failed[0] and str(db) in failed[0], failed[0]
        assert daemon.healthy()  # the watchdog keeps the service up
        assert not check_store(db, farm)  # no feed's entries without its state or the other way round
        assert counts(db)[0] >= before[0]
        if fault == "database full":
            conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
        else:
            conn.execute("PRAGMA query_only = OFF")
        lines.clear()
        run_cycle_after(daemon)
        assert any("event=cycle_done" in line for line in lines), lines
        assert not [line for line in lines if "cycle_failed" in line]
    assert check_store(db, farm, complete=True) == []  # everything published during the fault is in


def test_daemon_on_a_really_full_filesystem(tmp_path):
    if not namespaces_work(tmp_path):
        pytest.skip("unprivileged user and mount namespaces are not available here")
    proc = subprocess.run(["unshare", "-Urm", sys.executable, "-m", "tests.support.scenarios", "disk_full",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["problems"] == []
    assert figures["free_bytes_when_full"] == 0 and figures["failed_cycles"] >= 2
    assert "event=cycle_failed" in figures["log_line"] and "database or disk is full" in figures["log_line"]
    assert figures["recovered"] and figures["daemon_exit"] == 0


@pytest.mark.parametrize("wal", [False, True], ids=["closed", "in-use"])
def test_commands_on_a_read_only_filesystem_fail_cleanly_and_change_nothing(world, tmp_path, wal):
    """`closed`: nothing has the database open, so there is no -wal/-shm and SQLite cannot open
    it at all; `in-use`: the -wal/-shm of a running daemon exist, so it opens, reads work,
    and the first write fails."""
    if not namespaces_work(tmp_path):
        pytest.skip("unprivileged user and mount namespaces are not available here")
    farm, config, db = world
    folder = db.parent
    before = dump(db)
    holder = sqlite3.connect(db) if wal else None  # keeps the -wal and -shm files in place
    if holder:
        holder.execute("SELECT count(*) FROM feeds").fetchone()
    farm.publish(events=3, reporters=0.5)
    read_only = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    try:
        for args in (("poll", "--all"), ("feeds", "add", farm.url(0) + "?new"), ("recluster",), ("status",)):
            proc = subprocess.run(["unshare", "-Urm", "sh", "-c", read_only, "sh", *monitor_argv(db, config, *args)],
                                  capture_output=True, text=True, timeout=60)
            if wal and args == ("status",):
                assert proc.returncode == 0, proc.stderr  # reading still works
                continue
            assert proc.returncode == 74, (args, proc.returncode, proc.stdout, proc.stderr)
            assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert "read-only" in proc.stderr, proc.stderr
    finally:
        if holder:
            holder.close()
    assert dump(db) == before
    monitor(db, config, "poll", "--all")  # writable again: the news of the read-only time arrives
    assert check_store(db, farm, complete=True) == []


def test_smtp_outage_for_five_cycles_then_every_digest_once_in_order(tmp_path):
    farm, mail = FeedFarm(30, seed=23), Mailbox()
    try:
        config = write_config(tmp_path / "monitor.toml", farm, smtp_port=mail.port,
                              polling={"parse_workers": "1"})
        db = tmp_path / "monitor.db"
        farm.publish(events=2, reporters=0.3, one_offs=1.0, on_topic=False)
        (tmp_path / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(tmp_path / "feeds.opml"))
        now = [datetime.now(timezone.utc)]
        with open_monitor(str(config), str(db), clock=lambda: now[0]) as mon, log_lines() as lines:
            daemon = Daemon(mon)
            daemon.cycle()
            mail.stop()  # the mail server goes away
            for _ in range(5):  # five 16-minute poll cycles, each with news for the topic
                farm.publish(events=2, reporters=0.3, on_topic=True)
                now[0] += timedelta(minutes=16)
                daemon.cycle()
                for _ in range(15):  # the daemon's digest job, every minute in between
                    now[0] += timedelta(minutes=1)
                    daemon.digests()
            statuses = dict(sqlite3.connect(db).execute("SELECT status, count(*) FROM digests GROUP BY 1").fetchall())
            assert statuses == {"pending": 5} and mail.received == []  # every cycle queued one; none lost
            assert any("connection refused" in line for line in lines)
            head_retry = datetime.fromisoformat(sqlite3.connect(db).execute(
                "SELECT next_attempt FROM digests ORDER BY created, id LIMIT 1").fetchone()[0])
            mail.restart()
            back = now[0]
            minutes = 0
            while minutes < 6 * 60 and len(mail.received) < 5:  # back: the job keeps running every minute
                now[0] += timedelta(minutes=1)
                minutes += 1
                daemon.digests()
        order = [r[0] for r in sqlite3.connect(db).execute("SELECT message_id FROM digests ORDER BY created, id")]
        assert mail.received == order  # every digest once, in the order it was written
        problems, figures = check_digests(db, mail.received, complete=True)
        assert problems == [] and figures["duplicates"] == 0
        # all of them at the oldest one's next retry (backoff 1, 4, 16, 64 minutes, then every 4 hours)
        assert back + timedelta(minutes=minutes - 1) < head_retry <= back + timedelta(minutes=minutes)
    finally:
        farm.close()
        mail.stop()


def test_a_write_failing_between_clustering_and_topic_matching_loses_no_match(tmp_path, monkeypatch):
    """The disk fills (or the process dies) just after the clusters are written: the next
    cycle must still match them. A cycle matches only the clusters it touched, so the
    clusters and their matches are one transaction."""
    from monitor.digests import topics
    from monitor.errors import StorageError
    from tests.support.reliability import unmatched_on_topic

    farm = FeedFarm(20, seed=29)
    try:
        farm.publish(events=3, reporters=0.5, one_offs=1.0, on_topic=True)
        config = write_config(tmp_path / "monitor.toml", farm, polling={"parse_workers": "1"})
        db = tmp_path / "monitor.db"
        (tmp_path / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(tmp_path / "feeds.opml"))
        real = topics.record_matches

        def full(*args, **kwargs):
            raise StorageError(f"database {db}: database or disk is full")

        with open_monitor(str(config), str(db)) as mon:
            monkeypatch.setattr(topics, "record_matches", full)
            with pytest.raises(StorageError):
                mon.poll(all_feeds=True)
            monkeypatch.setattr(topics, "record_matches", real)
            mon.poll(all_feeds=True)  # all 304 now: only what the failed cycle left behind
        assert unmatched_on_topic(db) == []
        assert check_store(db, farm, complete=True) == []
    finally:
        farm.close()
