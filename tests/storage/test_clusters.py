"""Reading clusters back: records for listings, `clusters show`, search and `status`, from a real store."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from monitor.storage import clusters
from monitor.storage.database import iso
from monitor.types import ClusterHeadline
from tests.support.world import NOW, World


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = World(tmp_path / "m.db")
    yield w
    w.store.close()


def _event(world: World, *reports: tuple[str, str, timedelta]) -> int:
    """A cluster of (outlet, title, published before NOW) reports, counted as apply() would count it."""
    cid = world.cluster(*(world.entry(outlet, title, published=NOW - ago) for outlet, title, ago in reports))
    with world.store.write():
        clusters.refresh(world.store, cid, iso(NOW))
    return cid


def test_listing_names_members_in_published_order_and_outlets_by_first_report(world):
    cid = _event(world, ("Daily", "Coast shaken by quake", timedelta(hours=1)),
                 ("Wire", "Quake hits the coast", timedelta(hours=3)),
                 ("Daily", "Quake: hundreds leave their homes", timedelta(minutes=10)))
    [listed] = clusters.list_clusters(world.store, since=None)
    assert (listed.id, listed.size, listed.outlets, listed.topics) == (cid, 3, ("Wire", "Daily"), ())
    assert [e.title for e in listed.entries] == ["Quake hits the coast", "Coast shaken by quake",
                                                 "Quake: hundreds leave their homes"]
    assert [e.published for e in listed.entries] == [NOW - timedelta(hours=3), NOW - timedelta(hours=1),
                                                     NOW - timedelta(minutes=10)]
    assert listed.first_published == NOW - timedelta(hours=3) and listed.last_activity == NOW
    assert clusters.list_clusters(world.store, since=None, with_entries=False)[0].entries is None


def test_a_merged_away_id_shows_the_cluster_it_went_to(world):
    """README: a merged-away id says where it went."""
    kept = _event(world, ("Wire", "Quake hits the coast", timedelta(hours=2)))
    gone = _event(world, ("Daily", "Coast shaken by quake", timedelta(hours=1)))
    world.merge(gone, kept)
    shown = clusters.show_cluster(world.store, gone)
    assert shown.cluster.id == kept and shown.requested_id == gone
    assert [m.entry.outlet for m in shown.members] == ["Wire", "Daily"]
    assert clusters.show_cluster(world.store, kept).requested_id is None
    assert clusters.show_cluster(world.store, 999) is None


def test_a_member_that_matched_another_says_with_what(world):
    cid = _event(world, ("Wire", "Quake hits the coast", timedelta(hours=2)),
                 ("Daily", "Coast shaken by quake", timedelta(hours=1)))
    first, second = (m.entry.id for m in clusters.show_cluster(world.store, cid).members)
    with world.store.write():
        world.store.db.execute("UPDATE memberships SET matched_entry_id = ?, score = 0.8123,"
                               " shared_terms = ?, time_gap_seconds = 3600 WHERE entry_id = ?",
                               [first, '["quak", "coast"]', second])
    started, joined = clusters.show_cluster(world.store, cid).members
    assert started.why is None  # the first report
    assert (joined.why.matched_entry_id, joined.why.matched_title, joined.why.score, joined.why.shared_terms,
            joined.why.time_gap_hours) == (first, "Quake hits the coast", 0.8123, ("quak", "coast"), 1.0)


def test_timeline_is_per_hour_and_per_day_for_long_events():
    """README: a per-hour (per-day for long events) timeline of reports and new outlets."""
    start = NOW.replace(minute=0)
    hourly = clusters.timeline([start + timedelta(minutes=m) for m in (5, 20, 70)], ["Wire", "Daily", "Wire"])
    assert [(p.period, p.reports, p.new_outlets) for p in hourly] == [
        ("2016-11-17 12:00", 2, ("Wire", "Daily")), ("2016-11-17 13:00", 1, ())]
    daily = clusters.timeline([start, start + timedelta(days=9), start + timedelta(hours=1)], ["A", "B", "A"])
    assert [(p.period, p.reports, p.new_outlets) for p in daily] == [
        ("2016-11-17", 2, ("A",)), ("2016-11-26", 1, ("B",))]
    assert clusters.timeline([], []) == []


def test_a_search_hit_names_its_cluster_once_it_has_one(world):
    cid = _event(world, ("Wire", "Quake hits the coast", timedelta(hours=2)))
    world.entry("Daily", "Aftershocks felt inland", "A second quake shook farms.")  # not clustered yet
    hits = {h.entry.title: h for h in clusters.search(world.store, "quake")}
    headline = clusters.show_cluster(world.store, cid).cluster.title
    assert hits["Quake hits the coast"].cluster == ClusterHeadline(id=cid, title=headline)
    assert hits["Aftershocks felt inland"].cluster is None
    assert "[quake]" in hits["Aftershocks felt inland"].snippet


def test_counts_leave_out_merged_clusters_and_old_activity(world):
    kept = _event(world, ("Wire", "Quake hits the coast", timedelta(hours=2)))
    gone = _event(world, ("Daily", "Coast shaken by quake", timedelta(hours=1)))
    world.merge(gone, kept)
    world.cluster(world.entry("Wire", "Old story"), activity=NOW - timedelta(days=3))
    counts = clusters.cluster_counts(world.store, NOW - timedelta(hours=24))
    assert (counts.total, counts.active_24h) == (2, 1)


def test_the_assignments_mark_moves_when_another_process_clusters(world, tmp_path):
    """Monitor rebuilds its in-memory clusterer when this mark differs from the one it kept."""
    cid = _event(world, ("Wire", "Quake hits the coast", timedelta(hours=2)))
    before = clusters.assignments_mark(world.store)
    other = World(tmp_path / "m.db")  # another connection, as another process would have
    other.feeds = dict(world.feeds)
    try:
        joined = other.entry("Daily", "Coast shaken by quake")
        assert clusters.assignments_mark(world.store) == before  # a new entry is not an assignment
        other.join(cid, joined)
        after_join = clusters.assignments_mark(world.store)
        assert after_join != before
        other.cluster(other.entry("Daily", "Another story"))
        after_new = clusters.assignments_mark(world.store)
        assert after_new != after_join
        with other.store.write():
            other.store.db.execute("INSERT INTO cluster_merges (absorbed_id, into_id, merged)"
                                   " VALUES (?, ?, ?)", [cid + 1, cid, iso(NOW)])
        assert clusters.assignments_mark(world.store) != after_new
    finally:
        other.store.close()
