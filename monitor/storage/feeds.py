"""The feeds, entries and cycles tables: what polling reads and writes.

A mixin over `Connection`, in the manner of reader's `_storage` package: one class per
table family, all sharing the one connection and its transactions, assembled into `Store`
in `monitor.storage.database`. These tables change together (a poll stores a feed's
entries and its new state in one transaction, a cycle records the polls it ran), so they
are one family; the other families read entries (retention, with the clusters, deletes
old ones). Moving entries into the full-text index lives here too: it works from the
`fts_pending` queue that storing entries fills. Methods return records from
monitor.types, not rows.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.storage.connection import Connection, chunked, inserted_id, iso, parse_iso, parse_stamp
from monitor.types import EntryData, Feed, FeedSource

if TYPE_CHECKING:
    from monitor.feeds.schedule import FeedUpdate


# A feed's poll state as apply_poll reads it back before writing (see _apply_feed_update).
_POLL_STATE = "last_polled, error_count, etag, last_modified"


class FeedTables(Connection):
    """Feeds and their polling state, their entries, the full-text queue, and poll cycles."""

    # -- feeds --------------------------------------------------------------------------

    def upsert_feeds(self, sources: Iterable[FeedSource], now: datetime) -> dict[str, int]:
        """Add new feeds and update title/category of known ones. Returns counts for the report.

        A feed disabled by an operator or by 410 is re-enabled only by `feeds add`, not by a
        re-import, so importing the same OPML again is idempotent.
        """
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        with self.write():
            for src in sources:
                row = self.execute(
                    "SELECT id, title, category, site_url FROM feeds WHERE url = ?", [src.url]).fetchone()
                if row is None:
                    self.execute(
                        "INSERT INTO feeds (url, title, category, site_url, added) VALUES (?, ?, ?, ?, ?)",
                        [src.url, src.title, src.category, src.site_url, iso(now)])
                    counts["added"] += 1
                    continue
                new = (src.title or row[1], src.category or row[2], src.site_url or row[3])
                if new != tuple(row[1:]):
                    self.execute("UPDATE feeds SET title = ?, category = ?, site_url = ? WHERE id = ?",
                                 [*new, row[0]])
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
        return counts

    def add_feed(self, src: FeedSource, now: datetime) -> str:
        """`feeds add`: insert, or re-enable a disabled feed. Returns added | enabled | exists."""
        with self.write():
            row = self.execute("SELECT id, disabled FROM feeds WHERE url = ?", [src.url]).fetchone()
            if row is None:
                self.upsert_feeds([src], now)
                return "added"
            if src.title or src.category:
                self.upsert_feeds([src], now)
            if row[1]:
                self.execute("UPDATE feeds SET disabled = 0, disabled_reason = NULL, error_count = 0, "
                             "next_poll = NULL WHERE id = ?", [row[0]])
                return "enabled"
            return "exists"

    def remove_feed(self, url: str) -> bool:
        """Stop polling a feed. Its entries stay: nothing stored is ever lost by a feed change."""
        with self.write():
            cur = self.execute(
                "UPDATE feeds SET disabled = 1, disabled_reason = 'removed' WHERE url = ? AND "
                "(disabled = 0 OR disabled_reason != 'removed')", [url])
            return cur.rowcount > 0

    def feeds(self, *, include_disabled: bool = True) -> list[Feed]:
        where = "" if include_disabled else "WHERE disabled = 0"
        cur = self.execute(f"SELECT * FROM feeds {where} ORDER BY coalesce(category, ''), id")
        cols = [d[0] for d in cur.description]
        return [feed_from_row(dict(zip(cols, r, strict=True))) for r in cur.fetchall()]

    def feed_by_url(self, url: str) -> Feed | None:
        rows = self.query("SELECT * FROM feeds WHERE url = ?", [url])
        return feed_from_row(rows[0]) if rows else None

    def feed_entry_counts(self) -> dict[int, int]:
        return dict(self.execute("SELECT feed_id, count(*) FROM entries GROUP BY feed_id").fetchall())

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
            stored = self.execute(f"SELECT {_POLL_STATE} FROM feeds WHERE id = ?", [feed.id]).fetchone()
            known = self._known_entries(feed.id, {e.key for e in entries})
            for e in entries:
                row = known.get(e.key)
                values = [e.guid, e.link, e.title, e.summary_html, e.content_html, e.text, e.author,
                          iso(e.published), iso(e.updated), e.content_hash]
                if row is None:
                    cur = self.execute(
                        "INSERT INTO entries (guid, link, title, summary_html, content_html, text, author,"
                        " published, updated, content_hash, feed_id, entry_key, first_seen, last_changed)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [*values, feed.id, e.key, stamp, stamp])
                    new_ids.append(inserted_id(cur))
                    # a key repeated in one feed meets this row
                    known[e.key] = (new_ids[-1], e.content_hash, stamp)
                elif row[1] != e.content_hash and not _later(row[2], stamp):
                    self.execute(
                        "UPDATE entries SET guid = ?, link = ?, title = ?, summary_html = ?,"
                        " content_html = ?, text = ?, author = ?, published = ?, updated = ?,"
                        " content_hash = ?, last_changed = ? WHERE id = ?", [*values, stamp, row[0]])
                    updated_ids.append(row[0])
                    known[e.key] = (row[0], e.content_hash, stamp)
            self._apply_feed_update(feed, update, stamp, stored)
        return new_ids, updated_ids

    def apply_polls(self, polls: Sequence[tuple[Feed, FeedUpdate, datetime]]) -> None:
        """Store the new state of feeds whose polls brought no entries (a 304, a failure, the
        same body as last time), all in one transaction, each by `apply_poll`'s rule: written
        only when the stored last poll is not later than this poll's. One poll per feed.

        A cycle stores such polls together: one transaction each made an all-304 cycle's
        fetching thread and storing thread take turns with the interpreter lock for every feed.
        """
        ids = [feed.id for feed, _, _ in polls]
        if len(set(ids)) != len(ids):
            raise ValueError("apply_polls takes one poll per feed")
        with self.write():
            stored: dict[int, tuple] = {}
            for chunk in chunked(ids):
                for row in self.execute(f"SELECT id, {_POLL_STATE} FROM feeds"
                                        " WHERE id IN (" + ", ".join("?" * len(chunk)) + ")", chunk):
                    stored[row[0]] = row[1:]
            for feed, update, now in polls:
                self._apply_feed_update(feed, update, iso(now), stored.get(feed.id))

    def index_pending_text(self) -> int:
        """Add the entries stored since the last call to the full-text index; returns how many.

        Called by the clustering step (see core.cluster_pending), on a thread of its own:
        SQLite does the tokenising without the GIL while the clusterer decides.
        """
        with self.write():
            pending = self.scalar("SELECT count(*) FROM fts_pending")
            if pending:
                self.execute("INSERT INTO entries_fts (rowid, title, text) SELECT e.id, e.title, e.text"
                             " FROM fts_pending p JOIN entries e ON e.id = p.entry_id ORDER BY e.id")
                self.execute("DELETE FROM fts_pending")
        return pending

    def _known_entries(self, feed_id: int, keys: set[str]) -> dict[str, tuple[int, str, str]]:
        """entry key -> (id, content_hash, last_changed) of the feed's stored entries among `keys`:
        one query per chunk of keys."""
        known: dict[str, tuple[int, str, str]] = {}
        for chunk in chunked(list(keys)):
            rows = self.execute(
                "SELECT entry_key, id, content_hash, last_changed FROM entries"
                " WHERE feed_id = ? AND entry_key IN (" + ", ".join("?" * len(chunk)) + ")",
                [feed_id, *chunk]).fetchall()
            for r in rows:
                known[r[0]] = (r[1], r[2], r[3])
        return known

    def _apply_feed_update(self, feed: Feed, u: FeedUpdate, stamp: str, stored: tuple | None) -> None:
        """Write a poll's state, unless the stored last poll is later than this one's (`stamp`)
        or the feed is gone. `u` was decided from `feed`, the row as it was read before
        fetching; `stored` (_POLL_STATE) is the row now, which an overlapping poll may have
        changed since. What this poll leaves as it was, it leaves as stored: a failure or a
        304 without validators keeps the stored validators, not the ones read earlier, and
        the error count goes up (or stays, for 429/503) from the stored count, not the one
        read earlier; a success resets it."""
        if stored is None or _later(stored[0], stamp):
            return
        _, stored_errors, stored_etag, stored_modified = stored
        errors = 0 if u.last_error is None else stored_errors + (u.error_count - feed.error_count)
        etag, last_modified = u.etag, u.last_modified
        if (etag, last_modified) == (feed.etag, feed.last_modified):
            etag, last_modified = stored_etag, stored_modified
        self.execute(
            "UPDATE feeds SET last_polled = ?, last_status = ?, last_error = ?, error_count = ?,"
            " next_poll = ?, etag = ?, last_modified = ?,"
            " last_warning = CASE WHEN ? IS NULL THEN ? ELSE last_warning END,"
            " channel_title = coalesce(?, channel_title), site_url = coalesce(site_url, ?) WHERE id = ?",
            [stamp, u.last_status, u.last_error, errors, iso(u.next_poll), etag, last_modified,
             u.last_error, u.warning, u.channel_title, u.site_url, feed.id])
        if u.body_hash:
            self.execute("UPDATE feeds SET body_hash = ? WHERE id = ?", [u.body_hash, feed.id])
        if u.disabled_reason:
            self.execute("UPDATE feeds SET disabled = 1, disabled_reason = ? WHERE id = ?",
                         [u.disabled_reason, feed.id])
        if u.new_url:
            taken = self.execute("SELECT 1 FROM feeds WHERE url = ?", [u.new_url]).fetchone()
            if taken:  # two feeds redirect to one: keep both rows, note it, poll the old URL
                self.execute("UPDATE feeds SET last_warning = ? WHERE id = ?",
                             [f"moved permanently to {u.new_url}, which is already a feed", feed.id])
            else:
                self.execute("UPDATE feeds SET url = ? WHERE id = ?", [u.new_url, feed.id])

    # -- cycles ---------------------------------------------------------------------------

    def start_cycle(self, now: datetime, feeds: int) -> int:
        with self.write():
            return inserted_id(self.execute("INSERT INTO cycles (started, feeds) VALUES (?, ?)",
                                            [iso(now), feeds]))

    def finish_cycle(self, cycle_id: int, now: datetime, counts: dict[str, int],
                     error: str | None = None) -> None:
        with self.write():
            self.execute(
                "UPDATE cycles SET finished = ?, fetched = ?, not_modified = ?, failed = ?, new_entries = ?,"
                " updated_entries = ?, error = ? WHERE id = ?",
                [iso(now), counts.get("fetched", 0), counts.get("not_modified", 0), counts.get("failed", 0),
                 counts.get("new", 0), counts.get("updated", 0), error, cycle_id])


def _later(stored: str | None, stamp: str) -> bool:
    """True when a stored time is later than `stamp` (both as written by iso()). Compared as
    times, not text, so a value written in another form (no offset, a date only) still orders."""
    return stored is not None and parse_stamp(stored) > parse_stamp(stamp)


def feed_from_row(row: dict) -> Feed:
    return Feed(
        id=row["id"], url=row["url"], title=row["title"] or row["channel_title"], category=row["category"],
        site_url=row["site_url"], etag=row["etag"], last_modified=row["last_modified"],
        last_polled=parse_iso(row["last_polled"]), last_status=row["last_status"],
        last_error=row["last_error"], last_warning=row["last_warning"], error_count=row["error_count"],
        next_poll=parse_iso(row["next_poll"]),
        disabled=bool(row["disabled"]), interval=row["interval_seconds"],
        disabled_reason=row["disabled_reason"], body_hash=row.get("body_hash"))
