"""The daemon: APScheduler 3 BlockingScheduler around Monitor, with systemd's notify protocol.

One "cycle" job runs every TICK seconds (max_instances=1, coalesce=True, bounded
misfire grace). Each run asks the database which feeds are due by their own next_poll,
so a feed's schedule lives in its row, not in a global timer; when nothing is due the run
costs one query. A separate watchdog job pings systemd only while the cycle is healthy:
a cycle that has made no progress for `stall_seconds` stops the pings, and systemd
restarts the service. SIGTERM/SIGINT stop scheduling, let the running cycle finish the
feed it is storing (each feed is one transaction), and exit 0 within STOP_GRACE seconds.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from monitor.core import Monitor, compiled_search
from monitor.feeds.parse import parser_info
from monitor.logs import event, get_logger, setup_logging
from monitor.storage import service
from monitor.storage.database import iso

log = get_logger("daemon")

TICK = 30.0  # seconds between "is anything due?" checks
STOP_GRACE = 25.0  # seconds a stopping daemon waits for the running cycle (systemd allows 30)


# systemd notification protocol (sd_notify) over the datagram socket in $NOTIFY_SOCKET.
# A few lines of stdlib instead of a dependency: READY=1 once the daemon can work,
# WATCHDOG=1 from the healthy main loop, STOPPING=1 on shutdown. Without NOTIFY_SOCKET
# (a terminal, tests, other supervisors) every call is a no-op.

def notify(state: str) -> bool:
    """Send one state string; True if a socket was there to take it. Never raises."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False


# How long systemd waits for a start that upgrades the database schema: a migration may
# rebuild the full-text index (about 6 s per 100,000 full-text entries here), far past the
# default 90 s start timeout on a large database. Told only when a migration is pending.
UPGRADE_TIMEOUT = 30 * 60


def upgrading(from_version: int, to_version: int) -> None:
    """Before the schema migrations of `monitor run`: extend systemd's start timeout, and log it."""
    setup_logging()  # the daemon's log format already; run() applies the configured level
    notify(f"EXTEND_TIMEOUT_USEC={UPGRADE_TIMEOUT * 1_000_000}\n"
           f"STATUS=upgrading the database schema {from_version} -> {to_version}")
    event(log, "upgrading", from_version=from_version, to_version=to_version)


