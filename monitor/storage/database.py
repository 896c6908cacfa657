"""The SQLite store: the only module that talks to the database (through sqlite-utils).

The daemon and the CLI share one file safely: WAL mode lets readers run while the daemon
writes, every write transaction starts with BEGIN IMMEDIATE so writers queue on the busy
timeout instead of failing half-way, and the schema is upgraded by recorded migrations
when a writer opens it. Methods return records from monitor.types, not rows.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlite_utils import Database

from monitor.errors import StorageError
from monitor.storage.migrations import KNOWN, SCHEMA_VERSION, migrations
from monitor.types import EntryData, Feed, FeedSource

if TYPE_CHECKING:
    from monitor.feeds.schedule import FeedUpdate

DEFAULT_BUSY_TIMEOUT = 30.0
WAL_SIZE_LIMIT = 16 * 1024 * 1024  # bytes the WAL file is cut back to after a checkpoint
T = TypeVar("T")

PARAMS_PER_QUERY = 900  # values per `IN (...)`: below the 999-variable limit of older SQLite builds


def chunked(values: Sequence[T], size: int = PARAMS_PER_QUERY) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `size`, for queries that bind one parameter per value."""
    for i in range(0, len(values), size):
        yield values[i:i + size]


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
@overload
def iso(dt: datetime | None) -> str | None: ...
def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with offset, to the second: sorts as text, reads as time."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return parse_stamp(value)


