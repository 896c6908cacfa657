"""Reading clusters back: records for listings, `clusters show`, search and `status`, from a real store."""
from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from monitor.events.clusterer import Clusterer
from monitor.storage import clusters
from monitor.storage.database import iso
from monitor.types import ClusterDoc, ClusterHeadline
from tests.support.world import NOW, World


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
            joined.why.time_gap_hours) == (first, "Quake hits the coast", 0.8123, ("quake", "coast"), 1.0)


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


def test_the_assignments_mark_moves_when_another_process_clusters(world):
    """Monitor rebuilds its in-memory clusterer when this mark differs from the one it kept."""
    cid = _event(world, ("Wire", "Quake hits the coast", timedelta(hours=2)))
    before = clusters.assignments_mark(world.store)
    other = World(world.store.path)  # another connection to its file, as another process would have
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


def _stored_why(world: World, entry_id: int, **columns: object) -> None:
    """Set membership columns as the clusterer's decision would have written them."""
    with world.store.write():
        for column, value in columns.items():
            world.store.db.execute(f"UPDATE memberships SET {column} = ? WHERE entry_id = ?",
                                   [value, entry_id])


def test_a_member_says_how_it_joined_and_which_other_clusters_a_follow_up_named(world):
    """README: `reason` is similar, syndicated or follow-up; rows written before schema 10 (NULL)
    read as similar; `also_matched` lists the other clusters a follow-up named."""
    cid = _event(world, ("Wire", "Quake hits the coast", timedelta(days=60)),
                 ("Daily", "Quake hits the coast", timedelta(days=60)),
                 ("Post", "Coast shaken by quake", timedelta(days=59)),
                 ("Wire", "Quake survivor sues builder", timedelta(days=1)))
    first, copy, rewrite, later = (m.entry.id for m in clusters.show_cluster(world.store, cid).members)
    _stored_why(world, copy, matched_entry_id=first, score=1.0, reason="syndicated")
    _stored_why(world, rewrite, matched_entry_id=first, score=0.4)  # reason NULL: before schema 10
    _stored_why(world, later, matched_entry_id=rewrite, score=0.0, reason="follow-up", also="[7, 9]",
                shared_terms='["ada quill", "port ellery"]')
    whys = [m.why for m in clusters.show_cluster(world.store, cid).members]
    assert whys[0] is None
    assert [(w.reason, w.also_matched) for w in whys[1:]] == [("syndicated", ()), ("similar", ()),
                                                             ("follow-up", (7, 9))]
    assert whys[3].shared_terms == ("ada quill", "port ellery")
    assert whys[3].matched_title == "Coast shaken by quake"


def test_the_other_clusters_a_follow_up_named_are_shown_under_their_ids_now(world):
    """A cluster the follow-up also named that was merged since shows as the one it went into, and
    not at all when that is the follow-up's own cluster."""
    cid = _event(world, ("Wire", "Ferry sinks", timedelta(days=90)),
                 ("Post", "Ferry owner on trial", timedelta(0)))
    went_elsewhere = _event(world, ("Daily", "Captain rescued", timedelta(days=89)))
    survivor = _event(world, ("Gazette", "Captain Quill rescued", timedelta(days=89)))
    went_here = _event(world, ("Herald", "Port Ellery mourns", timedelta(days=88)))
    first, trial = (m.entry.id for m in clusters.show_cluster(world.store, cid).members)
    _stored_why(world, trial, matched_entry_id=first, score=0.0, reason="follow-up",
                also=json.dumps([went_elsewhere, went_here]))

    def also_matched() -> tuple[int, ...]:
        shown = clusters.show_cluster(world.store, cid).members
        return next(m.why.also_matched for m in shown if m.entry.id == trial)

    assert also_matched() == (went_elsewhere, went_here)
    world.merge(went_elsewhere, survivor)
    world.merge(went_here, cid)
    assert also_matched() == (survivor,)


def _names(title: str, text: str) -> list[str]:
    """The name pairs the clusterer reads in a report (what a membership row stores in name_keys)."""
    return list(Clusterer().assign(ClusterDoc(1, 1, "Wire", title, text, NOW)).name_keys)


def test_a_restart_recalls_older_members_names_under_the_ids_their_clusters_have_now(world):
    """Members older than the history a restart re-reads come back as their stored names only, for
    follow-ups: those published within `follow_up_window` before that history, each under the cluster
    its entries are in now (after merges)."""
    start = NOW - timedelta(days=20)  # where the re-read history begins
    sinking = "The ferry sank off Port Ellery. Captain Ada Quill kept the passengers calm until help came."
    fire = "Fire destroyed the mill in Dunmore Vale. Owner Hattie Brisk said nobody was hurt."
    old = _event(world, ("Wire", "Ferry sinks", timedelta(days=200)))
    merged_away = _event(world, ("Daily", "Captain rescued", timedelta(days=199)))
    survivor = _event(world, ("Post", "Ferry captain rescued", timedelta(days=199)))
    too_old = _event(world, ("Wire", "Mill fire", timedelta(days=400)))
    for cid, title, text in ((old, "Ferry sinks", sinking), (merged_away, "Captain rescued", sinking),
                             (too_old, "Mill fire", fire)):
        entry = clusters.show_cluster(world.store, cid).members[0].entry.id
        keys = _names(title, text)
        assert len(keys) >= 2, keys
        _stored_why(world, entry, name_keys=json.dumps(keys))
    world.merge(merged_away, survivor)
    clusterer = Clusterer()  # the default follow-up window: 365 days
    assert clusters.recall_follow_ups(world.store, clusterer, start) == 2  # the mill fire is too old

    def later(entry_id: int, title: str, text: str) -> ClusterDoc:
        return ClusterDoc(entry_id, 9, "Gazette", title, text, NOW)

    trial = clusterer.assign(later(101, "Ferry owner on trial", "The owner of the ferry that sank off Port"
                                   " Ellery went on trial. Captain Ada Quill said the pumps had failed."))
    assert trial.reason == "follow-up"
    assert {trial.cluster_id, *trial.also} == {old, survivor}  # never the merged-away id
    mill = clusterer.assign(later(102, "Mill rebuilt", "The mill in Dunmore Vale reopened. Owner Hattie"
                                  " Brisk thanked the volunteers who fought the fire."))
    assert mill.is_new


