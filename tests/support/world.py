"""A real store with feeds, entries and clusters inserted straight into it, for the topic and outbox tests."""
from __future__ import annotations

from datetime import datetime, timezone

from monitor.storage.database import iso, open_store

NOW = datetime(2016, 11, 17, 12, 0, tzinfo=timezone.utc)


class World:
    """Feeds, entries and clusters inserted straight into a real store (the FTS triggers index them)."""

    def __init__(self, path) -> None:
        self.store = open_store(str(path))
        self.feeds: dict[str, int] = {}
        self.n = 0

    def entry(self, outlet: str, title: str, text: str = "", published: datetime = NOW, link: str | None = None,
              ) -> int:
        with self.store.write():
            if outlet not in self.feeds:
                self.feeds[outlet] = self.store.db.execute(
                    "INSERT INTO feeds (url, title, added) VALUES (?, ?, ?)",
                    [f"https://{len(self.feeds)}.example/feed", outlet, iso(NOW)]).lastrowid
            self.n += 1
            entry_id = self.store.db.execute(
                "INSERT INTO entries (feed_id, entry_key, guid, link, title, text, published, first_seen, last_changed,"
                " content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'h')",
                [self.feeds[outlet], f"k{self.n}", f"g{self.n}", link or f"https://news.example/{self.n}", title,
                 text, iso(published), iso(NOW), iso(NOW)]).lastrowid
        self.store.index_pending_text()  # as clustering would
        return entry_id

    def cluster(self, *entry_ids: int, headline: str = "", activity: datetime = NOW) -> int:
        with self.store.write():
            cid = self.store.db.execute("INSERT INTO clusters (headline, created, last_activity) VALUES (?, ?, ?)",
                                        [headline or f"event {len(entry_ids)}", iso(NOW), iso(activity)]).lastrowid
        self.join(cid, *entry_ids)
        return cid

    def join(self, cluster_id: int, *entry_ids: int) -> None:
        with self.store.write():
            for eid in entry_ids:
                self.store.db.execute("INSERT INTO memberships (entry_id, cluster_id, joined) VALUES (?, ?, ?)",
                                      [eid, cluster_id, iso(NOW)])

    def merge(self, absorbed: int, into: int) -> None:
        with self.store.write():
            self.store.db.execute("UPDATE memberships SET cluster_id = ? WHERE cluster_id = ?", [into, absorbed])
            self.store.db.execute("UPDATE clusters SET merged_into = ? WHERE id = ?", [into, absorbed])
