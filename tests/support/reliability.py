"""Fault-injection kit for the reliability suite (tests/reliability/, tests/support/scenarios.py, bench/).

- monitor() / spawn() / kill9(): the real command line in subprocesses, as operators and
  systemd run it, and SIGKILL as the OOM killer sends it.
- check_store() / check_digests(): the invariants, read in one read transaction, as a
  list of problems (empty = all good), so a failure says what broke and where;
  polled_times() / moved_back(): a feed's state never goes back to an older poll's.
- Webhook: a chat destination (Apprise's json://) on 127.0.0.1 that records every POST;
  unrecorded_deliveries(): what a server has that the database does not call sent yet.
The feed farm and the mail server they run against are in tests/support/feedfarm.py.

Everything here is bounded: subprocess helpers take a timeout, waits have deadlines.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.feedfarm import FeedFarm

TOPIC_QUERY = '(telegram OR whatsapp OR "social media") AND (ban* OR block* OR censor* OR arrest*)'


# -- configuration and the command line -------------------------------------------------------


def write_config(path: Path, farm: FeedFarm | int, *, smtp_port: int | None = None, topics: bool = True,
                 polling: dict[str, str] | None = None, extra: str = "", notify: Sequence[str] = ()) -> Path:
    """A config for a farm (or one loopback port), an optional SMTP port and the topic, with
    `notify` as the topic's chat destinations (Apprise URLs)."""
    allow = farm.allow_hosts if isinstance(farm, FeedFarm) else f'["127.0.0.1:{farm}"]'
    opts = {"allow_hosts": allow, "parse_workers": "2"}
    opts.update(polling or {})
    text = "[polling]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items())
    if smtp_port:
        text += f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nfrom = "monitor@example.org"\ntimeout = "5s"\n'
    if topics:
        text += ("[[topics]]\nname = \"platform-regulation\"\ntitle = \"Platform regulation\"\n"
                 f"query = '{TOPIC_QUERY}'\nrecipients = [\"desk@example.org\"]\nschedule = \"immediate\"\n")
        if notify:
            text += f"notify = {json.dumps(list(notify))}\n"
    path.write_text(text + extra, encoding="utf-8")
    return path


