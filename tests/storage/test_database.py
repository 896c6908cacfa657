"""The import point: every name callers import from monitor.storage.database is there, and the
helpers are the connection module's own (one of each); survivors follow merged clusters."""
from __future__ import annotations

from datetime import UTC, datetime

from monitor.storage import connection, database, feeds
from monitor.storage.database import iso, open_store, survivors

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# What monitor/, tests/ and bench/ import from monitor.storage.database, and feed_from_row,
# which it offered before it was split.
IMPORTED = {"DEFAULT_BUSY_TIMEOUT", "PARAMS_PER_QUERY", "WAL_SIZE_LIMIT", "Store", "chunked", "feed_from_row",
            "inserted_id", "iso", "open_store", "parse_iso", "parse_stamp", "survivors"}


def test_every_name_callers_import_is_exported_and_not_a_copy():
    assert set(database.__all__) == IMPORTED
    assert all(hasattr(database, name) for name in IMPORTED)
    for name in ("DEFAULT_BUSY_TIMEOUT", "PARAMS_PER_QUERY", "WAL_SIZE_LIMIT", "chunked", "inserted_id",
                 "iso", "parse_iso", "parse_stamp"):
        assert getattr(database, name) is getattr(connection, name), name
    assert database.feed_from_row is feeds.feed_from_row


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