def watchdog_seconds() -> float | None:
    """How often to ping: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None if off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


class Daemon:
    def __init__(self, mon: Monitor, *, tick: float = TICK) -> None:
        self.mon = mon
        self.tick = tick
        self.stop = threading.Event()
        self.work = threading.Lock()  # the cycle and the digest job share one database connection
        self.idle = threading.Event()
        self.idle.set()
        self.last_progress = time.monotonic()
        s = mon.settings
        # A cycle that has stored nothing for this long is wedged, not slow: every fetch has
        # a deadline, every parse a budget and every lock wait a busy timeout.
        self.stall_seconds = 2 * s.polling.timeout + s.polling.parse_timeout + s.busy_timeout + 120
        self.scheduler = BlockingScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(max_workers=3)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": int(self.tick * 4)})

    # -- jobs -------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.idle.is_set() or time.monotonic() - self.last_progress < self.stall_seconds

    def cycle(self) -> None:
        if self.stop.is_set():
            return
        with self.work:  # held for every use of the connection, so run() can wait for the last one
            if self.stop.is_set():
                return
            self._cycle()
            self._schedule_next()

    def _cycle(self) -> None:
        self.idle.clear()
        self.last_progress = time.monotonic()
        try:
            # The clustering of a large first poll is progress too: it must not read as a stall.
            report = self.mon.poll(stop=self.stop, progress=self._progress, on_clustered=self._progress)
            purged = self.mon.apply_retention()
            if purged:
                event(log, "retention", deleted_entries=purged)
            if not self.stop.is_set():  # no SMTP session started while stopping; the outbox keeps it
                self._digests()  # "immediate" topics go out right after the cycle that matched
            if report.feeds:
                event(log, "cycle_done", feeds=report.feeds, fetched=report.fetched,
                      not_modified=report.not_modified, failed=report.failed, new=report.new,
                      updated=report.updated, seconds=round(report.seconds, 2))
        except Exception as exc:  # the daemon outlives a failed cycle (disk full, locked db...)
            event(log, "cycle_failed", logging.ERROR, error=type(exc).__name__, detail=str(exc)[:300])
        finally:
            self.idle.set()
            self._record_state()

    def digests(self) -> None:
        """Scheduled digests and outbox retries between cycles; skipped while a cycle runs."""
        if self.stop.is_set() or not self.work.acquire(blocking=False):
            return
        try:
            if not self.stop.is_set():
                self._digests()
        finally:
            self.work.release()

    def _digests(self) -> None:
        if not self.mon.settings.topics:
            return
        try:
            created, report = self.mon.send_digests()
        except Exception as exc:  # an SMTP outage or a full disk must not stop polling
            event(log, "digests_failed", logging.ERROR, error=type(exc).__name__, detail=str(exc)[:300])
            return
        for o in report.outcomes:
            level = logging.INFO if o.status == "sent" else logging.WARNING
            event(log, "digest_" + o.status, level, topic=o.topic, digest=o.digest_id,
                  message_id=o.message_id, accepted=len(o.accepted), refused=len(o.refused), error=o.error)
        if created and not report.outcomes:
            event(log, "digests_queued", count=len(created))

    def _progress(self, _outcome: object) -> None:
        self.last_progress = time.monotonic()

    def watchdog(self) -> None:
        if self.healthy():
            notify("WATCHDOG=1")
        else:
            event(log, "watchdog_withheld", logging.ERROR,
                  stalled_seconds=int(time.monotonic() - self.last_progress))

    def _schedule_next(self) -> None:
        """Run again when the next feed is due, if that is sooner than the next tick."""
        if self.stop.is_set():
            return
        try:
            due = service.next_poll_due(self.mon.store)
            now = datetime.now(UTC)
            when = due or now + timedelta(seconds=self.tick)
            when = min(max(when, now + timedelta(seconds=1)), now + timedelta(seconds=self.tick))
            self.scheduler.modify_job("cycle", next_run_time=when)
        except Exception as exc:
            event(log, "schedule_failed", logging.WARNING, detail=str(exc)[:200])

    def _set_state(self, **values: str) -> None:
        """Record the daemon's state for `monitor status`; a failure here must not stop the daemon."""
        try:
            service.record_service_state(self.mon.store, values, datetime.now(UTC))
        except Exception as exc:
            event(log, "state_not_recorded", logging.WARNING, detail=str(exc)[:200])

    def _record_state(self) -> None:
        self._set_state(pid=str(os.getpid()), heartbeat=iso(datetime.now(UTC)), state="running")

    # -- lifecycle ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        notify("STOPPING=1")
        event(log, "stopping", signal=signal.Signals(signum).name)
        # shutdown() takes scheduler locks; never from inside the handler itself.
        threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": False}, daemon=True).start()

    def run(self) -> int:
        if self.mon.settings.topics:
            self.mon.transport()  # a missing SMTP credential is a configuration error, before READY
            self.mon.check_destinations()  # so is a chat URL Apprise cannot load
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.scheduler.add_job(self.cycle, "interval", seconds=self.tick, id="cycle",
                               next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self.digests, "interval", seconds=60, id="digests")
        ping = watchdog_seconds()
        if ping:
            self.scheduler.add_job(self.watchdog, "interval", seconds=ping, id="watchdog",
                                   next_run_time=datetime.now(UTC))
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        event(log, "starting", database=self.mon.settings.database, feeds=len(self.mon.feeds()),
              watchdog=ping and round(ping, 1))
        parser = parser_info()
        if not parser.fast_path:  # never silently: every poll parses several times slower
            event(log, "fast_parser_off", logging.WARNING, feedparser=parser.feedparser,
                  compared_with=",".join(parser.verified))
        # the same results from the Python twins, but a first poll takes longer
        missing = [part for part, built in (("clustering", compiled_search()), ("text", parser.compiled_text))
                   if not built]
        if missing:
            event(log, "compiled_search_off", logging.WARNING, detail="built without a C compiler",
                  missing=",".join(missing))
        self._record_state()
        self.scheduler.start()  # blocks until shutdown
        # Wait for the job that is using the database connection to finish with it: the
        # caller closes the connection when run() returns, and closing it under a running
        # job (its last state write, its next-run query) crashed the process with SIGSEGV.
        if not self.work.acquire(timeout=STOP_GRACE):
            event(log, "stop_timeout", logging.ERROR, detail="cycle still running; leaving it to roll back")
            logging.shutdown()
            os._exit(0)  # the open transaction is rolled back by SQLite, nothing half-stored
        try:
            self._mark_stopped()
        finally:
            self.work.release()  # later jobs see `stop` under the lock and return without touching it
        event(log, "stopped")
        return 0

    def _on_started(self, _event: object) -> None:
        notify("READY=1\nSTATUS=polling")
        event(log, "ready")

    def _mark_stopped(self) -> None:
        self._set_state(state="stopped")
