"""The store: migrations on empty and existing databases, WAL, refusal of newer schemas, locks."""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from monitor.errors import StorageError
from monitor.feeds.schedule import PollPolicy, after_fetch
from monitor.storage.database import chunked, iso, open_store, survivors
from monitor.storage.migrations import KNOWN, SCHEMA_VERSION
from monitor.types import EntryData, FeedSource, FetchResult

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def test_migrations_on_empty_database(tmp_path):
    path = tmp_path / "m.db"
    with open_store(str(path)) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.scalar("PRAGMA journal_mode") == "wal"
        assert {"feeds", "entries", "entries_fts", "clusters", "memberships", "cluster_merges", "topic_matches",
                "digests", "digest_items", "digest_recipients", "cycles"} <= set(store.db.table_names())
        assert {"cluster_summary", "feed_health", "entry_clusters"} <= set(store.db.view_names())
    # reopening applies nothing twice
    with open_store(str(path)) as store:
        assert store.scalar("SELECT count(*) FROM _sqlite_migrations") == SCHEMA_VERSION


def test_migrations_upgrade_an_existing_database_and_keep_data(tmp_path):
    """A database left at the first migration (an older release) is upgraded in place."""
    from monitor.storage.migrations import migrations

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    from sqlite_utils import Database

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
    db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('monitor', 'm999_future', 'x')")
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
        with open_store(str(path), busy_timeout=0.2) as store:
            with pytest.raises(StorageError, match="locked"):
                store.upsert_feeds([FeedSource("https://a.example/f")], NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_upsert_is_idempotent_and_updates_titles(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        src = [FeedSource("https://a.example/f", "A", "World"), FeedSource("https://b.example/f", "B")]
        assert store.upsert_feeds(src, NOW) == {"added": 2, "updated": 0, "unchanged": 0}
        assert store.upsert_feeds(src, NOW) == {"added": 0, "updated": 0, "unchanged": 2}
        assert store.upsert_feeds([FeedSource("https://a.example/f", "A2", "World")], NOW)["updated"] == 1
        assert store.feed_by_url("https://a.example/f").title == "A2"


def test_remove_keeps_entries_and_add_reenables(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        store.upsert_feeds([FeedSource("https://a.example/f", "A")], NOW)
        assert store.remove_feed("https://a.example/f") is True
        assert store.remove_feed("https://a.example/f") is False
        feed = store.feed_by_url("https://a.example/f")
        assert feed.disabled and feed.disabled_reason == "removed"
        assert store.add_feed(FeedSource("https://a.example/f"), NOW) == "enabled"
        assert not store.feed_by_url("https://a.example/f").disabled


def test_write_rolls_back_on_error(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        with pytest.raises(RuntimeError):
            with store.write():
                store.db.execute("INSERT INTO feeds (url, added) VALUES ('https://x.example/', 'now')")
                raise RuntimeError("boom")
        assert store.feeds() == []


def test_full_text_index_merges_in_large_steps(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        assert store.scalar("SELECT v FROM entries_fts_config WHERE k = 'automerge'") == 16


def test_text_is_indexed_for_search_by_the_step_after_storing(tmp_path):
    """Entries wait in fts_pending until index_pending_text; updates and deletes keep the index exact."""
    def add(store, n, title, text):
        with store.write():
            store.db.execute(
                "INSERT INTO entries (id, feed_id, entry_key, guid, title, text, published, first_seen, last_changed,"
                " content_hash) VALUES (?, 1, ?, ?, ?, ?, '2026-01-01', '2026-01-01', '2026-01-01', 'h')",
                [n, f"k{n}", f"g{n}", title, text])

    def found(store, query):
        return [r[0] for r in store.db.execute("SELECT rowid FROM entries_fts WHERE entries_fts MATCH ? ORDER BY rowid",
                                               [query])]

    with open_store(str(tmp_path / "m.db")) as store:
        with store.write():
            store.db.execute("INSERT INTO feeds (id, url, added) VALUES (1, 'https://a.example/f', '2026-01-01')")
        add(store, 1, "Quake hits Norcia", "Rescuers search the rubble.")
        add(store, 2, "Telegram admins held", "Cyber police arrested them.")
        assert found(store, "quake OR telegram") == []  # stored, not yet indexed
        assert store.index_pending_text() == 2 and store.index_pending_text() == 0
        assert found(store, "quake OR telegram") == [1, 2]
        with store.write():  # an indexed entry changes: the index follows
            store.db.execute("UPDATE entries SET title = 'Aftershock hits Norcia' WHERE id = 1")
            store.db.execute("UPDATE entries SET last_changed = '2026-01-02' WHERE id = 2")  # not text: untouched
        assert found(store, "quake") == [] and found(store, "aftershock") == [1]
        add(store, 3, "Election results", "Turnout was high.")
        with store.write():  # a pending entry changes, then one pending and one indexed go away
            store.db.execute("UPDATE entries SET title = 'Election result delayed' WHERE id = 3")
            store.db.execute("DELETE FROM entries WHERE id IN (2, 3)")
        assert store.index_pending_text() == 0
        assert found(store, "telegram OR election OR delayed") == [] and found(store, "norcia") == [1]
        store.db.execute("INSERT INTO entries_fts (entries_fts) VALUES ('integrity-check')")  # raises if not exact


URL = "https://a.example/feed"
POLICY = PollPolicy(interval=900, min_interval=300, max_interval=86400)


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def entry(key: str, text: str = "") -> EntryData:
    text = text or f"about {key}"
    return EntryData(key=key, guid=key, link=f"https://a.example/{key}", title=key,
                     summary_html=f"<p>{text}</p>", content_html="", text=text, author=None, published=NOW,
                     updated=None, content_hash=hashlib.sha1(text.encode()).hexdigest())


def feed_row(store) -> dict:
    return store.query("SELECT * FROM feeds WHERE id = 1")[0]


def stored_entries(store) -> dict[str, tuple[str, str]]:
    """entry key -> (text, first_seen); a key stored twice would fail the UNIQUE constraint first."""
    return {r["entry_key"]: (r["text"], r["first_seen"])
            for r in store.query("SELECT entry_key, text, first_seen FROM entries WHERE feed_id = 1")}


def test_an_older_poll_stored_last_leaves_the_newer_state_and_adds_its_entries(tmp_path):
    """Two polls of one feed overlap and the one that fetched first commits last (as when
    `monitor poll` runs beside the daemon): the feed's state stays the newer poll's, field
    for field, whatever the older one saw (another document, a failure, 410, a move); the
    entries only the older poll saw are stored, stamped with its time; an entry the newer
    poll stored in a later version is not put back to the older one."""
    with open_store(str(tmp_path / "m.db")) as store:
        store.upsert_feeds([FeedSource(URL, "A")], NOW)
        read = store.feed_by_url(URL)  # what every poll below read before fetching
        newer = after_fetch(read, FetchResult(URL, 200, b"v2", etag='"v2"', last_modified="L2"), at(10),
                            POLICY, channel_title="A, now")
        store.apply_poll(read, newer, [entry("a", "a, corrected"), entry("b")], at(10))
        state = feed_row(store)
        assert (state["last_polled"], state["etag"], state["error_count"]) == (iso(at(10)), '"v2"', 0)

        older = after_fetch(read, FetchResult(URL, 200, b"v1", etag='"v1"', last_modified="L1"), at(5),
                            POLICY, warning="bozo", channel_title="A, then")
        older_ids = store.apply_poll(read, older, [entry("a", "a"), entry("z")], at(5))
        for seconds, result in [(7, FetchResult(URL, 500, error="http_500")),
                                (8, FetchResult(URL, 410, error="http_410")),
                                (9, FetchResult(URL, 429, error="http_429", retry_after=60)),
                                (6, FetchResult(URL, 200, b"v0", etag='"v0"',
                                                permanent_url="https://b.example/f"))]:
            store.apply_poll(read, after_fetch(read, result, at(seconds), POLICY), [], at(seconds))

        # last poll, next poll, status, errors, validators, warning, title, url, disabled: all the newer's
        assert feed_row(store) == state
        assert stored_entries(store) == {"a": ("a, corrected", iso(at(10))), "b": ("about b", iso(at(10))),
                                         "z": ("about z", iso(at(5)))}
        assert older_ids == ([3], [])  # z new; a not "updated" back


def test_a_newer_poll_counts_on_from_the_stored_state_not_the_row_it_read(tmp_path):
    """A poll that read the feed (3 errors, ETag v1) before an overlapping poll stored a success
    (ETag v2), and then failed itself later: one consecutive error, and the validators stay v2."""
    with open_store(str(tmp_path / "m.db")) as store:
        store.upsert_feeds([FeedSource(URL, "A")], NOW)
        store.apply_poll(store.feed_by_url(URL), after_fetch(store.feed_by_url(URL), FetchResult(
            URL, 200, b"v1", etag='"v1"'), at(1), POLICY), [entry("a")], at(1))
        for seconds in (2, 3, 4):
            read = store.feed_by_url(URL)
            failed = after_fetch(read, FetchResult(URL, 500, error="http_500"), at(seconds), POLICY)
            store.apply_poll(read, failed, [], at(seconds))
        read = store.feed_by_url(URL)
        assert (read.error_count, read.etag) == (3, '"v1"')
        success = after_fetch(read, FetchResult(URL, 200, b"v2", etag='"v2"'), at(20), POLICY)
        store.apply_poll(read, success, [entry("a"), entry("b")], at(20))
        failure = after_fetch(read, FetchResult(URL, None, error="timeout"), at(21), POLICY)
        store.apply_poll(read, failure, [], at(21))
        state = feed_row(store)
        assert (state["last_polled"], state["last_error"], state["error_count"], state["etag"]) == (
            iso(at(21)), "timeout", 1, '"v2"')
        # within one second the stored times cannot order two polls: commit order decides
        read = store.feed_by_url(URL)
        store.apply_poll(read, after_fetch(read, FetchResult(URL, 304), at(21), POLICY), [], at(21))
        assert (feed_row(store)["last_error"], feed_row(store)["error_count"]) == (None, 0)


def test_survivors_follow_chains_of_merges(tmp_path):
    """1 was merged into 2, 2 into 3 (live); 4 is live; 5 was merged into 4; 99 is not stored."""
    with open_store(str(tmp_path / "m.db")) as store, store.write():
        for cid in (3, 4, 2, 1, 5):
            store.db.execute("INSERT INTO clusters (id, headline, created, last_activity)"
                             " VALUES (?, 'h', ?, ?)", [cid, iso(NOW), iso(NOW)])
        for absorbed, into in ((2, 3), (1, 2), (5, 4)):
            store.db.execute("UPDATE clusters SET merged_into = ? WHERE id = ?", [into, absorbed])
    with open_store(str(tmp_path / "m.db")) as store:
        assert survivors(store, [1, 3, 4, 5, 99]) == {1: 3, 3: 3, 4: 4, 5: 4}
        assert survivors(store, [2]) == {2: 3}
        assert survivors(store) == {1: 3, 2: 3, 5: 4}  # every merged-away cluster
        assert survivors(store, []) == {}


def test_chunked_keeps_every_value_once_in_order():
    values = list(range(2_000))
    parts = list(chunked(values))
    assert [len(p) for p in parts] == [900, 900, 200]  # under SQLite's old 999-parameter limit
    assert [v for p in parts for v in p] == values
    assert list(chunked([], 5)) == [] and list(chunked([1, 2, 3], 2)) == [[1, 2], [3]]
