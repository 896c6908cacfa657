"""Cluster tables: apply the clusterer's decisions and read clusters back for people and scripts.

Decisions come from monitor.events.clusterer (pure); this module only stores them and answers
queries. Every entry without a membership row is "unclustered": a cycle clusters all of
them, so an entry stored by a cycle that died before clustering is picked up by the next.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from monitor.storage.database import Store, chunked, iso, parse_iso, parse_stamp, survivors
from monitor.types import (
    ClusterCounts,
    ClusterDetail,
    ClusterDoc,
    ClusterHeadline,
    ClusterMember,
    ClusterSummary,
    ClusterTopicMatch,
    EntrySummary,
    JoinReason,
    SearchHit,
    TimelinePoint,
)

if TYPE_CHECKING:  # clustering is imported by the operations that cluster (see core)
    from monitor.events.clusterer import Assignment, Clusterer
    from monitor.events.headlines import Affixes
    from monitor.events.weighpool import ReadAhead

_DOC_COLUMNS = "e.id, e.feed_id, coalesce(f.title, f.channel_title, f.url), e.title, e.text, e.published"
_DOC_FROM = "FROM entries e JOIN feeds f ON f.id = e.feed_id"


def _doc(row: tuple) -> ClusterDoc:
    return ClusterDoc(entry_id=row[0], feed_id=row[1], outlet=row[2], title=row[3], text=row[4],
                      published=parse_stamp(row[5]))


def unclustered(store: Store, since: datetime | None = None) -> list[ClusterDoc]:
    """Entries without a cluster, in published order (ties by id: deterministic)."""
    sql = (f"SELECT {_DOC_COLUMNS} {_DOC_FROM}"
           " WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.entry_id = e.id)"
           + (" AND e.published >= ?" if since else "") + " ORDER BY e.published, e.id")
    rows = store.execute(sql, [iso(since)] if since else []).fetchall()
    return [_doc(r) for r in rows]


def docs_of(store: Store, ids: list[int]) -> list[ClusterDoc]:
    """These entries as clustering reads them (as `unclustered` gives them), in id order."""
    out: list[ClusterDoc] = []
    for chunk in chunked(sorted(ids)):
        marks = ",".join("?" * len(chunk))
        out += map(_doc, store.execute(f"SELECT {_DOC_COLUMNS} {_DOC_FROM} WHERE e.id IN ({marks})"
                                       " ORDER BY e.id", chunk).fetchall())
    return out


def clustered_since(store: Store, since: datetime | None, before: datetime | None = None,
                    ) -> Iterator[tuple[ClusterDoc, int]]:
    """Clustered entries published in [since, before) (None: no bound), in published order, with
    their cluster."""
    sql = (f"SELECT {_DOC_COLUMNS}, m.cluster_id {_DOC_FROM} JOIN memberships m ON m.entry_id = e.id"
           " WHERE e.published >= ?" + (" AND e.published < ?" if before else "")
           + " ORDER BY e.published, e.id")
    params = [iso(since) if since else ""] + ([iso(before)] if before else [])
    for row in store.execute(sql, params).fetchall():
        yield _doc(row[:6]), row[6]


def warm_start(store: Store, first: datetime, clusterer: Clusterer) -> datetime | None:
    """Where the history that rebuilds `clusterer`'s state before `first` begins: `warm_span`
    before it, or earlier when that holds fewer than `warm_entries` entries (None: all)."""
    start = first - clusterer.warm_span
    row = store.execute("SELECT published FROM entries WHERE published < ? ORDER BY published DESC"
                        " LIMIT 1 OFFSET ?", [iso(first), clusterer.warm_entries - 1]).fetchone()
    if row is None:
        return None
    return min(start, parse_stamp(row[0]))


def recall_follow_ups(store: Store, clusterer: Clusterer, before: datetime | None) -> int:
    """Give the clusterer the name pairs of members published within `follow_up_window` before
    `before` (the start of the warm history), under the ids their clusters have now."""
    if before is None:
        return 0
    since = before - clusterer.config.follow_up_window
    rows = store.execute(
        "SELECT m.entry_id, m.cluster_id, e.published, m.name_keys FROM memberships m"
        " JOIN entries e ON e.id = m.entry_id WHERE e.published >= ? AND e.published < ?"
        " AND m.name_keys != '[]' ORDER BY e.published, e.id", [iso(since), iso(before)]).fetchall()
    alive = survivors(store, {r[1] for r in rows})
    for entry_id, cluster_id, published, keys in rows:
        clusterer.recall(entry_id, alive.get(cluster_id, cluster_id), parse_stamp(published).timestamp(),
                         json.loads(keys))
    return len(rows)


def restore(store: Store, clusterer: Clusterer, first: datetime, before: datetime | None = None) -> set[int]:
    """Rebuild a new clusterer's memory for deciding entries from `first` on: the stored name keys
    of the year before its history (`recall_follow_ups`), then the history itself from
    `warm_start` (up to `before` when given). Returns the cluster ids of that history."""
    start = warm_start(store, first, clusterer)
    recall_follow_ups(store, clusterer, start)
    return warm(clusterer, list(clustered_since(store, start, before)))


def warm(clusterer: Clusterer, history: list[tuple[ClusterDoc, int]]) -> set[int]:
    """Give the clusterer stored entries with their clusters (`clustered_since`), without
    deciding; large runs are weighed ahead in a worker (weighpool). Returns the cluster ids."""
    from monitor.events.weighpool import weigh_ahead

    ids: set[int] = set()
    for (_, cid), feats in weigh_ahead(clusterer.weigher, history, len(history), lambda row: row[0]):
        clusterer.keep(feats, cid)
        ids.add(cid)
    return ids


PROGRESS_EVERY = 500  # entries between two calls of decide's `progress`


def decide(clusterer: Clusterer, docs: list[ClusterDoc], *, progress: Callable[[int], None] | None = None,
           ahead: ReadAhead | None = None) -> list[tuple[Assignment, ClusterDoc]]:
    """The clusterer's decision for each entry (`unclustered`), in order; large runs are
    weighed ahead in a worker (weighpool), `ahead`'s when it read them as they were stored.

    `progress(done)` is called with the number of entries decided so far, every
    PROGRESS_EVERY entries and once at the end (a caller's progress bar; nothing is shown here)."""
    from monitor.events.weighpool import weigh_ahead

    out: list[tuple[Assignment, ClusterDoc]] = []
    for doc, feats in weigh_ahead(clusterer.weigher, docs, len(docs), ahead=ahead):
        out.append((clusterer.place(feats), doc))
        if progress is not None and len(out) % PROGRESS_EVERY == 0:
            progress(len(out))
    if progress is not None and (not out or len(out) % PROGRESS_EVERY):
        progress(len(out))  # the end, unless it was just reported
    return out


def next_cluster_id(store: Store) -> int:
    return (store.scalar("SELECT max(id) FROM clusters") or 0) + 1


def apply(store: Store, decisions: Iterable[tuple[Assignment, ClusterDoc]], now: datetime,
          furniture: dict[int, Affixes] | None = None, shown: Mapping[int, Shown] | None = None,
          ) -> set[int]:
    """Store assignments (new clusters, memberships, merges) in one transaction.

    Returns the ids of the clusters that changed (surviving ids), for topic matching.
    `furniture`: feeds' title furniture learned already (see learn_furniture); `shown`: entries'
    titles as shown and their texts' starts, made already (see learn_headlines).
    """
    touched: set[int] = set()
    stamp = iso(now)
    furniture = {} if furniture is None else furniture  # each feed's titles are read once per cycle
    new: list[list] = []  # rows of clusters and memberships, inserted together before any merge
    members: list[list] = []
    with store.write():
        for a, doc in decisions:
            if a.is_new:
                new.append([a.cluster_id, doc.title, stamp, stamp])
            members.append(_member_row(a, a.cluster_id, stamp))
            if a.merged:
                _insert(store, new, members)
                for absorbed in a.merged:
                    _absorb(store, absorbed, a.cluster_id, a.entry_id, stamp)
                    touched.discard(absorbed)
            touched.add(a.cluster_id)
        _insert(store, new, members)
        refresh_many(store, touched, stamp, furniture, shown)
    return touched


def _insert(store: Store, clusters: list[list], members: list[list]) -> None:
    """Insert the rows gathered by `apply` (new clusters first: members refer to them), and
    empty the lists."""
    if clusters:
        store.conn.executemany(_NEW_CLUSTER, clusters)
        clusters.clear()
    if members:
        store.conn.executemany(_NEW_MEMBER, members)
        members.clear()


def learn_furniture(store: Store, feed_ids: Iterable[int], cache: dict[int, Affixes]) -> None:
    """Learn these feeds' title furniture into `cache` (see feed_furniture), ahead of `apply`:
    it depends on stored titles only, not on the decisions."""
    for feed_id in sorted(set(feed_ids)):
        feed_furniture(store, feed_id, cache)


# An entry's title as shown and its text's start, made ahead (learn_headlines), with the
# title and outlet they were made from.
Shown = tuple[str, str, str, str]


def learn_headlines(store: Store, docs: Sequence[ClusterDoc], furniture: dict[int, Affixes],
                    shown: dict[int, Shown]) -> None:
    """Ahead of `apply`, what its headlines need of these entries, none of which depends on the
    decisions: their feeds' furniture into `furniture` (learn_furniture), and each entry's title
    as shown (display_title) with its text's start (TEXT_START characters) into `shown`, as the
    run read them (refresh uses them while the stored title and outlet are the same)."""
    learn_furniture(store, (d.feed_id for d in docs), furniture)
    for d in docs:
        shown[d.entry_id] = (display_title(d.title, d.outlet, furniture[d.feed_id]),
                             (d.text or "")[:TEXT_START], d.title, d.outlet)


_NEW_CLUSTER = "INSERT INTO clusters (id, headline, created, last_activity) VALUES (?, ?, ?, ?)"
_NEW_MEMBER = ("INSERT INTO memberships (entry_id, cluster_id, matched_entry_id, score, shared_terms,"
               " time_gap_seconds, joined, reason, name_keys, also) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _member_row(a: Assignment, cluster_id: int, stamp: str) -> list:
    """One membership row, with why the entry joined (score, matched entry, shared terms, gap)."""
    return [a.entry_id, cluster_id, a.matched_entry_id, round(a.score, 4), json_list(a.shared_terms),
            a.time_gap.total_seconds() if a.time_gap is not None else None, stamp, a.reason,
            json_list(a.name_keys), json_list(a.also)]


_quoted = json.encoder.encode_basestring  # a str as JSON, as json.dumps(..., ensure_ascii=False) writes it


def json_list(items: Sequence[str] | Sequence[int]) -> str:
    """json.dumps(list(items), ensure_ascii=False), made directly for the lists of str or of int
    that memberships store: three per entry, and the encoder's set-up for each call cost
    more than the writing."""
    if not items:
        return "[]"
    if all(type(x) is str for x in items):
        return "[" + ", ".join(map(_quoted, cast(Sequence[str], items))) + "]"
    if all(type(x) is int for x in items):
        return "[" + ", ".join(map(int.__repr__, cast(Sequence[int], items))) + "]"
    return json.dumps(list(items), ensure_ascii=False)


def _move_topic_matches(store: Store, absorbed: int, into: int) -> None:
    """A merged cluster's topic matches (and what was sent about it) follow it to the survivor."""
    for row in store.query("SELECT * FROM topic_matches WHERE cluster_id = ?", [absorbed]):
        existing = store.query("SELECT * FROM topic_matches WHERE topic = ? AND cluster_id = ?",
                               [row["topic"], into])
        if existing:
            e = existing[0]
            store.execute(
                "UPDATE topic_matches SET first_matched = min(first_matched, ?),"
                " last_matched = max(last_matched, ?), entry_ids = ?, terms = ?"
                " WHERE topic = ? AND cluster_id = ?",
                [row["first_matched"], row["last_matched"], _union(e["entry_ids"], row["entry_ids"]),
                 _union(e["terms"], row["terms"]), row["topic"], into])
            store.execute("DELETE FROM topic_matches WHERE topic = ? AND cluster_id = ?",
                          [row["topic"], absorbed])
        else:
            store.execute("UPDATE topic_matches SET cluster_id = ? WHERE topic = ? AND cluster_id = ?",
                          [into, row["topic"], absorbed])


def _union(a: str, b: str) -> str:
    items = json.loads(a or "[]")
    items += [x for x in json.loads(b or "[]") if x not in items]
    return json.dumps(items, ensure_ascii=False)


def refresh(store: Store, cluster_id: int, stamp: str, furniture: dict[int, Affixes] | None = None,
            shown: Mapping[int, Shown] | None = None) -> None:
    """Recompute a cluster's size, outlets, time span and headline from its members.

    `furniture` caches each feed's learned title furniture (`feed_furniture`) across the
    clusters of one apply or rebuild; `shown` has members' titles as shown and their texts'
    starts, made ahead (learn_headlines)."""
    refresh_many(store, [cluster_id], stamp, {} if furniture is None else furniture, shown)


# A cluster's members as refresh reads them (by published time, then id)
_MEMBER_ROWS = ("SELECT e.id, e.title, e.published, e.feed_id, coalesce(f.title, f.channel_title, f.url),"
                " m.matched_entry_id, m.cluster_id FROM memberships m JOIN entries e ON e.id = m.entry_id"
                " JOIN feeds f ON f.id = e.feed_id")


def refresh_many(store: Store, cluster_ids: Iterable[int], stamp: str, furniture: dict[int, Affixes],
                 shown: Mapping[int, Shown] | None = None) -> set[int]:
    """`refresh` each of these clusters, reading their members in a few queries, not one each.
    Returns the ids of those that have members (a cluster without any is left as it is)."""
    refreshed: set[int] = set()
    for chunk in chunked(sorted(cluster_ids)):
        marks = ",".join("?" * len(chunk))
        by_cluster: dict[int, list] = defaultdict(list)
        for row in store.execute(f"{_MEMBER_ROWS} WHERE m.cluster_id IN ({marks})"
                                 " ORDER BY m.cluster_id, e.published, e.id", chunk):
            by_cluster[row[6]].append(row)
        for cid, rows in by_cluster.items():
            _refresh_from(store, cid, rows, stamp, furniture, shown)
        refreshed.update(by_cluster)
    return refreshed


def _refresh_from(store: Store, cluster_id: int, rows: list, stamp: str,
                  furniture: dict[int, Affixes], shown: Mapping[int, Shown] | None) -> None:
    """refresh, given the cluster's member rows (_MEMBER_ROWS, in refresh's order)."""
    from monitor.events.headlines import choose_headline, is_incomplete, shown_headline

    hub = Counter(r[5] for r in rows if r[5] is not None)
    # The headline, shown without wire slugs and outlet furniture: a complete title (not cut
    # by its feed), then the member others matched most often (the event's most typical
    # report), then the first report. The titles stay stored as published.
    # Made as they are needed: most clusters are decided by their best member's own text.
    titles: dict[int, str] = {}
    texts: dict[int, str] = {}
    everyone: list[str] = []

    def made(i: int) -> Shown | None:
        """What was made ahead for member i, if from the title and outlet stored now."""
        r = rows[i]
        known = shown.get(r[0]) if shown else None
        return known if known is not None and known[2:] == (r[1], r[4]) else None

    def title(i: int) -> str:
        if i not in titles:
            r, known = rows[i], made(i)
            titles[i] = known[0] if known else display_title(r[1], r[4],
                                                              feed_furniture(store, r[3], furniture))
        return titles[i]

    def context(i: int) -> Iterator[str]:
        """What tells a cut word in member i's title: its own text, then the members' titles."""
        if i not in texts:
            known = made(i)
            texts[i] = known[1] if known else _texts_of(store, [rows[i][0]]).get(rows[i][0], ("", ""))[1]
        yield texts[i]
        if not everyone:
            everyone.append("\n".join(title(j) for j in range(len(rows))))
        yield everyone[0]

    cut: dict[int, bool] = {}

    def complete(i: int) -> bool:
        cut[i] = is_incomplete(title(i), context(i))
        return not cut[i]

    best = choose_headline([hub.get(r[0], 0) for r in rows], complete)
    headline = shown_headline(title(best), context(best)) if cut[best] else title(best)
    store.execute(
        "UPDATE clusters SET size = ?, outlets = ?, first_published = ?, last_published = ?, headline = ?,"
        " last_activity = ? WHERE id = ?",
        [len(rows), len({r[3] for r in rows}), rows[0][2], rows[-1][2], headline, stamp, cluster_id])


# Characters of an entry's text read to tell a cut headline word, or the words behind its terms:
# the clusterer's terms come from a text's first few hundred words.
TEXT_START = 8000


def feed_furniture(store: Store, feed_id: int, cache: dict[int, Affixes]) -> Affixes:
    """A feed's title furniture (headlines.learn_affixes), learned from its latest titles
    (bounded) after `clean_headline`, and its names; once per feed in `cache`."""
    if feed_id not in cache:
        from monitor.events.headlines import RECENT_TITLES, Affixes, learn_affixes
        from monitor.feeds.normalize import clean_headline

        feed = store.execute("SELECT title, channel_title, site_url, url FROM feeds WHERE id = ?",
                             [feed_id]).fetchone()
        if feed is None:
            cache[feed_id] = Affixes()
            return cache[feed_id]
        outlet = feed[0] or feed[1] or feed[3]
        # the latest by id (stored order): the unique (feed_id, entry_key) index gives a feed's
        # ids without reading its rows, so only RECENT_TITLES rows are read
        titles = [r[0] for r in store.execute(
            "SELECT title FROM entries WHERE id IN"
            " (SELECT id FROM entries WHERE feed_id = ? ORDER BY id DESC LIMIT ?)",
            [feed_id, RECENT_TITLES])]
        cache[feed_id] = learn_affixes([clean_headline(t, outlet) for t in titles], names=feed[:3])
    return cache[feed_id]


def _texts_of(store: Store, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Entry id -> (title, start of text: TEXT_START) as stored."""
    out: dict[int, tuple[str, str]] = {}
    for chunk in chunked(sorted(ids)):
        marks = ",".join("?" * len(chunk))
        for eid, title, text in store.execute(
                f"SELECT id, title, substr(text, 1, ?) FROM entries WHERE id IN ({marks})",
                [TEXT_START, *chunk]):
            out[eid] = (title, text or "")
    return out


def display_title(title: str, outlet: str, furniture: Affixes) -> str:
    """A stored title as shown: wire slugs and generic outlet suffixes off (`clean_headline`),
    then the feed's learned furniture (`feed_furniture`)."""
    # Imported here: headlines and normalize take about 10 ms to import, which commands that
    # show no titles (a poll with nothing new among them) need not pay.
    from monitor.events.headlines import strip_affixes
    from monitor.feeds.normalize import clean_headline

    return strip_affixes(clean_headline(title, outlet) or title, furniture)


# -- reading ------------------------------------------------------------------------------


def resolve(store: Store, cluster_id: int) -> int | None:
    """The surviving id for a cluster id (merged ids still resolve); None if unknown."""
    return survivors(store, [cluster_id]).get(cluster_id)


AssignmentsMark = tuple[int, int | None, int]


def assignments_mark(store: Store) -> AssignmentsMark:
    """A fingerprint of the stored cluster assignments (memberships, newest cluster id, merges):
    it changes whenever any process clusters, merges or purges, so an in-memory clusterer
    can tell that its memory no longer matches the database."""
    return (store.scalar("SELECT count(*) FROM memberships"),
            store.scalar("SELECT max(id) FROM clusters"),
            store.scalar("SELECT count(*) FROM cluster_merges"))


def cluster_counts(store: Store, day_ago: datetime) -> ClusterCounts:
    """Live clusters (not merged away), and those of them that gained an entry since `day_ago`."""
    return ClusterCounts(
        total=store.scalar("SELECT count(*) FROM clusters WHERE merged_into IS NULL"),
        active_24h=store.scalar("SELECT count(*) FROM clusters"
                                " WHERE merged_into IS NULL AND last_activity >= ?", [iso(day_ago)]))


def list_clusters(store: Store, *, since: datetime | None, topic: str | None = None, min_size: int = 1,
                  min_outlets: int = 1, limit: int | None = None, with_entries: bool = True,
                  ) -> list[ClusterSummary]:
    """Clusters by last activity, newest first."""
    where = ["c.merged_into IS NULL", "c.size >= ?", "c.outlets >= ?"]
    params: list = [min_size, min_outlets]
    if since is not None:
        where.append("c.last_activity >= ?")
        params.append(iso(since))
    if topic:
        where.append("EXISTS (SELECT 1 FROM topic_matches t WHERE t.cluster_id = c.id AND t.topic = ?)")
        params.append(topic)
    sql = (f"SELECT c.* FROM clusters c WHERE {' AND '.join(where)} ORDER BY c.last_activity DESC, c.id DESC"
           + (" LIMIT ?" if limit else ""))
    if limit:
        params.append(limit)
    with store.read():
        clusters = store.query(sql, params)
        ids = [c["id"] for c in clusters]
        topics = _topics_of(store, ids)
        members = _members_of(store, ids) if with_entries else {}
        outlets = _outlets_of(store, ids)
    return [_summary(c, topics.get(c["id"], []), outlets.get(c["id"], []),
                     [_entry(m) for m in members[c["id"]]] if c["id"] in members else None)
            for c in clusters]


def _topics_of(store: Store, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        for cid, topic in store.execute("SELECT cluster_id, topic FROM topic_matches"
                                        f" WHERE cluster_id IN ({marks}) ORDER BY topic", chunk):
            out[cid].append(topic)
    return out


_MEMBER_SQL = """
    SELECT m.cluster_id, e.id, e.guid, e.link, e.title, coalesce(f.title, f.channel_title, f.url) AS outlet,
           f.url AS feed_url, e.published, m.matched_entry_id, m.score, m.shared_terms, m.time_gap_seconds, e.feed_id,
           m.reason, m.also
    FROM memberships m JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id"""  # noqa: E501 (one SELECT list)


def _members_of(store: Store, ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = defaultdict(list)
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        for r in store.query(f"{_MEMBER_SQL} WHERE m.cluster_id IN ({marks}) ORDER BY e.published, e.id",
                             chunk):
            out[r["cluster_id"]].append(r)
    return out


def _outlets_of(store: Store, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        for cid, outlet, _first in store.execute(
                "SELECT m.cluster_id, coalesce(f.title, f.channel_title, f.url), min(e.published)"
                " FROM memberships m JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id"
                f" WHERE m.cluster_id IN ({marks}) GROUP BY m.cluster_id, e.feed_id ORDER BY 3", chunk):
            out[cid].append(outlet)
    return out


def _entry(r: dict) -> EntrySummary:
    """An entry row (of _MEMBER_SQL or the search query) as a record."""
    return EntrySummary(id=r["id"], guid=r["guid"], link=r["link"], title=r["title"], outlet=r["outlet"],
                        feed_url=r["feed_url"], published=parse_stamp(r["published"]))


def _summary(c: dict, topics: list[str], outlets: list[str], entries: list[EntrySummary] | None,
             ) -> ClusterSummary:
    return ClusterSummary(id=c["id"], title=c["headline"], size=c["size"], outlets=tuple(outlets),
                          first_published=parse_iso(c["first_published"]),
                          last_published=parse_iso(c["last_published"]),
                          last_activity=parse_stamp(c["last_activity"]), topics=tuple(topics),
                          entries=tuple(entries) if entries is not None else None)


def show_cluster(store: Store, cluster_id: int) -> ClusterDetail | None:
    """One cluster with members, why each joined, a timeline, and merge history."""
    survivor = resolve(store, cluster_id)
    if survivor is None:
        return None
    with store.read():
        c = store.query("SELECT * FROM clusters WHERE id = ?", [survivor])[0]
        rows = _members_of(store, [survivor]).get(survivor, [])
        summary = _summary(c, _topics_of(store, [survivor]).get(survivor, []),
                           _outlets_of(store, [survivor]).get(survivor, []), None)
        # Titles as shown (display_title, a cut word marked); each join's terms as the words
        # its texts write
        furniture: dict[int, Affixes] = {}
        texts = _texts_of(store, {m["id"] for m in rows} | {m["matched_entry_id"] for m in rows} - {None})
        cleaned = {m["id"]: display_title(m["title"], m["outlet"],
                                          feed_furniture(store, m["feed_id"], furniture)) for m in rows}
        all_titles = "\n".join(cleaned.values())
        from monitor.events.headlines import shown_headline

        titles = {i: shown_headline(t, [texts.get(i, ("", ""))[1], all_titles]) for i, t in cleaned.items()}
        # The other clusters a follow-up named, under the ids they have now: one merged since
        # is shown as the cluster it went into, and not at all if that is this one.
        named = survivors(store, {c for m in rows for c in json.loads(m["also"] or "[]")})
        members = tuple(ClusterMember(entry=replace(_entry(m), title=titles[m["id"]]),
                                      why=_why(m, titles, named, survivor, texts)) for m in rows)
        merged_from = tuple(r["absorbed_id"] for r in store.query(
            "SELECT absorbed_id FROM cluster_merges WHERE into_id = ? ORDER BY id", [survivor]))
        matches = tuple(
            ClusterTopicMatch(topic=t["topic"], first_matched=parse_stamp(t["first_matched"]),
                              terms=tuple(json.loads(t["terms"])))
            for t in store.query("SELECT * FROM topic_matches WHERE cluster_id = ? ORDER BY topic",
                                 [survivor]))
    return ClusterDetail(
        cluster=summary, members=members,
        timeline=tuple(timeline([m.entry.published for m in members], [m.entry.outlet for m in members])),
        merged_from=merged_from, topic_matches=matches,
        requested_id=cluster_id if survivor != cluster_id else None)


def _why(m: dict, titles: dict[int, str], named: dict[int, int], cluster_id: int,
         texts: dict[int, tuple[str, str]]) -> JoinReason | None:
    """Why a member joined; None for the report that started the cluster (or whose match is gone).
    `named` maps the clusters follow-ups named to their survivors (`survivors`); the stored
    shared terms are shown as the words of the member's, else the matched member's, title and
    text (`texts`, from `_texts_of`)."""
    if m["matched_entry_id"] is None:
        return None
    from monitor.events.headlines import shared_words

    also = dict.fromkeys(named.get(c, c) for c in json.loads(m["also"] or "[]"))
    words = shared_words(json.loads(m["shared_terms"] or "[]"),
                         [*texts.get(m["id"], ()), *texts.get(m["matched_entry_id"], ())])
    return JoinReason(matched_entry_id=m["matched_entry_id"], matched_title=titles.get(m["matched_entry_id"]),
                      score=m["score"], shared_terms=words,
                      time_gap_hours=(round(m["time_gap_seconds"] / 3600, 1)
                                      if m["time_gap_seconds"] is not None else None),
                      reason=m["reason"] or "similar", also_matched=tuple(c for c in also if c != cluster_id))


def timeline(times: list[datetime], outlets: list[str]) -> list[TimelinePoint]:
    """Reports and new outlets per hour (per day when the event spans more than 3 days). Pure."""
    if not times:
        return []
    span = max(times) - min(times)
    step = timedelta(days=1) if span > timedelta(days=3) else timedelta(hours=1)
    fmt = "%Y-%m-%d" if step.days else "%Y-%m-%d %H:00"
    reports: Counter[str] = Counter()
    new_outlets: dict[str, list[str]] = {}  # period -> outlets first seen in it, periods in time order
    seen: set[str] = set()
    for when, outlet in sorted(zip(times, outlets, strict=True)):
        period = when.strftime(fmt)
        reports[period] += 1
        new = new_outlets.setdefault(period, [])
        if outlet not in seen:
            seen.add(outlet)
            new.append(outlet)
    return [TimelinePoint(period=period, reports=reports[period], new_outlets=tuple(new))
            for period, new in new_outlets.items()]


def search(store: Store, query: str, limit: int = 50) -> list[SearchHit]:
    """FTS5 search over entry titles and text; each hit with its cluster."""
    from monitor.digests.topics import fts_query  # the topic query language, for searches too

    rows = store.query(
        "SELECT e.id, e.guid, e.link, e.title, coalesce(f.title, f.channel_title, f.url) AS outlet,"
        " f.url AS feed_url, e.published, m.cluster_id,"
        " snippet(entries_fts, 1, '[', ']', ' … ', 12) AS snippet"
        " FROM entries_fts JOIN entries e ON e.id = entries_fts.rowid JOIN feeds f ON f.id = e.feed_id"
        " LEFT JOIN memberships m ON m.entry_id = e.id"
        " WHERE entries_fts MATCH ? ORDER BY bm25(entries_fts), e.published DESC LIMIT ?",
        [fts_query(query), limit])
    heads: dict[int, str] = {}
    ids = sorted({r["cluster_id"] for r in rows if r["cluster_id"] is not None})
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        heads.update(store.execute(f"SELECT id, headline FROM clusters WHERE id IN ({marks})",
                                   chunk).fetchall())
    return [SearchHit(entry=_entry(r), snippet=r["snippet"],
                      cluster=(ClusterHeadline(id=r["cluster_id"], title=heads.get(r["cluster_id"]))
                               if r["cluster_id"] is not None else None)) for r in rows]


# -- rebuilding --------------------------------------------------------------------------------


def rebuild(store: Store, make_clusterer: Callable[[int], Clusterer], since: datetime | None,
            now: datetime, *, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Re-decide the clusters of entries published since `since` (all when None), in one transaction.

    Ids stay stable where the events do: each rebuilt cluster takes the old id that most of
    its members had; an old cluster left without members points (merged_into) to the cluster
    that took most of them, so old ids, topic matches and sent digests still resolve.
    `progress(done)`: how many entries are decided so far (see `decide`).
    """
    cutoff = iso(since) if since else ""
    with store.write():
        db = store.conn
        rows = db.execute("SELECT m.entry_id, m.cluster_id, m.joined FROM memberships m"
                          " JOIN entries e ON e.id = m.entry_id WHERE e.published >= ?", [cutoff]).fetchall()
        old = {entry_id: cid for entry_id, cid, _ in rows}
        joined = {entry_id: when for entry_id, _, when in rows}
        db.execute("DELETE FROM memberships WHERE entry_id IN (SELECT id FROM entries WHERE published >= ?)",
                   [cutoff])
        first_new = next_cluster_id(store)
        clusterer = make_clusterer(first_new)
        warm_ids: set[int] = set()
        if since:
            warm_ids = restore(store, clusterer, since, before=since)
        decisions = decide(clusterer, unclustered(store, since), progress=progress)
        final = {a.entry_id: clusterer.resolve(a.cluster_id) for a, _ in decisions}
        mapping = _stable_ids(final, old, first_new)
        stamp = iso(now)
        touched: set[int] = set()

        def stored_id(clusterer_id: int) -> int:
            """The id a cluster of this rebuild is stored under (stable ids, merges followed)."""
            live = clusterer.resolve(clusterer_id)
            return mapping.get(live, live)

        for a, doc in decisions:
            cid = mapping.get(final[a.entry_id], final[a.entry_id])
            if db.execute("SELECT 1 FROM clusters WHERE id = ?", [cid]).fetchone():
                db.execute("UPDATE clusters SET merged_into = NULL WHERE id = ?", [cid])
            else:
                db.execute(_NEW_CLUSTER, [cid, doc.title, stamp, stamp])
            # a follow-up's other clusters too: their ids in this rebuild are not the stored ones
            # an entry that stays in its cluster keeps when it joined: digests tell news by it
            db.execute(_NEW_MEMBER, _member_row(replace(a, also=tuple(stored_id(x) for x in a.also)), cid,
                                                joined[a.entry_id] if old.get(a.entry_id) == cid else stamp))
            touched.add(cid)
        for w in warm_ids:  # clusters from before `since` that the rebuild merged into others
            survivor = stored_id(w)
            if survivor != w:
                _absorb(store, w, survivor, None, stamp)
                touched.add(survivor)
        emptied = set(old.values()) - touched - warm_ids
        for cid in sorted(emptied):
            takers = Counter(mapping.get(final[e], final[e])
                             for e, o in old.items() if o == cid and e in final)
            target = min(takers, key=lambda t: (-takers[t], t)) if takers else None
            db.execute("UPDATE clusters SET size = 0, outlets = 0 WHERE id = ?", [cid])
            if target is not None and target != cid:
                _absorb(store, cid, target, None, stamp)
        furniture: dict[int, Affixes] = {}  # each feed's titles are read once per rebuild
        refresh_many(store, touched, stamp, furniture)
    return {"entries": len(decisions), "clusters": len(touched), "emptied": len(emptied)}


def _stable_ids(final: dict[int, int], old: dict[int, int], first_new: int) -> dict[int, int]:
    """Map each new cluster id to the old id most of its members had (each old id used once)."""
    kept = {cid for cid in final.values() if cid < first_new}  # warm clusters keep their own ids
    overlap = Counter((cid, old[e]) for e, cid in final.items() if cid >= first_new and e in old)
    mapping: dict[int, int] = {}
    for (new, previous), _n in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if new not in mapping and previous not in kept:
            mapping[new] = previous
            kept.add(previous)
    return mapping


def _absorb(store: Store, absorbed: int, into: int, entry_id: int | None, stamp: str) -> None:
    db = store.conn
    db.execute("UPDATE memberships SET cluster_id = ? WHERE cluster_id = ?", [into, absorbed])
    db.execute("UPDATE clusters SET merged_into = ?, size = 0, outlets = 0 WHERE id = ?", [into, absorbed])
    db.execute("UPDATE clusters SET merged_into = ? WHERE merged_into = ?", [into, absorbed])
    db.execute("INSERT INTO cluster_merges (absorbed_id, into_id, entry_id, merged) VALUES (?, ?, ?, ?)",
               [absorbed, into, entry_id, stamp])
    _move_topic_matches(store, absorbed, into)


def purge(store: Store, before: datetime, now: datetime) -> int:
    """Retention: delete entries published before `before`, keeping clusters consistent.

    Cluster rows stay (digests and topic matches refer to them); their counts shrink to
    what is left, so an emptied cluster no longer lists.
    """
    cutoff = iso(before)
    with store.write():
        touched = [r[0] for r in store.execute(
            "SELECT DISTINCT m.cluster_id FROM memberships m JOIN entries e ON e.id = m.entry_id"
            " WHERE e.published < ?", [cutoff]).fetchall()]
        store.execute("UPDATE memberships SET matched_entry_id = NULL WHERE matched_entry_id IN"
                      " (SELECT id FROM entries WHERE published < ?)", [cutoff])
        store.execute("UPDATE cluster_merges SET entry_id = NULL WHERE entry_id IN"
                      " (SELECT id FROM entries WHERE published < ?)", [cutoff])
        store.execute("DELETE FROM memberships WHERE entry_id IN"
                      " (SELECT id FROM entries WHERE published < ?)", [cutoff])
        deleted = store.execute("DELETE FROM entries WHERE published < ?", [cutoff]).rowcount
        stamp = iso(now)
        furniture: dict[int, Affixes] = {}  # each feed's title furniture, learned once for the purge
        refreshed = refresh_many(store, touched, stamp, furniture)
        for cid in touched:
            if cid not in refreshed:  # no member left
                store.execute("UPDATE clusters SET size = 0, outlets = 0 WHERE id = ?", [cid])
    return deleted