def test_headlines_made_ahead_are_the_ones_refresh_makes_itself(world):
    """Clustering makes what the headlines need of a run's entries on another thread while it decides
    (learn_headlines: the feeds' furniture, each title as shown, each text's start); a cluster refreshed
    with them gets the headline it gets without: the feed's furniture off, a cut word marked."""
    texts = ["A fire closed the harbour road on Monday.", "Crews kept the harbour fire from the docks.",
             "The keeper rescued three stranded kayakers off the point."]
    fire = [world.entry("Harbour Herald", f"{title} | Harbour Herald: News and Sport", text=text,
                        published=NOW - timedelta(hours=h))
            for h, (title, text) in enumerate(zip(["Fire closes harbour road", "Crews hold harbour fire"],
                                                  texts, strict=False))]
    older = [world.entry("Harbour Herald", f"Other story {i} | Harbour Herald: News and Sport",
                         published=NOW - timedelta(days=3 + i)) for i in range(3)]
    rescue = world.entry("Point Press", "Keeper rescues stranded kayake", text=texts[2])
    runs = [world.cluster(*fire), world.cluster(rescue)]
    docs = clusters.docs_of(world.store, [*fire, rescue])
    furniture: dict = {}
    shown: dict = {}
    clusters.learn_headlines(world.store, docs, furniture, shown)
    cut = "Keeper rescues stranded kayake"
    assert shown[rescue] == (cut, texts[2], cut, "Point Press")  # as shown, text's start, title, outlet
    assert shown[fire[0]][0] == "Fire closes harbour road" and set(shown) == {*fire, rescue}
    assert older  # the feed's earlier titles, that teach its furniture

    def headlines(made: dict | None) -> list[str]:
        with world.store.write():
            for cid in runs:
                clusters.refresh(world.store, cid, iso(NOW), {} if made is None else furniture, made)
        return [world.store.db.execute("SELECT headline FROM clusters WHERE id = ?", [cid]).fetchone()[0]
                for cid in runs]

    assert headlines(shown) == headlines(None) == ["Crews hold harbour fire", f"{cut}…"]
    with world.store.write():  # another process stores the title again, whole, after the run read it
        world.store.db.execute("UPDATE entries SET title = ? WHERE id = ?",
                               ["Keeper rescues kayakers", rescue])
    assert headlines(shown) == headlines(None) == ["Crews hold harbour fire", "Keeper rescues kayakers"]


def test_clusters_refreshed_together_are_refreshed_as_one_at_a_time(world):
    """refresh_many reads the members of many clusters in a few queries: each cluster still gets
    its own size, outlets, time span and headline, as refresh gives it alone."""
    runs = []
    for n, outlet_names in enumerate([["Harbour Herald", "Point Press", "Dunmore Daily"], ["Point Press"],
                                      ["Dunmore Daily", "Dunmore Daily"]]):
        members = [world.entry(outlet, f"Story {n} told by {outlet} ({i})", text=f"Text {n} {i}.",
                               published=NOW - timedelta(hours=10 * n + (2, 0, 1)[i]))
                   for i, outlet in enumerate(outlet_names)]
        runs.append(world.cluster(*members))

    def rows() -> list[tuple]:
        return world.store.db.execute("SELECT id, size, outlets, first_published, last_published, headline"
                                      " FROM clusters ORDER BY id").fetchall()

    with world.store.write():
        world.store.db.execute("UPDATE clusters SET size = 0, outlets = 0, headline = ''")
        clusters.refresh_many(world.store, runs, iso(NOW), {})
    together = rows()
    with world.store.write():
        world.store.db.execute("UPDATE clusters SET size = 0, outlets = 0, headline = ''")
        for cid in runs:
            clusters.refresh(world.store, cid, iso(NOW), {})
    assert together == rows()
    assert [(size, outlets) for _, size, outlets, *_ in together] == [(3, 3), (1, 1), (2, 1)]
    assert together[1][5] == "Story 1 told by Point Press (0)"


@given(st.lists(st.text()) | st.lists(st.integers()))
def test_membership_lists_are_written_as_json_writes_them(items):
    assert clusters.json_list(tuple(items)) == json.dumps(items, ensure_ascii=False)
