"""The reliability scenarios as functions: the tests run them small, bench/ scripts run them big.

Each takes a working directory and counts, runs real `monitor` processes against the
loopback FeedFarm and Mailbox of tests/support/feedfarm.py (and, for crash_run, the Webhook
of tests/support/reliability.py as the topic's chat destination), checks the invariants of
tests/support/reliability.py, and returns a dict of figures including "problems" (the broken
invariants; empty when nothing was lost).
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
import traceback
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from monitor.digests.outbox import LEASE
from monitor.storage.database import iso
from tests.support.feedfarm import FeedFarm, Mailbox, pick_failures
from tests.support.reliability import (
    CHAT,
    MAIL,
    Webhook,
    check_digests,
    check_store,
    excess_deliveries,
    kill9,
    monitor,
    monitor_argv,
    moved_back,
    polled_times,
    read_only,
    sigkill,
    spawn,
    tree_rss,
    unmatched_on_topic,
    unrecorded_deliveries,
    wait_for,
    wal_bytes,
    write_config,
)

Log = Callable[[str], None]
SUITE = Path(__file__).parent.parent  # tests/: the scenarios' own lines are somewhere below it
PHASES = ("fetch", "store", "cluster", "clustered", "digest", "daemon")
# crash_run's order of stages: `digest send` twice a round, since it has the most chosen moments
# (_Killer.DIGEST_KILLS), mail's and the chat destination's
ROTATION = ("fetch", "store", "digest", "cluster", "clustered", "digest", "daemon")


def _stored_current(db: Path, farm: FeedFarm, changed: set[int]) -> int:
    """How many of the `changed` feeds already have their current document stored."""
    try:
        conn = read_only(db)
        try:
            rows = conn.execute("SELECT url, etag FROM feeds").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    current = {farm.feeds[i].etag for i in changed}
    return sum(1 for url, etag in rows if farm.index_of(url) in changed and etag in current)


def _unclustered(db: Path) -> int:
    try:
        conn = read_only(db)
        try:
            return conn.execute("SELECT count(*) FROM entries e WHERE NOT EXISTS "
                                "(SELECT 1 FROM memberships m WHERE m.entry_id = e.id)").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def _changed(db: Path, farm: FeedFarm) -> set[int]:
    conn = read_only(db)
    try:
        stored = {farm.index_of(url): etag for url, etag in conn.execute("SELECT url, etag FROM feeds")}
    finally:
        conn.close()
    return {f.index for f in farm.feeds if stored.get(f.index) != f.etag}


def _digest_states(db: Path) -> dict[str, int]:
    """Digests in all, pending, held by a claim or backoff; and pending per channel (mail, chat)."""
    conn = read_only(db)
    try:
        states = dict(conn.execute("SELECT status, count(*) FROM digests GROUP BY status").fetchall())
        held = conn.execute("SELECT count(*) FROM digests WHERE status = 'pending' AND next_attempt > ?",
                            [iso(datetime.now(timezone.utc))]).fetchone()[0]
        mail = conn.execute("SELECT count(*) FROM digests WHERE status = 'pending' AND channel = 'mail'"
                            ).fetchone()[0]
    finally:
        conn.close()
    pending = states.get("pending", 0)
    return {"all": sum(states.values()), "pending": pending, "held": held, MAIL: mail, CHAT: pending - mail}


def _landing(db: Path, farm: FeedFarm, changed: set[int]) -> str:
    """Where the killed cycle was, read from what it left behind."""
    stored = _stored_current(db, farm, changed)
    if stored < len(changed):
        return "storing" if stored else "fetching"
    conn = read_only(db)
    try:
        unfinished = conn.execute("SELECT count(*) FROM cycles WHERE id = (SELECT max(id) FROM cycles) "
                                  "AND finished IS NULL").fetchone()[0]
    finally:
        conn.close()
    if _unclustered(db):
        return "clustering"
    return "clusters and matches committed" if unfinished else "after the cycle"


class _Killer:
    """Starts one `monitor` process for a stage and SIGKILLs it there (see crash_run)."""

    # digest() kills `digest send` at these moments in turn. A run starts (about 0.7 s: Python, the
    # config, Apprise's plugins), queues the digests, then sends mail, then chat (tens of ms).
    DIGEST_KILLS = ("at the SMTP server's 250", "at the webhook's receipt",
                    "with the webhook request in flight", "right after the webhook's 200",
                    "just after queueing", "at a random moment of sending", "at a random moment")

    def __init__(self, db: Path, config: Path, farm: FeedFarm, mail: Mailbox, hook: Webhook,
                 rng: random.Random) -> None:
        self.db, self.config, self.farm, self.mail, self.hook, self.rng = db, config, farm, mail, hook, rng
        self.digest_kills = 0

    def digest(self) -> tuple[subprocess.Popen, threading.Event, str]:
        """`digest send` with news waiting, killed in turn (DIGEST_KILLS) inside the at-least-once
        window of mail (the SMTP server has the message, its "250" not yet sent) and of chat (the
        webhook has the message, before its "200", or after it before the database's "sent"); with
        a webhook request in flight that the webhook then drops (the digest must stay unsent);
        just after the digests were queued, at a random moment of sending them, and at a random
        moment of the whole run. A kill that did not happen (the run ended first) is tried again."""
        if _digest_states(self.db)["held"]:
            # a sender killed after claiming a digest holds the topic's queue for the claim's
            # 10 minutes: let that time pass, as the daemon's digest job would
            final_send(self.db, self.config, later=LEASE + timedelta(minutes=1))
        self.farm.publish(events=1, reporters=0.3, on_topic=True)
        monitor(self.db, self.config, "poll", "--all")  # a clean cycle: a digest is due
        before = _digest_states(self.db)
        proc = spawn(self.db, self.config, "digest", "send")
        killed = threading.Event()
        how = self.DIGEST_KILLS[self.digest_kills % len(self.DIGEST_KILLS)]

        def kill_now() -> None:  # runs in the server's thread, at the chosen moment of the exchange
            if not killed.is_set():
                killed.set()
                sigkill(proc.pid)

        where = ""
        if how == "at the SMTP server's 250":
            self.mail.on_accept = kill_now  # after the message is accepted, before the "250" goes out
            wait_for(lambda: killed.is_set() or proc.poll() is not None, 30)
            self.mail.on_accept = None
            where = "digest: after the server accepted"
        elif how == "at the webhook's receipt":
            self.hook.on_receive = kill_now  # the webhook has the message; its "200" not sent yet
            wait_for(lambda: killed.is_set() or proc.poll() is not None, 30)
            self.hook.on_receive = None
            where = "digest: after the webhook accepted"
        elif how == "with the webhook request in flight":
            def kill_and_drop() -> bool:  # the sender dies before the webhook took the message
                kill_now()
                return True

            self.hook.on_request = kill_and_drop
            wait_for(lambda: killed.is_set() or proc.poll() is not None, 30)
            self.hook.on_request = None
            where = "digest: webhook request in flight, not taken"
        elif how == "right after the webhook's 200":
            self.hook.on_answer = kill_now
            wait_for(lambda: killed.is_set() or proc.poll() is not None, 30)
            self.hook.on_answer = None
            if killed.is_set():
                proc.wait(timeout=10)
                # the sender may have recorded "sent" in the moment between the 200 and the kill
                where = ("digest: after the webhook answered" if _digest_states(self.db)[CHAT] > before[CHAT]
                         else "digest: after recording it sent")
        else:
            if how == "at a random moment":
                wait_for(lambda: proc.poll() is not None, self.rng.uniform(0.2, 1.0))
            else:  # from the moment the digests were queued: just then, or a random moment of sending
                wait_for(lambda: _digest_states(self.db)["all"] > before["all"] or proc.poll() is not None,
                         30, 0.002)
                if how == "at a random moment of sending":
                    wait_for(lambda: proc.poll() is not None, self.rng.uniform(0, 0.1), 0.002)
            if proc.poll() is None:
                sigkill(proc.pid)
                proc.wait(timeout=10)
                killed.set()
                after = _digest_states(self.db)
                where = ("digest: before queueing" if after["all"] == before["all"] else
                         "digest: queued, not recorded as sent" if after[MAIL] > before[MAIL] else
                         "digest: mail sent, chat not recorded as sent" if after[CHAT] > before[CHAT] else
                         "digest: after recording it sent")
        if killed.is_set():
            self.digest_kills += 1
        return proc, killed, where

    def cycle(self, phase: str, changed: set[int]) -> subprocess.Popen:
        """`poll --all` (or `run` for "daemon"), left running until the stage is reached."""
        db, farm, rng = self.db, self.farm, self.rng
        proc = spawn(db, self.config, *(("run",) if phase == "daemon" else ("poll", "--all")))
        done = proc.poll
        base = farm.requests
        if phase == "fetch":
            k = rng.randint(1, len(farm.feeds) // 2)
            wait_for(lambda: farm.requests - base >= k or done() is not None, 30, 0.005)
        elif phase == "store":
            j = rng.randint(1, max(1, len(changed) - 1))
            wait_for(lambda: _stored_current(db, farm, changed) >= j or done() is not None, 30, 0.01)
        elif phase == "cluster":
            wait_for(lambda: _stored_current(db, farm, changed) >= len(changed) or done() is not None, 30, 0.01)
            time.sleep(rng.uniform(0, 0.15))
        elif phase == "clustered":  # every entry has its cluster: the moment before topic matches were written
            wait_for(lambda: (_stored_current(db, farm, changed) >= len(changed) and not _unclustered(db))
                     or done() is not None, 30, 0.003)
        else:  # the daemon, at a random moment
            wait_for(lambda: done() is not None, rng.uniform(0.8, 4.0))
        return proc


def crash_run(workdir: Path, *, feeds: int = 200, kills: int = 20, seed: int = 1, log: Log = print) -> dict:
    """SIGKILL `monitor poll --all`, `monitor digest send` and `monitor run` at chosen and random
    moments, `kills` times, with new entries published before each start; check every
    invariant after each kill, then after a final clean poll and send. The topic has a mail
    recipient and a chat destination (a json:// webhook): both channels are checked alike.

    Duplicates are counted per message: after each kill, every digest whose server has it but
    whose row is not "sent" is in the documented window (the next sender sends it again), and a
    message may arrive once more per kill that found it there, never more."""
    rng = random.Random(seed)
    farm = FeedFarm(feeds, seed=seed)
    mail = Mailbox()
    hook = Webhook()
    db = workdir / "monitor.db"
    config = write_config(workdir / "monitor.toml", farm, smtp_port=mail.port, notify=[hook.url],
                          polling={"interval": '"2s"', "min_interval": '"1s"'})
    servers = {MAIL: mail.received, CHAT: hook.received}
    figures: dict = {"feeds": feeds, "kills": 0, "landed": Counter(), "problems": [], "orphans": 0,
                     "exited_before_kill": 0, "in_window": Counter()}
    windows: Counter = Counter()  # (channel, message) -> kills that found it taken but not recorded sent
    taken: dict[tuple[str, str], int] = {}  # (channel, message) -> times received when a kill last found so
    started = time.monotonic()
    killer = _Killer(db, config, farm, mail, hook, rng)
    try:
        farm.publish(events=10, reporters=0.2, one_offs=1.0)
        (workdir / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(workdir / "feeds.opml"))
        attempt = 0
        while figures["kills"] < kills and attempt < kills * 3:
            attempt += 1
            phase = ROTATION[attempt % len(ROTATION)]
            farm.publish(events=2, reporters=0.2, one_offs=0.1)
            changed = _changed(db, farm)
            if phase == "digest":  # the polls before it matched clusters that wait for a digest
                proc, killed, where = killer.digest()
            else:
                proc, killed, where = killer.cycle(phase, changed), threading.Event(), ""
            if proc.poll() is not None and not killed.is_set():
                figures["exited_before_kill"] += 1  # finished first: not a kill
                kill9(proc)
                continue
            figures["orphans"] += len(kill9(proc))
            if phase in ("digest", "daemon"):
                hook.settle()  # a request the dead sender had written is recorded before the checks
            if not where:
                where = ("daemon: " if phase == "daemon" else "") + _landing(db, farm, changed)
            figures["kills"] += 1
            figures["landed"][where] += 1
            problems = check_store(db, farm)
            for channel, received in servers.items():
                problems += check_digests(db, received, channel=channel)[0]
                for message, n in unrecorded_deliveries(db, received, channel=channel).items():
                    if n > taken.get((channel, message), 0):  # taken again since a kill last found it so
                        taken[(channel, message)] = n
                        windows[(channel, message)] += 1
                        figures["in_window"][f"{channel}: {where}"] += 1
            log(f"kill {figures['kills']:3d} ({phase:9s}) landed {where}: "
                + ("ok" if not problems else f"{len(problems)} problems"))
            figures["problems"] += [f"after kill {figures['kills']} ({where}): {p}" for p in problems]
        # restart cleanly: every published entry stored once, every entry clustered, every digest out
        monitor(db, config, "poll", "--all")
        figures["problems"] += check_store(db, farm, complete=True)
        figures["problems"] += [f"entry {e} matches the topic but its cluster has no match"
                                for e in unmatched_on_topic(db)[:10]]
        final_send(db, config)
        for channel, received in servers.items():
            problems, counts = check_digests(db, received, complete=True, channel=channel)
            figures["problems"] += problems
            figures.update(counts if channel == MAIL else {f"{channel}_{k}": n for k, n in counts.items()})
            for message, extra in excess_deliveries(db, received, channel=channel).items():
                if extra > windows[(channel, message)]:
                    figures["problems"].append(
                        f"{channel} message arrived {extra} more times than stored, with "
                        f"{windows[(channel, message)]} kills in its window (at most one each): "
                        f"{message[:120]}")
        conn = read_only(db)
        try:
            figures["entries"] = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
            figures["clusters"] = conn.execute("SELECT count(*) FROM clusters WHERE merged_into IS NULL").fetchone()[0]
        finally:
            conn.close()
        figures["published"] = sum(len(f.entries) for f in farm.feeds)
    finally:
        farm.close()
        mail.stop()
        hook.stop()
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["landed"] = dict(figures["landed"])
    figures["in_window"] = dict(figures["in_window"])
    return figures


def sigterm_run(workdir: Path, *, feeds: int = 100, stops: int = 8, seed: int = 1, log: Log = print) -> dict:
    """Start `monitor run` (every feed due each second, news all the time) and SIGTERM it at a
    random moment, `stops` times: it must exit 0 every time, and lose nothing."""
    rng = random.Random(seed)
    farm = FeedFarm(feeds, seed=seed)
    mail = Mailbox()
    db = workdir / "monitor.db"
    config = write_config(workdir / "monitor.toml", farm, smtp_port=mail.port,
                          polling={"interval": '"1s"', "min_interval": '"1s"'})
    figures: dict = {"stops": 0, "exit_codes": Counter(), "problems": []}
    started = time.monotonic()
    try:
        farm.publish(events=5, reporters=0.3, one_offs=1.0)
        (workdir / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(workdir / "feeds.opml"))
        for n in range(stops):
            farm.publish(events=1, reporters=0.3, one_offs=0.1)
            proc = spawn(db, config, "run")
            time.sleep(rng.uniform(0.8, 3.5))
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                kill9(proc)
                code = "hung"
            stderr = proc.stderr.read()
            proc.stderr.close()
            figures["stops"] += 1
            figures["exit_codes"][str(code)] += 1
            if code != 0 or "event=stopped" not in stderr:
                figures["problems"].append(f"stop {n + 1}: exit {code}: {stderr[-600:]}")
            figures["problems"] += [f"after stop {n + 1}: {p}" for p in check_store(db, farm)]
            log(f"SIGTERM {n + 1}: exit {code}")
        monitor(db, config, "poll", "--all")
        figures["problems"] += check_store(db, farm, complete=True)
        final_send(db, config)
        figures["problems"] += check_digests(db, mail.received, complete=True)[0]
    finally:
        farm.close()
        mail.stop()
    figures["exit_codes"] = dict(figures["exit_codes"])
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


def final_send(db: Path, config: Path, later: timedelta = timedelta(hours=1)) -> None:
    """`digest send` as the daemon would run it once the claim of a killed sender (10 min)
    and any retry backoff have passed: in-process, with the clock moved on."""
    from monitor.core import open_monitor

    with open_monitor(str(config), str(db)) as mon:
        moved = mon.clock() + later
        mon.clock = lambda: moved
        for _ in range(3):
            created, report = mon.send_digests()
            if not created and not report.outcomes:
                break


READER_COMMANDS = (("clusters", "list", "--since", "all", "--limit", "50", "--json"),
                   ("search", "telegram OR election", "--json"), ("status", "--json"))

# "database is locked", "… is locked by another process", "database table is locked": the
# word, not the text of a headline ("blocked").
LOCKED = re.compile(r"\blocked\b", re.IGNORECASE)


class Background:
    """The helper threads of a scenario, whose failures become problems instead of dying alone.

    A thread that raises (a reader's output that is not JSON, a command that times out,
    "database is locked" in a consistency check) would otherwise end quietly, pytest would
    only warn, and the scenario would pass on what the other threads saw. Here the exception
    is added to `problems`, and `failed` is set so that the scenario stops waiting for
    counts the dead thread would have produced.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.failed = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, name: str, fn: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # every failure is reported: that is this class's purpose
                frames = traceback.extract_tb(exc.__traceback__)
                here = [f for f in frames if SUITE in Path(f.filename).parents]
                frame = (here or frames)[-1]  # the scenario's line, rather than deep in a library
                self.problems.append(f"thread {name} died: {type(exc).__name__}: {str(exc)[:300]} "
                                     f"({Path(frame.filename).name}:{frame.lineno})")
                self.failed.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def join(self, timeout: float) -> None:
        """Wait for every thread (all within `timeout`); one still running is a problem too."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.problems.append(f"thread {thread.name} still running {timeout:g} s after the stop")


def command_problems(args: tuple[str, ...], proc: subprocess.CompletedProcess) -> list[str]:
    """What the README promises of every command run beside the daemon: it exits 0, says
    nothing of a locked database, and its `--json` output parses."""
    name = " ".join(args[:2])
    problems = []
    if proc.returncode != 0:
        problems.append(f"`{name}` exited {proc.returncode}: {proc.stderr[-300:]}")
    if LOCKED.search(proc.stderr):
        problems.append(f"`{name}` said locked: {proc.stderr[-300:]}")
    if "--json" in args and proc.returncode == 0:
        try:
            json.loads(proc.stdout)
        except ValueError as exc:
            problems.append(f"`{name} --json` printed what is not JSON ({exc}): {proc.stdout[:200]!r}")
    return problems


def _newest_entry(db: Path) -> int:
    conn = read_only(db)
    try:
        return conn.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0]
    finally:
        conn.close()


def contention_run(workdir: Path, *, feeds: int = 300, seconds: float = 45, long_read: float = 30,
                   readers: int = 3, min_checks: int = 20, min_cycles: int = 4, patience: float = 300,
                   log: Log = print) -> dict:
    """The daemon writes (every feed due every 2 s, news published every second) while:
    `readers` processes loop over `clusters list`, `search` and `status`; a thread checks in
    one read transaction at a time that no feed update is half visible, and between
    checks that no feed's state went back to an older poll's; one read
    transaction stays open; and `feeds add`, `recluster`, `poll --all` and `feeds remove`
    come in as second writers. Then the WAL must shrink back once the long reader has gone.

    What must have happened is waited for, not hoped for from a fixed time: the long read
    stays open at least `long_read` seconds and then until the daemon has finished
    `min_cycles` cycles and written entries under it and the WAL has grown past its limit;
    the run lasts at least `seconds` and then until the long read has ended, the checker
    has done `min_checks` checks and every reader command has run. A quiet machine meets
    all of it within the minimum times; a loaded one takes longer, up to `patience`
    seconds more, after which what is missing is reported as a problem."""
    from monitor.storage.database import WAL_SIZE_LIMIT

    farm = FeedFarm(feeds, seed=11)
    db = workdir / "monitor.db"
    config = write_config(workdir / "monitor.toml", farm, polling={"interval": '"2s"', "min_interval": '"1s"'})
    figures: dict = {"feeds": feeds, "reader_runs": Counter(), "consistency_checks": 0, "writers": {},
                     "problems": [], "wal_peak_bytes": 0, "daemon_cycles_during_long_read": 0,
                     "entries_written_during_long_read": 0}
    problems: list[str] = figures["problems"]
    threads = Background(problems)
    stop = threading.Event()
    daemon = tail = None
    started = time.monotonic()
    deadline = started + seconds + patience

    def cycles() -> int:
        return tail.count("event=cycle_done") if tail else 0

    try:
        farm.publish(events=10, reporters=0.2, one_offs=1.0)
        (workdir / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(workdir / "feeds.opml"))
        monitor(db, config, "poll", "--all")
        daemon = spawn(db, config, "run")
        tail = LogTail(daemon, threads)

        def publisher() -> None:
            while not stop.wait(1.0):
                farm.publish(events=1, reporters=0.3, one_offs=0.2)

        def reader(n: int) -> None:
            i = n
            while not stop.is_set():
                args = READER_COMMANDS[i % len(READER_COMMANDS)]
                i += 1
                proc = monitor(db, config, *args, check=False, timeout=60)
                figures["reader_runs"][args[0]] += 1
                problems.extend(f"reader: {p}" for p in command_problems(args, proc))

        def consistency() -> None:
            seen = polled_times(db)
            while not stop.is_set():
                found = check_store(db, farm, integrity=False)
                now = polled_times(db)  # the daemon and `poll --all` overlap: no state may go back
                found += moved_back(seen, now)
                seen = now
                figures["consistency_checks"] += 1
                problems.extend(f"reader saw: {p}" for p in found)
                stop.wait(0.2)

        def long_reader() -> None:
            if stop.wait(1.0):
                return
            conn = read_only(db)
            try:
                conn.execute("BEGIN")
                first = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM entries").fetchone()
                cycles_before, t0 = cycles(), time.monotonic()

                def enough() -> bool:
                    figures["wal_peak_bytes"] = max(figures["wal_peak_bytes"], wal_bytes(db))
                    if conn.execute("SELECT count(*), coalesce(max(id), 0) FROM entries").fetchone() != first:
                        problems.append("the long read transaction saw later writes")
                    figures["daemon_cycles_during_long_read"] = cycles() - cycles_before
                    figures["entries_written_during_long_read"] = _newest_entry(db) - first[1]
                    return (time.monotonic() - t0 >= long_read
                            and figures["daemon_cycles_during_long_read"] >= min_cycles
                            and figures["entries_written_during_long_read"] > 0
                            and figures["wal_peak_bytes"] > WAL_SIZE_LIMIT)

                while not (enough() or stop.is_set() or threads.failed.is_set()
                           or time.monotonic() > deadline):
                    time.sleep(0.5)
                figures["long_read_seconds"] = round(time.monotonic() - t0, 1)
                conn.execute("COMMIT")
            finally:
                conn.close()

        threads.start("publisher", publisher)
        threads.start("consistency", consistency)
        long_read_thread = threads.start("long-reader", long_reader)
        for n in range(readers):
            threads.start(f"reader-{n}", lambda n=n: reader(n))
        second = [(3, ("feeds", "add", farm.url(0) + "?copy=1")), (8, ("recluster", "--since", "1d")),
                  (14, ("poll", "--all")), (20, ("feeds", "remove", farm.url(0) + "?copy=1"))]
        for at, args in second:
            if threads.failed.wait(max(0.0, started + at - time.monotonic())):
                break
            t0 = time.monotonic()
            proc = monitor(db, config, *args, check=False, timeout=120)
            figures["writers"][" ".join(args[:2])] = round(time.monotonic() - t0, 2)
            problems.extend(f"second writer: {p}" for p in command_problems(args, proc))
        waiting = {
            "the long read to end": lambda: not long_read_thread.is_alive(),
            f"{min_checks} consistency checks": lambda: figures["consistency_checks"] >= min_checks,
            "every reader command": lambda: set(figures["reader_runs"]) == {a[0] for a in READER_COMMANDS},
        }
        wait_for(lambda: threads.failed.is_set() or (time.monotonic() - started >= seconds
                                                     and all(done() for done in waiting.values())),
                 max(0.0, deadline - time.monotonic()), 0.2)
        missing = [what for what, done in waiting.items() if not done()]
        if missing and not threads.failed.is_set():
            problems.append(f"gave up after {time.monotonic() - started:.0f} s waiting for "
                            f"{', '.join(missing)}")
        # the long reader has gone: the next WAL restart cuts the file back to the limit
        wait_for(lambda: wal_bytes(db) <= WAL_SIZE_LIMIT, 120, 0.5)
        figures["wal_after_bytes"] = wal_bytes(db)
        if figures["wal_after_bytes"] > WAL_SIZE_LIMIT:
            problems.append(f"WAL still {figures['wal_after_bytes']} bytes after the long reader went")
    finally:
        stop.set()
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(timeout=40)
            except subprocess.TimeoutExpired:
                kill9(daemon)
                code = "killed"
        threads.join(timeout=70)  # the readers' last commands, and the daemon's log to its end
        if daemon is not None:
            daemon.stderr.close()
            lines = tail.lines if tail else []
            figures["daemon_exit"] = code
            figures["daemon_cycles"] = cycles()
            bad = [line for line in lines if "cycle_failed" in line or LOCKED.search(line)
                   or "Traceback" in line or "digests_failed" in line]
            problems.extend(f"daemon: {line[:300]}" for line in bad[:10])
            if code != 0:
                problems.append(f"daemon exited {code} on SIGTERM: {' | '.join(lines[-5:])[-500:]}")
        try:
            monitor(db, config, "poll", "--all")
            problems.extend(check_store(db, farm, complete=True))
        finally:
            farm.close()
    figures["reader_runs"] = dict(figures["reader_runs"])
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


class LogTail:
    """Collects a process's stderr lines on a thread, so a test can wait for an event.
    The thread runs under `threads`: a failure to read (say, undecodable output) is a problem."""

    def __init__(self, proc: subprocess.Popen, threads: Background) -> None:
        self.lines: list[str] = []
        self.thread = threads.start("log-tail", lambda: self._read(proc))

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(1 for line in list(self.lines) if text in line)

    def matching(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]


def disk_full_run(workdir: Path, *, size_mb: int = 8, feeds: int = 100, log: Log = print) -> dict:
    """`monitor run` with its database on a tmpfs of `size_mb` MB, which a ballast file then
    fills to the last byte while news keeps coming; later the ballast goes. Must be run
    with CAP_SYS_ADMIN over its own mount namespace (`unshare -Urm`, see the test)."""
    data = workdir / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(data)], check=True)
    farm = FeedFarm(feeds, seed=3)
    db = data / "monitor.db"
    config = write_config(workdir / "monitor.toml", farm, topics=False,
                          polling={"interval": '"2s"', "min_interval": '"1s"'})
    figures: dict = {"problems": []}
    threads = Background(figures["problems"])
    daemon = None
    try:
        farm.publish(events=5, reporters=0.3, one_offs=1.0)
        (workdir / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(workdir / "feeds.opml"))
        daemon = spawn(db, config, "run")
        tail = LogTail(daemon, threads)
        if not wait_for(lambda: tail.count("event=cycle_done") >= 1, 60):
            figures["problems"].append("no cycle before the disk filled")
        before = check_store(db, farm)
        figures["problems"] += [f"before: {p}" for p in before]
        with open(data / "ballast", "wb", buffering=0) as fh:  # fill the filesystem to the last block
            for block in (1 << 16, 1 << 12, 1 << 9):
                try:
                    while True:
                        fh.write(b"\0" * block)
                except OSError:
                    pass
        figures["free_bytes_when_full"] = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
        full_at = len(tail.lines)
        for _ in range(3):  # news keeps coming while the disk is full
            farm.publish(events=4, reporters=0.5, one_offs=1.0)
            time.sleep(2)
        failed = lambda: [line for line in tail.lines[full_at:] if "event=cycle_failed" in line]  # noqa: E731
        wait_for(lambda: len(failed()) >= 2, 30)
        figures["failed_cycles"] = len(failed())
        figures["log_line"] = failed()[0][:300] if failed() else None
        if not failed():
            figures["problems"].append("no cycle_failed line while the disk was full")
        if daemon.poll() is not None:
            figures["problems"].append(f"daemon exited {daemon.returncode} while the disk was full")
        figures["problems"] += [f"while full: {p}" for p in check_store(db, farm)]
        (data / "ballast").unlink()  # space is back
        freed_at = len(tail.lines)
        recovered = wait_for(lambda: not check_store(db, farm, complete=True, integrity=False), 60, 0.5)
        figures["recovered"] = recovered
        figures["cycles_after"] = sum(1 for line in tail.lines[freed_at:] if "event=cycle_done" in line)
        if not recovered:
            figures["problems"] += [f"after: {p}" for p in check_store(db, farm, complete=True)]
        figures["problems"] += [f"after: {p}" for p in check_store(db, farm)]
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                figures["daemon_exit"] = daemon.wait(timeout=40)
            except subprocess.TimeoutExpired:
                kill9(daemon)
                figures["daemon_exit"] = "killed"
            threads.join(timeout=10)  # the log, read to its end
        farm.close()
        subprocess.run(["umount", "-l", str(data)], check=False)
    if figures.get("daemon_exit") != 0:
        figures["problems"].append(f"daemon exited {figures.get('daemon_exit')} on SIGTERM")
    return figures


def main() -> None:
    """`python -m tests.support.scenarios disk_full WORKDIR`: run a scenario here, print its figures as JSON."""
    import sys

    name, workdir = sys.argv[1], Path(sys.argv[2])
    figures = {"disk_full": disk_full_run}[name](workdir, log=lambda line: print(line, file=sys.stderr))
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()


def load_run(workdir: Path, *, feeds: int = 2000, failing: float = 0.05, timeout: str = "20s", per_host: int = 2,
             hosts: int = 1, items: int = 10, seed: int = 1, log: Log = print) -> dict:
    """`monitor poll --all` of `feeds` feeds on `hosts` loopback hosts (1: all on one),
    `failing` of them broken in assorted ways; the farm checks the per-host limit. Then a
    second poll (all 304 or failing). Returns times, feeds/s and peak memory of the whole
    process tree (the poll, its fork server and parse workers); and, as the farm saw them,
    how long each request to a hung server was held and whether the client ended it
    ("hung_requests"), with the errors stored for the hung feeds ("hung_feed_errors")."""
    modes = pick_failures(feeds, failing, seed)
    farm = FeedFarm(feeds, seed=seed, modes=modes, per_host=per_host, hosts=hosts)
    db = workdir / "monitor.db"
    config = write_config(workdir / "monitor.toml", farm,
                          polling={"timeout": f'"{timeout}"', "per_host": str(per_host)})
    figures: dict = {"feeds": feeds, "hosts": hosts, "failing": dict(Counter(modes.values())), "per_host": per_host,
                     "timeout": timeout, "problems": []}
    threads = Background(figures["problems"])
    try:
        farm.publish(events=items * 4, reporters=0.25, one_offs=1.0)
        figures["entries_published"] = sum(len(f.entries) for f in farm.feeds)
        figures["entries_published_by_working_feeds"] = sum(
            len(f.entries) for f in farm.feeds if modes.get(f.index) in (None, "slow"))
        (workdir / "feeds.opml").write_bytes(farm.opml())
        monitor(db, config, "feeds", "import", str(workdir / "feeds.opml"))
        for run in ("first", "second"):
            proc = subprocess.Popen(monitor_argv(db, config, "poll", "--all", "--json"), cwd=workdir,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            t0 = time.monotonic()
            peak = 0
            out: list[str] = []
            reader = threads.start(f"{run} poll stdout", lambda p=proc, o=out: o.append(p.stdout.read()))
            threads.start(f"{run} poll stderr", proc.stderr.read)  # never let the pipe fill
            while proc.poll() is None and time.monotonic() - t0 < 900:
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.1)
            if proc.poll() is None:
                kill9(proc)
                figures["problems"].append(f"{run} poll did not finish within 900 s (the interval)")
                break
            seconds = time.monotonic() - t0
            reader.join(10)
            try:
                report = json.loads(out[0]) if out else {}
            except ValueError as exc:
                report = {}
                figures["problems"].append(f"{run} poll --json printed what is not JSON ({exc}): "
                                           f"{out[0][:200]!r}")
            figures[run] = {"seconds": round(seconds, 1), "cycle_seconds": report.get("seconds"),
                            "feeds_per_second": round(feeds / seconds, 1), "peak_tree_rss_mb": round(peak / 1e6),
                            **{k: report.get(k) for k in ("fetched", "not_modified", "failed", "new")}}
            log(f"{run} poll: {figures[run]}")
            if proc.returncode != 0:
                figures["problems"].append(f"{run} poll exited {proc.returncode}")
        expected_failed = len(modes) - sum(1 for m in modes.values() if m == "slow")
        if figures.get("first", {}).get("failed") != expected_failed:
            figures["problems"].append(f"first poll: {figures.get('first', {}).get('failed')} failed, "
                                       f"expected {expected_failed} ({figures['failing']})")
        hung = sorted(i for i, mode in modes.items() if mode == "timeout")
        # the farm notes a hung request once the client has closed it (within 0.05 s)
        wait_for(lambda: len(farm.hung) >= 2 * len(hung), 10)
        figures["hung_requests"] = list(farm.hung)
        figures["max_in_flight"] = farm.max_in_flight
        if farm.over_limit:
            figures["problems"].append(f"per-host limit {per_host} exceeded {len(farm.over_limit)} times "
                                       f"(up to {max(farm.over_limit)} in flight)")
        figures["problems"] += check_store(db, farm, complete=True)
        conn = read_only(db)
        try:
            figures["entries_stored"] = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
            errors = dict(conn.execute("SELECT url, last_error FROM feeds").fetchall())
            figures["hung_feed_errors"] = dict(Counter(errors.get(farm.url(i)) for i in hung))
            figures["clusters"] = conn.execute("SELECT count(*) FROM clusters WHERE merged_into IS NULL").fetchone()[0]
        finally:
            conn.close()
    finally:
        farm.close()
        threads.join(timeout=10)
    return figures