def monitor_argv(db: Path, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", "--db", str(db), "--config", str(config), *args]


def monitor(db: Path, config: Path, *args: str, timeout: float = 120, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one `monitor` command to completion (bounded by `timeout`)."""
    proc = subprocess.run(monitor_argv(db, config, *args), capture_output=True, text=True, timeout=timeout,
                          cwd=db.parent, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"monitor {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn(db: Path, config: Path, *args: str, env: dict | None = None, stderr=subprocess.PIPE) -> subprocess.Popen:
    """Start `monitor ...` in its own process group (so its parse workers can be found)."""
    return subprocess.Popen(monitor_argv(db, config, *args), cwd=db.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True, start_new_session=True)


def sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill9(proc: subprocess.Popen, reap_seconds: float = 10.0) -> list[int]:
    """SIGKILL the process alone, as the OOM killer does; then wait for its children to notice.

    Returns the pids of its process group still alive after `reap_seconds` (they are then
    killed too, so nothing outlives the test).
    """
    sigkill(proc.pid)
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    deadline = time.monotonic() + reap_seconds
    left = group_members(proc.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = group_members(proc.pid)
    for pid in left:
        sigkill(pid)
    return left


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(parts[2]) == pgid and parts[0] != "Z":
            found.append(int(name))
    return found


def tree_rss(pgid: int) -> int:
    """Summed resident memory (bytes) of a process group right now."""
    total = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# -- a chat destination ------------------------------------------------------------------------


def chat_key(title: str, message: str) -> str:
    """What identifies a chat digest on the wire: its title and text (a webhook POST carries no
    Message-ID). The stored digest holds the same two as JSON {"title", "body"}."""
    return json.dumps([title, message], ensure_ascii=False)


class Webhook:
    """A webhook on 127.0.0.1 taking Apprise's json:// POSTs; records each one's chat_key, in order.

    A message counts as received once its body has been read, before the reply: what a chat
    service has taken, it shows, whether or not its answer reaches the sender. `on_receive`
    (if set) runs at that moment, before the "200"; `on_answer` right after the "200" was
    written. Both are inside the documented window: the service has the message, the
    database does not yet say so. `on_request` runs earlier, when a request's headers have
    arrived: when it returns True the request is dropped unread, as a service that never
    took the message (a sender must then still have it as not sent). A body that is not
    Apprise's JSON is recorded as such, so the checks report it as a message that is not a
    stored digest.
    """

    def __init__(self) -> None:
        self.received: list[str] = []
        self.on_request: Callable[[], bool] | None = None
        self.on_receive: Callable[[], None] | None = None
        self.on_answer: Callable[[], None] | None = None
        self.lock = threading.Lock()
        self.in_flight = 0  # connections accepted and not yet closed
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if hook.on_request and hook.on_request():
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: a service takes no half message
                    self.close_connection = True
                    return
                try:
                    payload = json.loads(body)
                    key = chat_key(payload["title"], payload["message"])
                except (ValueError, KeyError, TypeError):
                    key = f"not an Apprise JSON body: {body[:80]!r}"
                hook.received.append(key)  # list.append is atomic: handlers may run side by side
                if hook.on_receive:
                    hook.on_receive()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                self.wfile.flush()
                if hook.on_answer:
                    hook.on_answer()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address) -> None:
                with hook.lock:
                    hook.in_flight += 1
                super().process_request(request, client_address)

            def process_request_thread(self, request, client_address) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    with hook.lock:
                        hook.in_flight -= 1

            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], OSError):  # the sender's socket went with it: expected
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def settle(self, quiet: float = 0.1, timeout: float = 10) -> None:
        """Return once no request has been in progress for `quiet` seconds (at most `timeout`):
        after a kill, what the dead sender had already written is read and recorded first."""
        idle_since = time.monotonic()

        def quiet_enough() -> bool:
            nonlocal idle_since
            if self.in_flight:
                idle_since = time.monotonic()
            return time.monotonic() - idle_since >= quiet

        wait_for(quiet_enough, timeout, 0.01)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- invariants --------------------------------------------------------------------------------


def read_only(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


# Counts that must be zero: (query, what a non-zero count means).
_CLUSTER_CHECKS = (
    ("SELECT count(*) FROM memberships m LEFT JOIN entries e ON e.id = m.entry_id WHERE e.id IS NULL",
     "memberships of entries that do not exist"),
    ("SELECT count(*) FROM memberships m JOIN clusters c ON c.id = m.cluster_id WHERE c.merged_into IS NOT NULL",
     "memberships point to merged-away clusters"),
    ("SELECT count(*) FROM memberships m LEFT JOIN clusters c ON c.id = m.cluster_id WHERE c.id IS NULL",
     "memberships point to clusters that do not exist"),
    ("SELECT count(*) FROM topic_matches t JOIN clusters c ON c.id = t.cluster_id WHERE c.merged_into IS NOT NULL",
     "topic matches left on merged-away clusters"),
)


def check_store(db: Path, farm: FeedFarm, *, complete: bool = False, integrity: bool = True) -> list[str]:
    """Problems in the stored state, read in one transaction. `complete`: after a final clean
    poll, so every published entry must be stored and every entry clustered."""
    problems: list[str] = []
    conn = read_only(db)
    try:
        conn.execute("BEGIN")
        if integrity:
            result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                problems.append(f"integrity_check: {result[:5]}")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"foreign_key_check: {fk[:5]}")
        stored: dict[int, Counter] = defaultdict(Counter)
        feeds = conn.execute("SELECT id, url, etag, last_polled, last_status, last_error FROM feeds").fetchall()
        by_id = {r[0]: r for r in feeds}
        for feed_id, guid in conn.execute("SELECT feed_id, guid FROM entries"):
            stored[feed_id][guid] += 1
        newest = dict(conn.execute("SELECT feed_id, max(first_seen) FROM entries GROUP BY feed_id").fetchall())
        for feed_id, url, etag, last_polled, _status, error in feeds:
            index = farm.index_of(url)
            if index is None:
                continue
            guids = stored.get(feed_id, Counter())
            twice = [g for g, n in guids.items() if n > 1]
            if twice:
                problems.append(f"{url}: stored twice: {twice[:3]}")
            unknown = set(guids) - {e["guid"] for e in farm.feeds[index].entries}
            if unknown:
                problems.append(f"{url}: entries never published: {sorted(unknown)[:3]}")
            # Entries come with their poll's state. Every farm feed sends an ETag, so a feed
            # whose last poll succeeded has one; without one, the last poll failed (the
            # entries then came from an overlapping older poll, whose state is rightly not
            # written over the newer one's).
            if guids and (last_polled is None or (etag is None and error is None)):
                problems.append(f"{url}: {len(guids)} entries stored but last_polled={last_polled} etag={etag}")
            elif guids and newest[feed_id] > last_polled:
                problems.append(f"{url}: entries first seen {newest[feed_id]} but the feed last polled {last_polled}")
            if etag is not None:
                version = farm.versions.get(etag)
                if version is None:
                    problems.append(f"{url}: unknown ETag {etag}")
                elif not version <= set(guids):
                    problems.append(f"{url}: state says ETag {etag} but {len(version - set(guids))} of its "
                                    "entries are not stored (half-applied feed update)")
            if complete and farm.modes.get(index) is None:
                missing = farm.published(index) - set(guids)
                if missing:
                    problems.append(f"{url}: {len(missing)} published entries never stored: {sorted(missing)[:3]}")
        if not by_id and complete:
            problems.append("no feeds")
        # clusters: one membership per entry, never to a merged-away cluster, sizes agree
        for sql, what in _CLUSTER_CHECKS:
            found = conn.execute(sql).fetchone()[0]
            if found:
                problems.append(f"{found} {what}")
        sizes = conn.execute("SELECT c.id, c.size, (SELECT count(*) FROM memberships m WHERE m.cluster_id = c.id) "
                             "FROM clusters c WHERE c.merged_into IS NULL").fetchall()
        wrong = [(cid, size, n) for cid, size, n in sizes if size != n]
        if wrong:
            problems.append(f"cluster sizes disagree with memberships: {wrong[:3]}")
        if complete:
            unclustered = conn.execute("SELECT count(*) FROM entries e WHERE NOT EXISTS "
                                       "(SELECT 1 FROM memberships m WHERE m.entry_id = e.id)").fetchone()[0]
            if unclustered:
                problems.append(f"{unclustered} entries without a cluster after a clean poll")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return problems


def polled_times(db: Path) -> dict[str, str]:
    """Each polled feed's stored last poll (url -> ISO time, all written alike so they sort as text)."""
    conn = read_only(db)
    try:
        rows = conn.execute("SELECT url, last_polled FROM feeds WHERE last_polled IS NOT NULL").fetchall()
        return dict(rows)
    finally:
        conn.close()


def moved_back(earlier: dict[str, str], later: dict[str, str]) -> list[str]:
    """Feeds whose stored last poll went back between two reads: an older poll's state was
    written over a newer one's (a feed's state must only ever move forward)."""
    return [f"{url}: state went back from the poll of {earlier[url]} to the poll of {when}"
            for url, when in later.items() if url in earlier and when < earlier[url]]


def _survivors(conn: sqlite3.Connection, before: str | None = None) -> dict[int, int]:
    """Cluster -> the cluster that held it at `before` (merges recorded strictly earlier)."""
    sql = "SELECT absorbed_id, into_id FROM cluster_merges" + (" WHERE merged < ?" if before else "") + " ORDER BY id"
    into = dict(conn.execute(sql, [before] if before else []).fetchall())
    resolved = {}
    for cid in into:
        target, seen = cid, set()
        while target in into and target not in seen:
            seen.add(target)
            target = into[target]
        resolved[cid] = target
    return resolved


MAIL, CHAT = "mail", "chat"


def _channel_rows(conn: sqlite3.Connection, topic: str, channel: str) -> tuple[list[tuple], str]:
    """The topic's digests on `channel` in the order they were written, as (id, identity, status,
    created), and the SQL condition that selects that channel. The identity is what the server
    records: the Message-ID for mail, chat_key() of the stored title and text for chat.

    "chat" is the topic's one chat destination (the scenarios give it one): every digest row
    whose channel is not mail. Several destinations would each need their own received list."""
    where = "channel = 'mail'" if channel == MAIL else "channel != 'mail'"
    rows = []
    for digest_id, mid, status, created, message in conn.execute(
            f"SELECT id, message_id, status, created, CASE WHEN channel = 'mail' THEN NULL ELSE message END"
            f" FROM digests WHERE topic = ? AND {where} ORDER BY id", [topic]):
        if channel == MAIL:
            identity = mid
        else:
            try:
                stored = json.loads(message)
                identity = chat_key(stored["title"], stored["body"])
            except (ValueError, KeyError, TypeError):
                identity = f"digest {digest_id}: stored message is not JSON with title and body"
        rows.append((digest_id, identity, status, created))
    return rows, where


def check_digests(db: Path, received: list[str] | None = None, *, complete: bool = False,
                  topic: str = "platform-regulation",
                  channel: str = MAIL) -> tuple[list[str], dict[str, int]]:
    """Outbox invariants of one channel; with `received` (what its server took) also delivery.

    `channel` is "mail" (`received`: the Message-IDs the SMTP server accepted) or "chat" (the
    topic's chat destination; `received`: the Webhook's chat_key() of each POST). Each channel
    keeps its own ledger, so each is checked on its own:
    - no two digests of the topic carry the same cluster unless it had more outlets the
      second time (merged clusters count as their survivor at the time of the later digest);
    - every digest marked sent was received; everything received is a stored digest;
    - `complete` (after a final send with nothing due): every digest was received at least
      once, and every cluster the topic matched is carried by some digest.
    Returns (problems, figures) with figures: digests, received, duplicates (received more
    often than digests with that identity exist: the same Message-ID, or the same chat text, twice).
    """
    problems: list[str] = []
    label = "" if channel == MAIL else f"{channel} "
    conn = read_only(db)
    try:
        conn.execute("BEGIN")
        digests, where = _channel_rows(conn, topic, channel)
        if channel != MAIL:
            sql = f"SELECT count(DISTINCT channel) FROM digests WHERE topic = ? AND {where}"
            channels = conn.execute(sql, [topic]).fetchone()[0]
            if channels > 1:
                problems.append(f"digests of {channels} chat destinations: expected one")
        carried: dict[int, int] = {}  # survivor cluster -> most outlets carried so far
        for digest_id, _identity, status, created in digests:
            if status == "failed":
                continue
            survivor = _survivors(conn, created)
            items = conn.execute("SELECT cluster_id, outlets, kind FROM digest_items WHERE digest_id = ?",
                                 [digest_id]).fetchall()
            if not items:
                problems.append(f"{label}digest {digest_id} carries nothing")
            for cid, outlets, kind in items:
                cid = survivor.get(cid, cid)
                before = max((n for c, n in carried.items() if survivor.get(c, c) == cid), default=None)
                if before is not None and outlets <= before:
                    problems.append(f"{label}digest {digest_id} carries cluster {cid} again ({kind}) with "
                                    f"{outlets} outlets, carried before with {before}")
                carried[cid] = max(outlets, carried.get(cid, 0))
        stored = Counter(identity for _, identity, _, _ in digests)
        figures = {"digests": len(digests), "received": 0, "duplicates": 0}
        if received is not None:
            counts = Counter(received)
            figures["received"] = len(received)
            figures["duplicates"] = sum(max(0, n - max(1, stored[k])) for k, n in counts.items())
            strangers = set(counts) - set(stored)
            if strangers:
                problems.append(f"received {label}messages that are not stored digests: "
                                f"{sorted(strangers)[:3]}")
            for digest_id, identity, status, _ in digests:
                if status == "sent" and identity not in counts:
                    problems.append(f"{label}digest {digest_id} is marked sent but never arrived")
                if complete and status != "failed" and identity not in counts:
                    problems.append(f"{label}digest {digest_id} ({status}) never arrived")
        if complete:
            pending = conn.execute(
                f"SELECT count(*) FROM digests WHERE status = 'pending' AND {where}").fetchone()[0]
            if pending:
                problems.append(f"{pending} {label}digests still pending after the final send")
            survivor = _survivors(conn)
            matched = {survivor.get(c, c) for (c,) in conn.execute(
                "SELECT cluster_id FROM topic_matches WHERE topic = ?", [topic])}
            sent = {survivor.get(c, c) for (c,) in conn.execute(
                "SELECT di.cluster_id FROM digest_items di JOIN digests d ON d.id = di.digest_id "
                f"WHERE d.topic = ? AND d.status != 'failed' AND d.{where}", [topic])}
            if matched - sent:
                problems.append(f"{len(matched - sent)} matched clusters never carried by a {label}digest: "
                                f"{sorted(matched - sent)[:5]}")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return problems, figures


def _stored_digests(db: Path, topic: str, channel: str) -> list:
    """The topic's digests of `channel`, read in a connection of their own."""
    conn = read_only(db)
    try:
        digests, _ = _channel_rows(conn, topic, channel)
    finally:
        conn.close()
    return digests


def excess_deliveries(db: Path, received: list[str], *, topic: str = "platform-regulation",
                      channel: str = MAIL) -> dict[str, int]:
    """Identity -> how many more times it arrived than digests of `channel` carry it: its duplicates."""
    counts = Counter(received)
    digests = _stored_digests(db, topic, channel)
    stored = Counter(identity for _, identity, _, _ in digests)
    return {identity: n - max(1, stored[identity]) for identity, n in counts.items()
            if identity in stored and n > max(1, stored[identity])}


def unrecorded_deliveries(db: Path, received: list[str], *, topic: str = "platform-regulation",
                          channel: str = MAIL) -> dict[str, int]:
    """Digests of `channel` its server has taken that the database does not call sent (identity ->
    times received). With the sender dead, this is the documented window: the next sender sends
    them again, so each may arrive once more."""
    counts = Counter(received)
    digests = _stored_digests(db, topic, channel)
    return {identity: counts[identity] for _, identity, status, _ in digests
            if status == "pending" and counts[identity]}


def unmatched_on_topic(db: Path, query: str = TOPIC_QUERY, topic: str = "platform-regulation") -> list[int]:
    """Entries the topic query matches whose cluster has no match recorded for the topic."""
    from monitor.digests.topics import fts_query

    conn = read_only(db)
    try:
        conn.execute("BEGIN")
        survivor = _survivors(conn)
        matched = {survivor.get(c, c) for (c,) in conn.execute(
            "SELECT cluster_id FROM topic_matches WHERE topic = ?", [topic])}
        rows = conn.execute("SELECT e.id, m.cluster_id FROM entries_fts JOIN entries e ON e.id = entries_fts.rowid "
                            "LEFT JOIN memberships m ON m.entry_id = e.id WHERE entries_fts MATCH ?",
                            [fts_query(query)]).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return sorted(eid for eid, cid in rows if cid is None or survivor.get(cid, cid) not in matched)


def wal_bytes(db: Path) -> int:
    wal = Path(str(db) + "-wal")
    return wal.stat().st_size if wal.exists() else 0
