"""The connection: migrations on empty and existing databases, WAL, refusal of newer schemas, locks,
rollback, and slicing parameter lists for IN (...)."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime

import pytest
from sqlite_utils import Database

from monitor.errors import StorageError
from monitor.storage import clusters
from monitor.storage.connection import chunked, iso
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


def test_schema_10_gives_existing_memberships_no_reason_and_no_names(tmp_path):
    """A version-9 database (memberships as that release wrote them) is upgraded to 10: each row keeps
    its values and gains reason NULL (read as "similar"), name_keys '[]' and also '[]'."""
    path = tmp_path / "v9.db"
    stamp = iso(NOW)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        migrations.apply(Database(db), stop_before="m010_follow_ups")
        db.execute("INSERT INTO feeds (id, url, title, added) VALUES (1, 'https://a.example/feed', 'A', ?)",
                   [stamp])
        for n in (1, 2):
            db.execute("INSERT INTO entries (id, feed_id, entry_key, guid, title, published, first_seen,"
                       " last_changed, content_hash) VALUES (?, 1, ?, ?, 'Quake', ?, ?, ?, 'h')",
                       [n, f"k{n}", f"g{n}", stamp, stamp, stamp])
        db.execute("INSERT INTO clusters (id, headline, created, last_activity) VALUES (1, 'Quake', ?, ?)",
                   [stamp, stamp])
        v9_rows = ((1, None, 0.0, "[]", None), (2, 1, 0.61, '["quak"]', 600.0))
        for entry, matched, score, terms, gap in v9_rows:
            db.execute("INSERT INTO memberships (entry_id, cluster_id, matched_entry_id, score, shared_terms,"
                       " time_gap_seconds, joined) VALUES (?, 1, ?, ?, ?, ?, ?)",  # version 9's INSERT
                       [entry, matched, score, terms, gap, stamp])
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        rows = store.db.execute("SELECT entry_id, matched_entry_id, score, shared_terms, time_gap_seconds,"
                                " reason, name_keys, also FROM memberships ORDER BY entry_id").fetchall()
        assert rows == [(1, None, 0.0, "[]", None, None, "[]", "[]"),
                        (2, 1, 0.61, '["quak"]', 600.0, None, "[]", "[]")]
        first, joined = clusters.show_cluster(store, 1).members
    assert first.why is None
    assert (joined.why.reason, joined.why.score, joined.why.shared_terms, joined.why.also_matched) == (
        "similar", 0.61, ("Quake",), ())


def test_schema_11_upgrade_keeps_the_outbox_and_reads_it_in_digest_summary(tmp_path):
    """A version-10 database with a sent digest and a cluster that matched two topics is upgraded to
    11: its rows stay, and the new digest_summary view reads them (recipients' delivery, the
    headlines carried in order, marked "new"/"updated" and "under more")."""
    path = tmp_path / "v10.db"
    stamp = iso(NOW)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        migrations.apply(Database(db), stop_before="m011_digest_summary")
        for cid, headline in ((1, "Quake hits the coast"), (2, "Bridge closed after crane falls")):
            db.execute("INSERT INTO clusters (id, headline, created, last_activity) VALUES (?, ?, ?, ?)",
                       [cid, headline, stamp, stamp])
        for topic, cid in (("quakes", 1), ("coast", 1), ("coast", 2)):  # cluster 1 matched two topics
            db.execute("INSERT INTO topic_matches (topic, cluster_id, first_matched, last_matched)"
                       " VALUES (?, ?, ?, ?)", [topic, cid, stamp, stamp])
        db.execute("INSERT INTO digests (id, topic, message_id, subject, recipients, message, created,"
                   " status, attempts, sent, sender) VALUES (1, 'coast', '<d1@x>', 'Coast: 2 events',"
                   " '[\"a@example.org\", \"b@example.org\"]', X'00', ?, 'sent', 1, ?, 'm@example.org')",
                   [stamp, stamp])
        db.execute("INSERT INTO digest_items (digest_id, cluster_id, kind, outlets, listed) VALUES"
                   " (1, 2, 'new', 3, 1), (1, 1, 'updated', 2, 0)")
        db.execute("INSERT INTO digest_recipients (digest_id, recipient, status, error) VALUES"
                   " (1, 'a@example.org', 'accepted', NULL),"
                   " (1, 'b@example.org', 'refused', '550 no such user')")
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.scalar("SELECT count(*) FROM topic_matches") == 3
        (row,) = store.query("SELECT * FROM digest_summary")
        topics = dict(store.db.execute("SELECT id, topics FROM cluster_summary"))
    assert row["subject"] == "Coast: 2 events" and row["status"] == "sent" and row["sent"] == stamp
    assert row["recipients"].splitlines() == ["a@example.org: accepted",
                                              "b@example.org: refused (550 no such user)"]
    assert row["items"] == 2
    assert row["headlines"].splitlines() == ["new: Bridge closed after crane falls [cluster 2]",
                                             "updated (under more): Quake hits the coast [cluster 1]"]
    assert sorted(topics[1].split(",")) == ["coast", "quakes"] and topics[2] == "coast"


def test_schema_12_reindexes_words_as_written_and_keeps_the_pending_queue(tmp_path):
    """A version-11 database (a porter-stemmed index) is upgraded to 12: the index is rebuilt from the
    stored entries and matches words as written; an entry still queued for indexing stays queued and
    is indexed by the next clustering transaction, once; its automerge setting is kept."""
    path = tmp_path / "v11.db"
    stamp = iso(NOW)
    titles = {1: "Court bans Telegram", 2: "Regulators fine the app", 3: "Telegram banned again"}
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        migrations.apply(Database(db), stop_before="m012_fts_words")
        db.execute("INSERT INTO feeds (id, url, title, added) VALUES (1, 'https://a.example/feed', 'A', ?)",
                   [stamp])
        for n, title in titles.items():
            db.execute("INSERT INTO entries (id, feed_id, entry_key, guid, title, text, published, first_seen,"
                       " last_changed, content_hash) VALUES (?, 1, ?, ?, ?, 'Officials spoke.', ?, ?, ?, 'h')",
                       [n, f"k{n}", f"g{n}", title, stamp, stamp, stamp])
            if n < 3:  # indexed by an earlier clustering transaction; entry 3 is still queued
                db.execute("INSERT INTO entries_fts (rowid, title, text) SELECT id, title, text FROM entries"
                           " WHERE id = ?", [n])
                db.execute("DELETE FROM fts_pending WHERE entry_id = ?", [n])
        stemmed = [r for (r,) in db.execute("SELECT rowid FROM entries_fts WHERE entries_fts MATCH 'ban'")]
        assert stemmed == [1]  # porter: "bans" -> "ban"
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION

        def match(query: str) -> list[int]:
            return [r for (r,) in store.db.execute(
                "SELECT rowid FROM entries_fts WHERE entries_fts MATCH ? ORDER BY rowid", [query])]

        assert match("ban") == [] and match("bans") == [1] and match("regulators") == [2]
        assert match("regulat*") == [2] and match("officials") == [1, 2]
        assert store.scalar("SELECT entry_id FROM fts_pending") == 3
        assert store.scalar("SELECT v FROM entries_fts_config WHERE k = 'automerge'") == 16
        store.index_pending_text()
        assert match("ban*") == [1, 3] and match("officials") == [1, 2, 3]
        assert store.scalar("SELECT count(*) FROM fts_pending") == 0
        store.db.execute("INSERT INTO entries_fts (entries_fts) VALUES ('integrity-check')")


def test_schema_13_keeps_existing_digests_as_mail_and_their_ledger(tmp_path):
    """A version-12 outbox is upgraded to 13: its digests become the mail channel's, so what they
    carried still counts for mail (no event is mailed again) and nothing for a chat destination."""
    from monitor.storage import outbox as outbox_db

    path = tmp_path / "v12.db"
    stamp = iso(NOW)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        migrations.apply(Database(db), stop_before="m013_chat_deliveries")
        db.execute("INSERT INTO clusters (id, headline, created, last_activity) VALUES (1, 'Quake', ?, ?)",
                   [stamp, stamp])
        db.execute("INSERT INTO digests (id, topic, message_id, subject, recipients, message, created,"
                   " status, attempts, sent, sender) VALUES (1, 'quakes', '<d1@x>', 'Quakes: 1 new event',"
                   " '[\"a@example.org\"]', X'00', ?, 'sent', 1, ?, 'm@example.org')", [stamp, stamp])
        db.execute("INSERT INTO digest_items (digest_id, cluster_id, kind, outlets, listed) VALUES"
                   " (1, 1, 'new', 2, 1)")
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.scalar("SELECT channel FROM digests WHERE id = 1") == "mail"
        assert [i.cluster_id for i in outbox_db.carried_items(store, "quakes")] == [1]
        assert outbox_db.carried_items(store, "quakes", "chat:0123456789abcdef") == []


def test_cluster_summary_finds_each_clusters_topics_through_an_index(tmp_path):
    """The view's topics column looks up topic_matches by cluster id through an index (SEARCH ...
    USING ... INDEX), instead of reading the whole table for every cluster (SCAN)."""
    with open_store(str(tmp_path / "m.db")) as store:
        plan = [row[3] for row in store.db.execute("EXPLAIN QUERY PLAN SELECT * FROM cluster_summary")]
    on_matches = [step for step in plan if step.split()[1:2] == ["t"]]  # the view's alias for topic_matches
    assert on_matches, plan
    assert all(step.startswith("SEARCH t USING") and "INDEX" in step and "(cluster_id=?)" in step
               for step in on_matches), plan


def test_newer_database_is_refused(tmp_path):
    """A newer release records its migration and stamps the file with its own schema version."""
    path = tmp_path / "new.db"
    open_store(str(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
               " VALUES ('monitor', 'm999_future', 'x')")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    for create in (True, False):
        with pytest.raises(StorageError, match="newer monitor"):
            open_store(str(path), create=create)


def _stamp(path) -> tuple[int, int, int]:
    """(application id, user_version, migrations recorded) of a database file."""
    with closing(sqlite3.connect(path)) as db:
        return (db.execute("PRAGMA application_id").fetchone()[0],
                db.execute("PRAGMA user_version").fetchone()[0],
                db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0])


def test_a_database_is_stamped_with_its_schema_version_and_monitors_application_id(tmp_path):
    """The documented marks (design.md): application_id 0x6D6F6E69 ("moni"), user_version the
    number of migrations applied."""
    path = tmp_path / "m.db"
    open_store(str(path)).close()
    app, version, recorded = _stamp(path)
    assert app == int.from_bytes(b"moni", "big") == 0x6D6F6E69
    assert version == recorded == len(KNOWN)


def test_a_database_from_before_stamps_opens_for_reading_and_a_writer_stamps_it(tmp_path):
    """Databases written before the stamps existed (application_id and user_version 0) still open:
    a reader leaves the file as it is, the first writer stamps it; the data stays."""
    path = tmp_path / "old.db"
    with open_store(str(path)) as store:
        store.upsert_feeds([FeedSource("https://a.example/f")], NOW)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA application_id = 0")
        db.execute("PRAGMA user_version = 0")
    with open_store(str(path), create=False) as store:
        assert [f.url for f in store.feeds()] == ["https://a.example/f"]
    assert _stamp(path)[:2] == (0, 0)
    with open_store(str(path)) as store:
        assert [f.url for f in store.feeds()] == ["https://a.example/f"]
    app, version, recorded = _stamp(path)
    assert (app, version) == (0x6D6F6E69, recorded)


def test_another_programs_database_is_not_taken_for_a_current_one(tmp_path):
    """A SQLite file of some other program, whatever its user_version, is not a monitor database:
    a reader refuses it rather than query tables it does not have."""
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute(f"PRAGMA user_version = {len(KNOWN)}")
    with pytest.raises(StorageError, match="needs a schema upgrade"):
        open_store(str(path), create=False)


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


def test_query_gives_rows_by_column_name_and_refuses_statements_without_rows(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        store.upsert_feeds([FeedSource("https://a.example/f", title="A")], NOW)
        assert [(r["url"], r["title"]) for r in store.query("SELECT url, title FROM feeds")] == [
            ("https://a.example/f", "A")]
        with pytest.raises(ValueError, match="statements that return rows"):
            store.query("UPDATE feeds SET title = 'B'")
