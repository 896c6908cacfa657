"""Full-text search: the FTS5 queries that topics run over entries_fts.

Topic queries are FTS5 syntax (monitor.digests.topics turns what a user wrote into what FTS5
accepts); this module runs them. FTS5 parses a query only when its scan starts, so checking
a query means running it. The index holds words as written, case and diacritics folded
(migrations.FTS_TOKENIZE).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from monitor.storage.database import Store, chunked


def fts_reason(exc: sqlite3.Error) -> str:
    """FTS5's own words for why it refused a query, without its "fts5: " prefix."""
    msg = str(exc)
    return msg[len("fts5: "):] if msg.startswith("fts5: ") else msg


def query_error(store_or_conn: Store | sqlite3.Connection, query: str) -> str | None:
    """Why FTS5 cannot run `query` over entries_fts (its reason), or None when it can.

    `LIMIT 0` would accept anything, since the scan never starts; the impossible rowid makes
    FTS5 parse the query and then return nothing at once.
    """
    conn = store_or_conn.conn if isinstance(store_or_conn, Store) else store_or_conn
    try:
        conn.execute("SELECT rowid FROM entries_fts WHERE entries_fts MATCH ? AND rowid = -1",
                     [query]).fetchall()
    except sqlite3.OperationalError as exc:
        return fts_reason(exc)
    return None


def highlighted_matches(store: Store, query: str, entry_ids: Sequence[int], open_mark: str, close_mark: str,
                        ) -> dict[int, tuple[str | None, str | None]]:
    """Entry id -> (title, text) with the matched spans between the marks, for the entries among
    `entry_ids` that match `query`. A query FTS5 refuses raises sqlite3.OperationalError."""
    found: dict[int, tuple[str | None, str | None]] = {}
    for part in chunked(sorted(set(entry_ids))):
        marks = ",".join("?" * len(part))
        # FTS5 turns a bare `rowid IN (...)` into one lookup per id (about 0.3 ms each); a rowid
        # range it can seek, and the unary `+` keeps the IN list a plain filter on that range.
        rows = store.execute(
            f"SELECT rowid, highlight(entries_fts, 0, ?, ?), highlight(entries_fts, 1, ?, ?)"
            f" FROM entries_fts WHERE entries_fts MATCH ? AND rowid >= ? AND rowid <= ?"
            f" AND +rowid IN ({marks})",
            [open_mark, close_mark, open_mark, close_mark, query, part[0], part[-1], *part]).fetchall()
        for rowid, title, text in rows:
            found[rowid] = (title, text)
    return found
