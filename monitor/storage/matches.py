"""Topic matches: which clusters each topic has matched, through which entries and words.

monitor.digests.topics decides what matches; this module reads what matching needs to know
about clusters, records the matches (one row per topic and cluster, accumulating) and reads
them back for the digest and for `monitor topics list`. When clusters merge, their rows
follow the survivor (monitor.storage.clusters).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.storage.database import Store, chunked, iso, parse_iso

# The name an outlet goes by: the title the operator gave the feed, else the feed's own, else its URL.
OUTLET_SQL = "coalesce(nullif(f.title, ''), nullif(f.channel_title, ''), f.url)"


@dataclass(frozen=True)
class ClusterOutline:
    """What matching a topic needs to know about one cluster."""

    members: tuple[int, ...]  # entry ids, in published order
    outlets: tuple[str, ...]  # distinct outlets, first report first
    headline: str
    last_activity: datetime | None


def cluster_outlines(store: Store, cluster_ids: Sequence[int]) -> dict[int, ClusterOutline]:
    """Members, outlets, headline and last activity of each of `cluster_ids` (empty when not stored)."""
    members: dict[int, list[int]] = {cid: [] for cid in cluster_ids}
    outlets: dict[int, list[str]] = {cid: [] for cid in cluster_ids}
    heads: dict[int, tuple[str, str | None]] = {}
    for part in chunked(list(cluster_ids)):
        marks = ",".join("?" * len(part))
        for cid, eid, outlet in store.execute(
                f"SELECT m.cluster_id, m.entry_id, {OUTLET_SQL} FROM memberships m "
                f"JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id "
                f"WHERE m.cluster_id IN ({marks}) ORDER BY e.published, e.id", list(part)):
            members[cid].append(eid)
            if outlet not in outlets[cid]:
                outlets[cid].append(outlet)
        heads.update((r[0], (r[1], r[2])) for r in store.execute(
            f"SELECT id, headline, last_activity FROM clusters WHERE id IN ({marks})", list(part)))
    return {cid: ClusterOutline(tuple(members[cid]), tuple(outlets[cid]), heads.get(cid, ("", None))[0],
                                parse_iso(heads.get(cid, ("", None))[1]))
            for cid in cluster_ids}


def live_cluster_ids(store: Store, active_since: datetime | None = None) -> list[int]:
    """Clusters that were not merged away, only those active since `active_since` when given."""
    if active_since is None:
        rows = store.execute("SELECT id FROM clusters WHERE merged_into IS NULL").fetchall()
    else:
        rows = store.execute("SELECT id FROM clusters WHERE merged_into IS NULL AND last_activity >= ?",
                             [iso(active_since)]).fetchall()
    return [r[0] for r in rows]


def _merge(old: str, new: Sequence, limit: int | None = None) -> str:
    items = json.loads(old or "[]")
    items.extend(x for x in new if x not in items)
    return json.dumps(items[:limit] if limit else items)


def record_match(store: Store, topic: str, cluster_id: int, entry_ids: Sequence[int], terms: Sequence[str],
                 now: datetime, max_terms: int | None = None) -> None:
    """Upsert one topic's match of one cluster: first_matched is kept, last_matched moves, entry ids and
    terms accumulate (terms first seen first, at most `max_terms`). Call inside a write transaction."""
    stamp = iso(now)
    row = store.execute("SELECT entry_ids, terms FROM topic_matches"
                        " WHERE topic = ? AND cluster_id = ?", [topic, cluster_id]).fetchone()
    if row is None:
        store.execute(
            "INSERT INTO topic_matches (topic, cluster_id, first_matched, last_matched, entry_ids,"
            " terms) VALUES (?, ?, ?, ?, ?, ?)",
            [topic, cluster_id, stamp, stamp, json.dumps(sorted(entry_ids)), json.dumps(list(terms))])
    else:
        merged_ids = sorted(set(json.loads(row[0] or "[]")) | set(entry_ids))
        store.execute(
            "UPDATE topic_matches SET last_matched = ?, entry_ids = ?, terms = ? "
            "WHERE topic = ? AND cluster_id = ?",
            [stamp, json.dumps(merged_ids), _merge(row[1], terms, max_terms), topic, cluster_id])


def matched_terms(store: Store, topic: str) -> list[tuple[int, list[str]]]:
    """(cluster id, matched terms) of every match recorded for `topic`, as stored: merged-away
    clusters are not followed to their survivor here."""
    return [(cid, json.loads(terms or "[]")) for cid, terms in store.execute(
        "SELECT cluster_id, terms FROM topic_matches WHERE topic = ?", [topic])]


@dataclass(frozen=True)
class TopicActivity:
    """What the database knows about one topic, for `monitor topics list`."""

    matches: int  # clusters it has matched
    last_matched: datetime | None
    last_digest: datetime | None  # when its last digest was created (any status)
    pending: int  # its digests waiting in the outbox


def topic_activity(store: Store) -> dict[str, TopicActivity]:
    """Topic name -> its activity, for every topic with a match or a digest stored."""
    stats = {r[0]: r[1:] for r in store.execute(
        "SELECT topic, count(*), max(last_matched) FROM topic_matches GROUP BY topic")}
    digests = {r[0]: r[1:] for r in store.execute(
        "SELECT topic, max(created), sum(status = 'pending') FROM digests GROUP BY topic")}
    result = {}
    for name in [*stats, *(t for t in digests if t not in stats)]:
        count, last = stats.get(name, (0, None))
        created, pending = digests.get(name, (None, 0))
        result[name] = TopicActivity(matches=count, last_matched=parse_iso(last),
                                     last_digest=parse_iso(created), pending=pending or 0)
    return result
