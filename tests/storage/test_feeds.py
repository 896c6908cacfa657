"""Feeds, entries and the full-text queue: imports and feed changes, indexing stored text, and
overlapping polls of one feed storing in either order."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from monitor.feeds.schedule import PollPolicy, after_fetch
from monitor.storage.database import iso, open_store
from monitor.types import EntryData, FeedSource, FetchResult

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


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


def test_full_text_index_merges_in_large_steps(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        assert store.scalar("SELECT v FROM entries_fts_config WHERE k = 'automerge'") == 16


def test_text_is_indexed_for_search_by_the_step_after_storing(tmp_path):
    """Entries wait in fts_pending until index_pending_text; updates and deletes keep the index exact."""
    def add(store, n, title, text):
        with store.write():
            store.db.execute(
                "INSERT INTO entries (id, feed_id, entry_key, guid, title, text, published, first_seen,"
                " last_changed, content_hash)"
                " VALUES (?, 1, ?, ?, ?, ?, '2026-01-01', '2026-01-01', '2026-01-01', 'h')",
                [n, f"k{n}", f"g{n}", title, text])

    def found(store, query):
        return [r[0] for r in store.db.execute(
            "SELECT rowid FROM entries_fts WHERE entries_fts MATCH ? ORDER BY rowid", [query])]

    with open_store(str(tmp_path / "m.db")) as store:
        with store.write():
            store.db.execute("INSERT INTO feeds (id, url, added)"
                             " VALUES (1, 'https://a.example/f', '2026-01-01')")
        add(store, 1, "Quake hits Norcia", "Rescuers search the rubble.")
        add(store, 2, "Telegram admins held", "Cyber police arrested them.")
        assert found(store, "quake OR telegram") == []  # stored, not yet indexed
        assert store.index_pending_text() == 2 and store.index_pending_text() == 0
        assert found(store, "quake OR telegram") == [1, 2]
        with store.write():  # an indexed entry changes: the index follows
            store.db.execute("UPDATE entries SET title = 'Aftershock hits Norcia' WHERE id = 1")
            # not the text: the index is left alone
            store.db.execute("UPDATE entries SET last_changed = '2026-01-02' WHERE id = 2")
        assert found(store, "quake") == [] and found(store, "aftershock") == [1]
        add(store, 3, "Election results", "Turnout was high.")
        with store.write():  # a pending entry changes, then one pending and one indexed go away
            store.db.execute("UPDATE entries SET title = 'Election result delayed' WHERE id = 3")
            store.db.execute("DELETE FROM entries WHERE id IN (2, 3)")
        assert store.index_pending_text() == 0
        assert found(store, "telegram OR election OR delayed") == [] and found(store, "norcia") == [1]
        # raises if the index is not exact
        store.db.execute("INSERT INTO entries_fts (entries_fts) VALUES ('integrity-check')")


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



def test_polls_without_entries_are_stored_together_by_the_same_rule(tmp_path):
    """`apply_polls` (a cycle's 304s, failures and unchanged bodies, in one transaction) writes
    each feed's state exactly as `apply_poll` would, one by one, in another store: a feed whose
    stored poll is later keeps its state, the others take theirs."""
    urls = [f"https://{name}.example/feed" for name in "abcd"]
    results = [FetchResult(urls[0], 304, etag='"new"'), FetchResult(urls[1], None, error="timeout"),
               FetchResult(urls[2], 429, error="http_429", retry_after=600),
               FetchResult(urls[3], 304)]
    rows = []
    for together in (True, False):
        with open_store(str(tmp_path / f"{together}.db")) as store:
            store.upsert_feeds([FeedSource(url, url) for url in urls], NOW)
            store.apply_poll(store.feed_by_url(urls[3]), after_fetch(store.feed_by_url(urls[3]), FetchResult(
                urls[3], 200, b"v", etag='"v"'), at(30), POLICY), [entry("x")], at(30))
            for seconds in (1, 2):  # b has failed twice before
                b = store.feed_by_url(urls[1])
                store.apply_poll(b, after_fetch(b, FetchResult(urls[1], 500, error="http_500"), at(seconds),
                                                POLICY), [], at(seconds))
            read = [store.feed_by_url(url) for url in urls]  # the rows as a cycle read them
            polls = [(feed, after_fetch(feed, result, at(20), POLICY), at(20))
                     for feed, result in zip(read, results, strict=True)]
            if together:
                store.apply_polls(polls)
            else:
                for feed, update, now in polls:
                    store.apply_poll(feed, update, [], now)
            rows.append(store.query("SELECT * FROM feeds ORDER BY id"))
    together_rows, one_by_one = rows
    assert together_rows == one_by_one
    by_url = {r["url"]: r for r in together_rows}
    assert (by_url[urls[0]]["last_status"], by_url[urls[0]]["etag"]) == (304, '"new"')
    assert (by_url[urls[1]]["last_error"], by_url[urls[1]]["error_count"]) == ("timeout", 3)
    assert by_url[urls[2]]["next_poll"] == iso(at(20 + 600))
    assert by_url[urls[3]]["last_polled"] == iso(at(30))  # its stored poll is later: left as it was


def test_polls_stored_together_are_one_per_feed(tmp_path):
    with open_store(str(tmp_path / "m.db")) as store:
        store.upsert_feeds([FeedSource(URL, "A")], NOW)
        read = store.feed_by_url(URL)
        update = after_fetch(read, FetchResult(URL, 304), at(1), POLICY)
        with pytest.raises(ValueError, match="one poll per feed"):
            store.apply_polls([(read, update, at(1)), (read, update, at(2))])
        assert feed_row(store)["last_polled"] is None  # nothing written
