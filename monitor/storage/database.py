"""The store: the one import point for the database, assembled from its parts.

`Store` is the connection (`monitor.storage.connection`: opening, WAL, busy timeout,
migrations check, transactions) with one mixin per table family over it
(`monitor.storage.feeds`: feeds, entries, cycles). The parts are split so that each
table family's SQL reads on its own; callers do not care where a method lives, so they
import `Store`, `open_store` and the SQL helpers from here, and the split can change
without touching them. `survivors`, the one function that follows merged clusters to
their survivor, stays here too: the cluster, topic-match and outbox code import it from
here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from monitor.storage.connection import (
    DEFAULT_BUSY_TIMEOUT,
    PARAMS_PER_QUERY,
    WAL_SIZE_LIMIT,
    Connection,
    chunked,
    inserted_id,
    iso,
    parse_iso,
    parse_stamp,
)
from monitor.storage.feeds import FeedTables, feed_from_row

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "PARAMS_PER_QUERY",
    "WAL_SIZE_LIMIT",
    "Store",
    "chunked",
    "feed_from_row",
    "inserted_id",
    "iso",
    "open_store",
    "parse_iso",
    "parse_stamp",
    "survivors",
]


class Store(FeedTables, Connection):
    """One connection to the monitor database, with the methods of every table family."""


def survivors(store: Store, cluster_ids: Iterable[int] | None = None) -> dict[int, int]:
    """Cluster id -> the live cluster that holds its members now, through any chain of merges.

    With `cluster_ids`: each of them that is stored, mapped to its survivor (itself when it
    was never merged); only the rows on their chains are read. Without: every merged-away
    cluster, from one read of the merged rows.
    """
    if cluster_ids is None:
        merged = dict(store.execute(
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
        rows.update(store.execute(f"SELECT id, merged_into FROM clusters WHERE id IN ({marks})",
                                  chunk).fetchall())
    found = {}
    for start in ids:
        cid, seen = start, set()
        while (target := rows.get(cid)) is not None and cid not in seen:
            seen.add(cid)
            if target not in rows:
                rows.update(store.execute("SELECT id, merged_into FROM clusters WHERE id = ?",
                                          [target]).fetchall())
            cid = target
        if cid in rows:  # else the chain ends at a cluster that is not stored
            found[start] = cid
    return found


def open_store(path: str, *, create: bool = True, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
               on_upgrade: Callable[[int, int], object] | None = None) -> Store:
    return Store(path, create=create, busy_timeout=busy_timeout, on_upgrade=on_upgrade)
