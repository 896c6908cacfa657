"""The connection: migrations on empty and existing databases, WAL, refusal of newer schemas, locks,
rollback, and slicing parameter lists for IN (...)."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from sqlite_utils import Database

from monitor.errors import StorageError
from monitor.storage.connection import chunked
from monitor.storage.database import open_store
from monitor.storage.migrations import KNOWN, SCHEMA_VERSION, migrations
from monitor.types import FeedSource

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_migrations_on_empty_database(tmp_path):
    path = tmp_path / "m.db"
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.scalar("PRAGMA journal_mode") == "wal"
        assert {"feeds", "entries", "entries_fts", "clusters", "memberships", "cluster_merges",
                "topic_matches", "digests", "digest_items", "digest_recipients",
                "cycles"} <= set(store.db.table_names())
        assert {"cluster_summary", "feed_health", "entry_clusters"} <= set(store.db.view_names())
    # reopening applies nothing twice
    with open_store(str(path)) as store:
        assert store.scalar("SELECT count(*) FROM _sqlite_migrations") == SCHEMA_VERSION


def test_migrations_upgrade_an_existing_database_and_keep_data(tmp_path):
    """A database left at the first migration (an older release) is upgraded in place."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    old = Database(db)
    migrations.apply(old, stop_before=KNOWN[1])
    old.execute("INSERT INTO feeds (url, title, added) VALUES ('https://a.example/feed', 'A', '2026-01-01')")
    db.close()
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [f.url for f in store.feeds()] == ["https://a.example/feed"]
        assert store.db["clusters"].exists()


def test_newer_database_is_refused(tmp_path):
    path = tmp_path / "new.db"
    open_store(str(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
               " VALUES ('monitor', 'm999_future', 'x')")
    db.close()
    with pytest.raises(StorageError, match="newer monitor"):
        open_store(str(path))


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a usable monitor database"):
        open_store(str(path))


def test_readers_do_not_create(tmp_path):
    with pytest.raises(StorageError, match="no database"):
        open_store(str(tmp_path / "absent.db"), create=False)
    assert not (tmp_path / "absent.db").exists()


def test_locked_database_times_out_with_a_clear_error(tmp_path):
    path = tmp_path / "m.db"
    open_store(str(path)).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with open_store(str(path), busy_timeout=0.2) as store, pytest.raises(StorageError, match="locked"):
            store.upsert_feeds([FeedSource("https://a.example/f")], NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_write_rolls_back_on_error(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        with pytest.raises(RuntimeError), store.write():
            store.db.execute("INSERT INTO feeds (url, added) VALUES ('https://x.example/', 'now')")
            raise RuntimeError("boom")
        assert store.feeds() == []


def test_chunked_keeps_every_value_once_in_order():
    values = list(range(2_000))
    parts = list(chunked(values))
    assert [len(p) for p in parts] == [900, 900, 200]  # under SQLite's old 999-parameter limit
    assert [v for p in parts for v in p] == values
    assert list(chunked([], 5)) == [] and list(chunked([1, 2, 3], 2)) == [[1, 2], [3]]