def parse_stamp(value: str) -> datetime:
    """parse_iso for a column that always holds a time (NOT NULL, written by iso())."""
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made (sqlite3 types it as optional: it is not, here)."""
    rowid = cur.lastrowid
    assert rowid is not None
    return rowid


def _describe(exc: sqlite3.Error, path: str) -> str:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return f"database {path} is locked by another process (timed out waiting): {msg}"
    if "not a database" in msg or "malformed" in msg:
        return f"{path} is not a usable monitor database: {msg}"
    if "readonly" in msg or "read-only" in msg:
        return f"database {path} is read-only: {msg}"
    if "unable to open" in msg:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.exists(path) and not os.access(folder, os.W_OK):
            msg += (f" (the folder {folder} is read-only, and WAL mode needs to create"
                    f" {os.path.basename(path)}-wal there)")
        return f"cannot open database {path}: {msg}"
    return f"database {path}: {msg}"


class Store:
    """One connection to the monitor database."""

    def __init__(self, path: str, *, create: bool = True, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = path
        if path != ":memory:" and not create and not os.path.exists(path):
            raise StorageError(f"no database at {path} (run `monitor init` or `monitor feeds import FILE`)")
        parent = os.path.dirname(os.path.abspath(path))
        if path != ":memory:" and not os.path.isdir(parent):
            raise StorageError(f"cannot create database {path}: folder {parent} does not exist")
        try:
            # isolation_level=None: no implicit transactions; we open them explicitly, and
            # sqlite-utils' atomic() issues its own BEGIN/SAVEPOINT.
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self.db = Database(conn)
            self._setup(create)
        except sqlite3.Error as exc:
            raise StorageError(_describe(exc, path)) from None

    def _setup(self, create: bool) -> None:
        conn = self.db.conn
        conn.execute("PRAGMA foreign_keys = ON")
        applied = [m.name for m in migrations.applied(self.db)] if self._has_migrations() else []
        unknown = [name for name in applied if name not in KNOWN]
        if unknown:
            raise StorageError(
                f"database {self.path} was written by a newer monitor (schema has {len(applied)} migrations, "
                f"this code knows {SCHEMA_VERSION}: {unknown[-1]}); upgrade monitor")
        if len(applied) < SCHEMA_VERSION:
            if not create:
                raise StorageError(f"database {self.path} needs a schema upgrade: run a writing command "
                                   "such as `monitor init` or start the daemon")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and self.path != ":memory:":
                raise StorageError(f"database {self.path}: cannot switch to WAL mode (got {mode})")
            # One writer migrates; a second process starting at the same moment waits here.
            conn.execute("BEGIN IMMEDIATE")
            try:
                migrations.apply(self.db)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        # NORMAL is durable across process crashes in WAL mode; a power loss may undo the last
        # transactions, which the next poll fetches again (validators roll back with them).
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints cannot pass a reader's snapshot, so a long read (a backup, an open
        # datasette query) lets the WAL grow with every write; without a limit the file
        # then keeps that size for good. With it, the file is cut back to this size when the
        # WAL next restarts after the reader has gone. Steady state stays near 4 MB (the
        # 1000-page autocheckpoint), below the limit, so this costs nothing then.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")

    def _has_migrations(self) -> bool:
        return self.db[migrations.migrations_table].exists()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Store]:
        """A write transaction, taking the write lock up front (BEGIN IMMEDIATE)."""
        conn = self.db.conn
        if conn.in_transaction:  # nested: the outer transaction already holds the lock
            with self.db.atomic():
                yield self
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(_describe(exc, self.path)) from None
        try:
            yield self
        except sqlite3.OperationalError as exc:
            # disk full, read-only, I/O error: one clear line, no traceback
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(_describe(exc, self.path)) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(_describe(exc, self.path)) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[Store]:
        """A read snapshot: several queries see one consistent state of the database."""
        conn = self.db.conn
        if conn.in_transaction:
            yield self
            return
        conn.execute("BEGIN")
        try:
            yield self
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict]:
        try:
            return list(self.db.query(sql, params))
        except sqlite3.OperationalError as exc:
            raise StorageError(_describe(exc, self.path)) from None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return row[0] if row else None

    def schema_version(self) -> int:
        return len(migrations.applied(self.db))

    # -- feeds --------------------------------------------------------------------------

    def upsert_feeds(self, sources: Iterable[FeedSource], now: datetime) -> dict[str, int]:
        """Add new feeds and update title/category of known ones. Returns counts for the report.

        A feed disabled by an operator or by 410 is re-enabled only by `feeds add`, not by a
        re-import, so importing the same OPML again is idempotent.
        """
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        with self.write():
            for src in sources:
                row = self.db.execute(
                    "SELECT id, title, category, site_url FROM feeds WHERE url = ?", [src.url]).fetchone()
                if row is None:
                    self.db.execute(
                        "INSERT INTO feeds (url, title, category, site_url, added) VALUES (?, ?, ?, ?, ?)",
                        [src.url, src.title, src.category, src.site_url, iso(now)])
                    counts["added"] += 1
                    continue
                new = (src.title or row[1], src.category or row[2], src.site_url or row[3])
                if new != tuple(row[1:]):
                    self.db.execute("UPDATE feeds SET title = ?, category = ?, site_url = ? WHERE id = ?",
                                    [*new, row[0]])
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
        return counts

    def add_feed(self, src: FeedSource, now: datetime) -> str:
        """`feeds add`: insert, or re-enable a disabled feed. Returns added | enabled | exists."""
        with self.write():
            row = self.db.execute("SELECT id, disabled FROM feeds WHERE url = ?", [src.url]).fetchone()
            if row is None:
                self.upsert_feeds([src], now)
                return "added"
            if src.title or src.category:
                self.upsert_feeds([src], now)
            if row[1]:
                self.db.execute("UPDATE feeds SET disabled = 0, disabled_reason = NULL, error_count = 0, "
                                "next_poll = NULL WHERE id = ?", [row[0]])
                return "enabled"
            return "exists"

    def remove_feed(self, url: str) -> bool:
        """Stop polling a feed. Its entries stay: nothing stored is ever lost by a feed change."""
        with self.write():
            cur = self.db.execute(
                "UPDATE feeds SET disabled = 1, disabled_reason = 'removed' WHERE url = ? AND "
                "(disabled = 0 OR disabled_reason != 'removed')", [url])
            return cur.rowcount > 0

    def feeds(self, *, include_disabled: bool = True) -> list[Feed]:
        where = "" if include_disabled else "WHERE disabled = 0"
        cur = self.db.execute(f"SELECT * FROM feeds {where} ORDER BY coalesce(category, ''), id")
        cols = [d[0] for d in cur.description]
        return [feed_from_row(dict(zip(cols, r, strict=True))) for r in cur.fetchall()]

    def feed_by_url(self, url: str) -> Feed | None:
        rows = self.query("SELECT * FROM feeds WHERE url = ?", [url])
        return feed_from_row(rows[0]) if rows else None

    def feed_entry_counts(self) -> dict[int, int]:
        return dict(self.db.execute("SELECT feed_id, count(*) FROM entries GROUP BY feed_id").fetchall())

    def due_feeds(self, now: datetime, *, all_feeds: bool = False) -> list[Feed]:
        """Feeds to poll now: the database decides, by each feed's own next_poll."""
        if all_feeds:
            return self.feeds(include_disabled=False)
        rows = self.query("SELECT * FROM feeds WHERE disabled = 0 AND (next_poll IS NULL OR next_poll <= ?) "
                          "ORDER BY coalesce(next_poll, ''), id", [iso(now)])
        return [feed_from_row(r) for r in rows]

    # -- one feed's poll: entries and state in one transaction ----------------------------------

    def apply_poll(self, feed: Feed, update: FeedUpdate, entries: Iterable[EntryData], now: datetime,
                   ) -> tuple[list[int], list[int]]:
        """Store a feed's entries and its new state atomically. Returns (new ids, updated ids).

        `now` is the time of the poll: when the server's answer arrived (the cycle passes the
        fetch's own completion time, not the time it got round to storing). It stamps the
        feed's last poll and the entries' first_seen/last_changed.

        Two polls of one feed can run at once (`monitor poll` while the daemon cycles, or two
        `poll --all`) and commit in either order: the one that fetched first may store last.
        So nothing here moves backwards. The feed's state (last poll, status, error, error
        count, next poll, validators, warning, disabled, moved URL) is written only when the
        stored last poll is not later than this poll's, checked inside this write
        transaction, which holds the write lock from the read to the update. A conditional
        write rather than serialising polls per feed: it needs no lock that outlives a
        transaction (which a killed process would leave behind) and makes no poll wait for
        another's network I/O. Times are stored to the second, so two polls within one
        second are in commit order (a later poll in the same second, as with a clock that
        does not move, still applies).

        The entries of an older poll are stored all the same: nothing it saw is lost, and the
        unique (feed, entry key) keeps an entry from being stored twice. An entry already
        stored is updated only when what we show changed (content_hash), and never by a poll
        older than its last change, so an older poll cannot put back an older version. A
        failed or empty fetch passes no entries and so never touches stored ones.
        """
        new_ids: list[int] = []
        updated_ids: list[int] = []
        stamp = iso(now)
        entries = list(entries)
        with self.write():
            stored = self.db.execute("SELECT last_polled, error_count, etag, last_modified FROM feeds"
                                     " WHERE id = ?", [feed.id]).fetchone()
            known = self._known_entries(feed.id, {e.key for e in entries})
            for e in entries:
                row = known.get(e.key)
                values = [e.guid, e.link, e.title, e.summary_html, e.content_html, e.text, e.author,
                          iso(e.published), iso(e.updated), e.content_hash]
                if row is None:
                    cur = self.db.execute(
                        "INSERT INTO entries (guid, link, title, summary_html, content_html, text, author,"
                        " published, updated, content_hash, feed_id, entry_key, first_seen, last_changed)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [*values, feed.id, e.key, stamp, stamp])
                    new_ids.append(inserted_id(cur))
                    # a key repeated in one feed meets this row
                    known[e.key] = (new_ids[-1], e.content_hash, stamp)
                elif row[1] != e.content_hash and not _later(row[2], stamp):
                    self.db.execute(
                        "UPDATE entries SET guid = ?, link = ?, title = ?, summary_html = ?,"
                        " content_html = ?, text = ?, author = ?, published = ?, updated = ?,"
                        " content_hash = ?, last_changed = ? WHERE id = ?", [*values, stamp, row[0]])
                    updated_ids.append(row[0])
                    known[e.key] = (row[0], e.content_hash, stamp)
            if stored is not None and not _later(stored[0], stamp):
                self._apply_feed_update(feed, update, stamp, stored[1:])
        return new_ids, updated_ids

    def index_pending_text(self) -> int:
        """Add the entries stored since the last call to the full-text index; returns how many.

        Called by the clustering step (see core.cluster_pending), on a thread of its own:
        SQLite does the tokenising without the GIL while the clusterer decides.
        """
        with self.write():
            pending = self.scalar("SELECT count(*) FROM fts_pending")
            if pending:
                self.db.execute("INSERT INTO entries_fts (rowid, title, text) SELECT e.id, e.title, e.text"
                                " FROM fts_pending p JOIN entries e ON e.id = p.entry_id ORDER BY e.id")
                self.db.execute("DELETE FROM fts_pending")
        return pending

    def _known_entries(self, feed_id: int, keys: set[str]) -> dict[str, tuple[int, str, str]]:
        """entry key -> (id, content_hash, last_changed) of the feed's stored entries among `keys`:
        one query per chunk of keys."""
        known: dict[str, tuple[int, str, str]] = {}
        for chunk in chunked(list(keys)):
            rows = self.db.execute(
                "SELECT entry_key, id, content_hash, last_changed FROM entries"
                " WHERE feed_id = ? AND entry_key IN (" + ", ".join("?" * len(chunk)) + ")",
                [feed_id, *chunk]).fetchall()
            for r in rows:
                known[r[0]] = (r[1], r[2], r[3])
        return known

    def _apply_feed_update(self, feed: Feed, u: FeedUpdate, stamp: str, stored: tuple) -> None:
        """Write a poll's state. `u` was decided from `feed`, the row as it was read before
        fetching; `stored` (error_count, etag, last_modified) is the row now, which an
        overlapping poll may have changed since. What this poll leaves as it was, it leaves as
        stored: a failure or a 304 without validators keeps the stored validators, not the
        ones read earlier, and the error count goes up (or stays, for 429/503) from the
        stored count, not the one read earlier; a success resets it."""
        stored_errors, stored_etag, stored_modified = stored
        errors = 0 if u.last_error is None else stored_errors + (u.error_count - feed.error_count)
        etag, last_modified = u.etag, u.last_modified
        if (etag, last_modified) == (feed.etag, feed.last_modified):
            etag, last_modified = stored_etag, stored_modified
        self.db.execute(
            "UPDATE feeds SET last_polled = ?, last_status = ?, last_error = ?, error_count = ?,"
            " next_poll = ?, etag = ?, last_modified = ?,"
            " last_warning = CASE WHEN ? IS NULL THEN ? ELSE last_warning END,"
            " channel_title = coalesce(?, channel_title), site_url = coalesce(site_url, ?) WHERE id = ?",
            [stamp, u.last_status, u.last_error, errors, iso(u.next_poll), etag, last_modified,
             u.last_error, u.warning, u.channel_title, u.site_url, feed.id])
        if u.body_hash:
            self.db.execute("UPDATE feeds SET body_hash = ? WHERE id = ?", [u.body_hash, feed.id])
        if u.disabled_reason:
            self.db.execute("UPDATE feeds SET disabled = 1, disabled_reason = ? WHERE id = ?",
                            [u.disabled_reason, feed.id])
        if u.new_url:
            taken = self.db.execute("SELECT 1 FROM feeds WHERE url = ?", [u.new_url]).fetchone()
            if taken:  # two feeds redirect to one: keep both rows, note it, poll the old URL
                self.db.execute("UPDATE feeds SET last_warning = ? WHERE id = ?",
                                [f"moved permanently to {u.new_url}, which is already a feed", feed.id])
            else:
                self.db.execute("UPDATE feeds SET url = ? WHERE id = ?", [u.new_url, feed.id])

    # -- cycles ---------------------------------------------------------------------------

    def start_cycle(self, now: datetime, feeds: int) -> int:
        with self.write():
            return inserted_id(self.db.execute("INSERT INTO cycles (started, feeds) VALUES (?, ?)",
                                               [iso(now), feeds]))

    def finish_cycle(self, cycle_id: int, now: datetime, counts: dict[str, int],
                     error: str | None = None) -> None:
        with self.write():
            self.db.execute(
                "UPDATE cycles SET finished = ?, fetched = ?, not_modified = ?, failed = ?, new_entries = ?,"
                " updated_entries = ?, error = ? WHERE id = ?",
                [iso(now), counts.get("fetched", 0), counts.get("not_modified", 0), counts.get("failed", 0),
                 counts.get("new", 0), counts.get("updated", 0), error, cycle_id])


def _later(stored: str | None, stamp: str) -> bool:
    """True when a stored time is later than `stamp` (both as written by iso()). Compared as
    times, not text, so a value written in another form (no offset, a date only) still orders."""
    return stored is not None and parse_stamp(stored) > parse_stamp(stamp)


def survivors(store: Store, cluster_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Cluster id -> the live cluster that holds its members now, through any chain of merges.

    With `cluster_ids`: each of them that is stored, mapped to its survivor (itself when it
    was never merged); only the rows on their chains are read. Without: every merged-away
    cluster, from one read of the merged rows.
    """
    if cluster_ids is None:
        merged = dict(store.db.execute(
            "SELECT id, merged_into FROM clusters WHERE merged_into IS NOT NULL").fetchall())
        result = {}
        for start in merged:
            cid, seen = start, set()
            while cid in merged and cid not in seen:
                seen.add(cid)
                cid = merged[cid]
            result[start] = cid
        return result
    ids = sorted(set(cluster_ids))
    rows: dict[int, int | None] = {}
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        rows.update(store.db.execute(f"SELECT id, merged_into FROM clusters WHERE id IN ({marks})",
                                     chunk).fetchall())
    found = {}
    for start in ids:
        cid, seen = start, set()
        while (target := rows.get(cid)) is not None and cid not in seen:
            seen.add(cid)
            if target not in rows:
                rows.update(store.db.execute("SELECT id, merged_into FROM clusters WHERE id = ?",
                                             [target]).fetchall())
            cid = target
        if cid in rows:  # else the chain ends at a cluster that is not stored
            found[start] = cid
    return found


def feed_from_row(row: dict) -> Feed:
    return Feed(
        id=row["id"], url=row["url"], title=row["title"] or row["channel_title"], category=row["category"],
        site_url=row["site_url"], etag=row["etag"], last_modified=row["last_modified"],
        last_polled=parse_iso(row["last_polled"]), last_status=row["last_status"],
        last_error=row["last_error"], last_warning=row["last_warning"], error_count=row["error_count"],
        next_poll=parse_iso(row["next_poll"]),
        disabled=bool(row["disabled"]), interval=row["interval_seconds"],
        disabled_reason=row["disabled_reason"], body_hash=row.get("body_hash"))


def open_store(path: str, *, create: bool = True, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Store:
    return Store(path, create=create, busy_timeout=busy_timeout)
