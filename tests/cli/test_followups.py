"""Follow-ups end to end: loopback feeds -> `monitor poll` -> `clusters show/list`, `recluster`.

README: a report published past `clustering.window` (or with nothing in it close enough)
joins the incident with which it shares specific names (a person's full name, a place)
within `clustering.follow_up_window`; `clusters show` marks it "follow-up, N days after the
previous report" with the shared names, and the cluster's last activity moves. The town,
people and outlets below are made up; the incident is reported, then the suspect charged
six weeks later, then a trial that names a second incident.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import defaultdict
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest

from monitor.events import clusterer as clusterer_module
from monitor.events.weighing import Weigher
from monitor.storage import clusters as stored
from monitor.storage.connection import iso
from monitor.storage.database import open_store
from monitor.storage.migrations import KNOWN
from tests.conftest import Cli
from tests.support.loopback import LoopbackServer, feed_route, rss
from tests.support.reliability import monitor

T0 = datetime(2025, 3, 2, 22, 40, tzinfo=UTC)


class Story(NamedTuple):
    guid: str
    outlet: str
    title: str
    published: datetime
    text: str


# The incident: two outlets the same night and the next morning.
SHOT = Story(
    "kettle-1", "Valley Courier", "Woman killed in shooting outside Alder Creek bar", T0,
    "Marisol Quintero, 34, was shot dead late last night outside the Copper Kettle on Ferris Avenue in "
    "Alder Creek, police said. Officers called to the parking lot found her with several gunshot wounds "
    "and she died at the scene. Witnesses told officers that a man in a grey jacket argued with her near "
    "the door and drove away in a dark pickup. No arrest has been made, and detectives asked anyone with "
    "camera footage to come forward.")
NAMED = Story(
    "kettle-2", "Ridge Gazette", "Police name nurse killed outside Copper Kettle", T0 + timedelta(hours=14),
    "Police in Alder Creek have identified the woman killed outside the Copper Kettle bar as Marisol "
    "Quintero, a 34-year-old nurse at the county hospital. Colleagues described her as generous and "
    "tireless. Investigators are searching for the driver of a dark pickup seen leaving Ferris Avenue "
    "moments after the shots were fired, and a vigil is planned in the town square.")
# Another shooting the same day, in other words with no name in common: it stays apart.
HARLOW = Story(
    "harlow-1", "Harlow Herald", "Man wounded in gas station shooting", T0 + timedelta(hours=20),
    "A 41-year-old man was shot and wounded at a gas station on Route 9 in Harlow, police said. He was "
    "taken to a hospital in stable condition. Officers believe the shooting followed a dispute over a "
    "parked car, and a suspect fled on foot toward the rail yard. Police asked witnesses to call the tip "
    "line.")
# Unrelated local news of the following weeks.
QUIET_WEEKS = [
    Story("bikes", "Pinehurst Post", "Council approves bike lanes", T0 + timedelta(days=15),
          "The Pinehurst council voted to paint protected bike lanes along Orchard Street. Mayor Lydia "
          "Fenwick said the lanes would be finished before the school year, and shop owners asked for "
          "loading zones."),
    Story("festival", "Ridge Gazette", "Harvest festival draws record crowds", T0 + timedelta(days=17),
          "Thousands filled Maple Hollow for the harvest festival, where organiser Gideon Ashby counted "
          "more pie entries than ever. A brass band played until dusk and the hay maze stayed open late."),
    Story("bridge", "Valley Courier", "Bridge closed for repairs", T0 + timedelta(days=19),
          "Engineers closed the old bridge over the Caldera River after finding rusted bearings. Nadia "
          "Oyelaran, the county engineer, expects the detour through the quarry road to last two months."),
    Story("robots", "Pinehurst Post", "Robotics team heads to nationals", T0 + timedelta(days=21),
          "Students from Westbrook High built a robot that sorts recycling and won the regional contest. "
          "Coach Priya Santangelo said the team is raising money for the trip with a car wash."),
    Story("water", "Harlow Herald", "Water main break floods downtown", T0 + timedelta(days=23),
          "A burst water main sent a torrent down Juniper Lane, flooding basements and a cinema. Utility "
          "director Colm Fairweather said crews replaced a cracked pipe laid a century ago."),
    Story("bakery", "Ridge Gazette", "Bakery opens in old firehouse", T0 + timedelta(days=25),
          "Rosalind Achterberg turned the old firehouse on Station Square into a bakery with a wood oven."
          " Her rye loaves sold out within an hour of opening, and a queue formed again at dawn."),
]
LIBRARY = Story(
    "library", "Pinehurst Post", "Library reopens after flood repairs", T0 + timedelta(days=39),
    "The Pinehurst public library reopened its doors after eight months of repairs to the flooded "
    "basement. Head librarian Elena Marchetti said the children's room had been rebuilt with donations "
    "from local businesses, and the reading garden will open in the summer.")
# Six weeks on: the suspect is charged. It names the victim, the bar and the town: the evidence.
CHARGED = Story(
    "kettle-charged", "Valley Courier", "Man charged with murder in Alder Creek bar killing",
    T0 + timedelta(days=41, hours=3),
    "Prosecutors have charged Dario Veltman, 29, with second-degree murder in the death of Marisol "
    "Quintero, who was shot outside the Copper Kettle in Alder Creek. Veltman was arrested at a "
    "relative's home two counties away after a month-long search, according to court records. He is being"
    " held without bail and is due in court next week. Quintero's family said they were relieved.")
FOLLOW_UP_DAYS = (CHARGED.published - NAMED.published).days  # 40 whole days after the incident's last report

# A second incident, and a trial months later that covers both.
MARINA = [
    Story("marina-1", "Harlow Herald", "Fisherman shot at marina", T0 + timedelta(days=5),
          "Owen Castellano, a 52-year-old fisherman, was shot in the leg at Birchwood Marina in Harlow "
          "after an argument over a mooring, police said. He drove himself to the hospital and is "
          "expected to recover."),
    Story("marina-2", "Ridge Gazette", "Marina shooting victim recovering", T0 + timedelta(days=5, hours=9),
          "Owen Castellano, shot at Birchwood Marina, is recovering in hospital. Harbour staff said the "
          "gunman had been asked to move his boat from a private berth shortly before the shots."),
]
TRIAL = Story(
    "trial", "Valley Courier", "Trial opens in two shootings", T0 + timedelta(days=70),
    "The trial of Dario Veltman opened in the county court. Prosecutors say he killed Marisol Quintero "
    "outside the Copper Kettle in Alder Creek and, days later, wounded Owen Castellano at Birchwood "
    "Marina. Jurors heard from detectives who traced a dark pickup between the two scenes.")


class Newsroom:
    """One loopback feed per outlet. `publish` adds stories to their outlet's feed (the feed keeps
    its earlier items, as publishers' feeds do) and adds the feed the first time; `poll` runs
    `monitor poll --all`."""

    def __init__(self, run: Cli, config: str = "") -> None:
        self.run = run
        self.server = LoopbackServer()
        self.items: dict[str, list[dict]] = defaultdict(list)
        run.config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{self.server.port}"]\n'
                              f"parse_workers = 1\n{config}")

    def publish(self, *stories: Story) -> None:
        for s in stories:
            path = "/" + re.sub(r"\W+", "-", s.outlet.lower()) + ".xml"
            first = s.outlet not in self.items
            self.items[s.outlet].append({"guid": s.guid, "title": s.title, "published": s.published,
                                         "summary": s.text, "link": f"https://news.example/{s.guid}"})
            self.server.routes[path] = feed_route(rss(self.items[s.outlet], title=s.outlet))
            if first:
                self.run("feeds", "add", self.server.url(path), "--title", s.outlet)

    def poll(self, process: bool = False) -> None:
        """`monitor poll --all`, in this process (a fresh Monitor each time) or in a process of its own."""
        if process:
            monitor(self.run.db, self.run.config, "poll", "--all")
        else:
            self.run("poll", "--all")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def newsroom(run):
    news = Newsroom(run)
    yield news
    news.close()


def clusters_of(run: Cli) -> dict[int, set[str]]:
    """Every cluster's id with the guids of its reports (`--since all --min-size 1`: every entry once)."""
    return {c["id"]: {e["guid"] for e in c["entries"]}
            for c in run.json("clusters", "list", "--since", "all", "--min-size", "1")}


def cluster_with(run: Cli, guid: str) -> int:
    return next(cid for cid, guids in clusters_of(run).items() if guid in guids)


def members(run: Cli, cluster_id: int) -> dict[str, dict]:
    """guid -> the entry of `clusters show ID --json`, with its `why`."""
    return {e["guid"]: e for e in run.json("clusters", "show", str(cluster_id))["entries"]}


def after_this_second(stamp: str) -> None:
    """Wait until the clock has passed `stamp` (activity is stored to the second), so the next poll's
    activity sorts after it rather than tying with it."""
    deadline = time.monotonic() + 30
    while iso(datetime.now(UTC)) <= stamp:
        assert time.monotonic() < deadline, "the clock did not move past " + stamp
        time.sleep(0.05)


def test_a_report_weeks_later_joins_its_incident_and_brings_it_back_to_the_top(newsroom, run):
    """The charge, 40 days after the incident's last report, shares the victim's full name, the bar and
    the town with it: it joins the incident (not the other shooting of that night), `clusters show`
    says so with the shared names, and `clusters list` puts the incident first again."""
    newsroom.publish(SHOT, NAMED, HARLOW)
    newsroom.poll()
    incident = cluster_with(run, SHOT.guid)
    harlow = cluster_with(run, HARLOW.guid)
    assert clusters_of(run) == {incident: {SHOT.guid, NAMED.guid}, harlow: {HARLOW.guid}}

    after_this_second(run.json("clusters", "list")[0]["last_activity"])
    newsroom.publish(LIBRARY)
    newsroom.poll()
    listed = run.json("clusters", "list")
    assert listed[0]["entries"][0]["guid"] == LIBRARY.guid  # newest activity first
    assert [c["id"] for c in listed].index(incident) > 0

    after_this_second(listed[0]["last_activity"])
    newsroom.publish(CHARGED)
    newsroom.poll()
    listed = run.json("clusters", "list")
    top, library = listed[0], next(c for c in listed if c["entries"][0]["guid"] == LIBRARY.guid)
    assert top["id"] == incident and top["size"] == 3  # the incident is back at the top, grown by one
    assert top["last_activity"] > library["last_activity"]
    assert {e["guid"] for e in top["entries"]} == {SHOT.guid, NAMED.guid, CHARGED.guid}
    assert clusters_of(run)[harlow] == {HARLOW.guid}  # the other shooting stays apart

    shown = members(run, incident)
    assert shown[NAMED.guid]["why"]["reason"] == "similar"
    why = shown[CHARGED.guid]["why"]
    assert list(why) == ["reason", "score", "matched_entry_id", "matched_title", "shared_terms",
                         "time_gap_hours", "also_matched"]  # as the README shows them
    assert why["reason"] == "follow-up" and why["also_matched"] == []
    assert {"Marisol Quintero", "Alder Creek"} <= set(why["shared_terms"])  # a full name and a place
    assert why["matched_entry_id"] in {shown[SHOT.guid]["id"], shown[NAMED.guid]["id"]}
    text = run("clusters", "show", str(incident)).stdout
    line = next(x for x in text.splitlines() if "follow-up" in x)
    assert f"follow-up, {FOLLOW_UP_DAYS} days after the previous report; shared names: " in line
    assert "Marisol Quintero" in line and "Alder Creek" in line
    assert text.count("follow-up") == 1  # the same-night report is not one


def test_a_late_report_older_than_its_incident_counts_no_days_from_nothing(newsroom, run):
    """The charge is polled first; the night's report, from a feed added later, joins it on the
    names. It is the cluster's earliest report, so no "N days after the previous report"."""
    newsroom.publish(CHARGED)
    newsroom.poll()
    newsroom.publish(SHOT)
    newsroom.poll()
    incident = cluster_with(run, CHARGED.guid)
    assert clusters_of(run)[incident] == {CHARGED.guid, SHOT.guid}
    assert members(run, incident)[SHOT.guid]["why"]["reason"] == "follow-up"
    text = run("clusters", "show", str(incident)).stdout
    assert "follow-up, published before the reports it names; shared names: " in text
    assert "days after" not in text and "day after" not in text


def test_a_follow_up_naming_two_incidents_joins_one_and_names_the_other(newsroom, run):
    """A trial covering two shootings joins the incident it shares most names with, and its explanation
    names the other cluster, also after `recluster` (the id it names is the one that cluster keeps)."""
    newsroom.publish(SHOT, NAMED, *MARINA)
    newsroom.poll()
    newsroom.publish(CHARGED)
    newsroom.poll()
    newsroom.publish(TRIAL)
    newsroom.poll()
    incident, marina = cluster_with(run, SHOT.guid), cluster_with(run, "marina-1")
    assert incident != marina
    for rebuilt in (False, True):
        if rebuilt:
            run("recluster")
        assert clusters_of(run) == {incident: {SHOT.guid, NAMED.guid, CHARGED.guid, TRIAL.guid},
                                    marina: {"marina-1", "marina-2"}}, f"rebuilt: {rebuilt}"
        why = members(run, incident)[TRIAL.guid]["why"]
        assert why["reason"] == "follow-up" and why["also_matched"] == [marina], f"rebuilt: {rebuilt}"
        assert {"Marisol Quintero", "Dario Veltman"} <= set(why["shared_terms"])
        assert f"also named cluster {marina}" in run("clusters", "show", str(incident)).stdout
        assert set(members(run, marina)) == {"marina-1", "marina-2"}


class SmallSampleWeigher(Weigher):
    """Word statistics over at least 3 entries instead of thousands: a store of a few dozen entries
    then behaves as a busy one, whose restarts re-read only the last weeks (Clusterer.warm_entries)."""

    def __init__(self, window: float) -> None:
        super().__init__(window, min_entries=3)


@pytest.mark.parametrize("store", ["quiet", "busy"])
def test_recluster_gives_the_clusters_that_the_polls_gave(newsroom, run, monkeypatch, store):
    """Three polls, each a fresh Monitor that rebuilds its clusterer from the store, then `recluster`
    from scratch: the same clusters under the same ids, with the follow-up in its incident.

    quiet (each poll a `monitor` process): a restart re-reads every stored report. busy: it re-reads
    only the weeks before the new entries, which leaves the incident out; the follow-up finds it
    through the names stored with each membership (schema 10)."""
    if store == "busy":
        monkeypatch.setattr(clusterer_module, "Weigher", SmallSampleWeigher)
    newsroom.publish(SHOT, NAMED, HARLOW)
    newsroom.poll(process=store == "quiet")
    newsroom.publish(*QUIET_WEEKS)
    newsroom.poll(process=store == "quiet")
    with open_store(str(run.db)) as db:
        start = stored.warm_start(db, LIBRARY.published, clusterer_module.Clusterer())
    if store == "busy":  # what makes this case: the restart before the last poll re-reads no incident report
        assert start is not None and start > NAMED.published
    else:
        assert start is None
    newsroom.publish(LIBRARY, CHARGED)
    newsroom.poll(process=store == "quiet")
    polled = clusters_of(run)
    assert polled[cluster_with(run, SHOT.guid)] == {SHOT.guid, NAMED.guid, CHARGED.guid}
    assert len(polled) == 3 + len(QUIET_WEEKS)  # the incident, the other shooting, the library, the rest
    run("recluster")
    assert clusters_of(run) == polled
    assert members(run, cluster_with(run, SHOT.guid))[CHARGED.guid]["why"]["reason"] == "follow-up"


def test_a_short_follow_up_window_keeps_a_later_report_apart(run):
    """`clustering.follow_up_window = "7d"`: the report six weeks later starts a cluster of its own;
    the default (a year) takes it into the incident (the first test)."""
    news = Newsroom(run, '[clustering]\nfollow_up_window = "7d"\n')
    try:
        news.publish(SHOT, NAMED)
        news.poll()
        news.publish(CHARGED)
        news.poll()
    finally:
        news.close()
    assert sorted(clusters_of(run).values(), key=len) == [{CHARGED.guid}, {SHOT.guid, NAMED.guid}]
    alone = run.json("clusters", "show", str(cluster_with(run, CHARGED.guid)))
    assert [e["why"]["reason"] for e in alone["entries"]] == ["first report"]

    run.config.write_text(run.config.read_text().replace('"7d"', '"a year"'))
    bad = run("poll", ok=False)
    assert bad.exit_code == 78 and "clustering.follow_up_window: bad duration 'a year'" in bad.stderr


def back_to_version_9(db: Path) -> None:
    """The database as version 9 of the schema left it: memberships without the columns of
    m010_follow_ups (reason, name_keys, also), without what m011_digest_summary made (a view and an
    index), without the digests' channel column of m013_chat_deliveries, and none of the later
    migrations applied (m012_fts_words rebuilds the full-text index, which any index can go through)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        for column in ("reason", "name_keys", "also"):
            conn.execute(f"ALTER TABLE memberships DROP COLUMN {column}")
        conn.execute("DROP VIEW digest_summary")
        conn.execute("DROP INDEX topic_matches_cluster")
        conn.execute("DROP INDEX digests_topic_channel")
        conn.execute("ALTER TABLE digests DROP COLUMN channel")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name IN"
                     " ('m010_follow_ups', 'm011_digest_summary', 'm012_fts_words', 'm013_chat_deliveries')")
        conn.execute("PRAGMA user_version = 0")  # that release did not stamp its files
        conn.execute("PRAGMA application_id = 0")
        conn.execute("COMMIT")


def test_a_version_9_database_is_upgraded_and_its_incidents_take_follow_ups(newsroom, run):
    """Schema 10 adds to memberships how each entry joined and its names. Rows written before have
    none: they read as "similar" (or "first report"), with no names stored, and a report six
    weeks later still finds its incident among them."""
    newsroom.publish(SHOT, NAMED, HARLOW)
    newsroom.poll()
    incident = cluster_with(run, SHOT.guid)
    back_to_version_9(run.db)
    with closing(sqlite3.connect(run.db)) as conn:
        assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == 9
        old_rows = conn.execute("SELECT entry_id, cluster_id, matched_entry_id, score FROM memberships"
                                " ORDER BY entry_id").fetchall()

    newsroom.publish(CHARGED)
    newsroom.poll()  # a writer: upgrades the schema first
    assert run.json("status")["database"]["schema_version"] == len(KNOWN)
    with closing(sqlite3.connect(run.db)) as conn:
        applied = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
        rows = conn.execute("SELECT entry_id, cluster_id, matched_entry_id, score, reason, name_keys, also"
                            " FROM memberships ORDER BY entry_id").fetchall()
    assert applied == KNOWN and applied[9] == "m010_follow_ups"  # 10 and those after it, in order
    upgraded = [r for r in rows if r[0] in {o[0] for o in old_rows}]
    assert [r[:4] for r in upgraded] == old_rows  # kept as they were
    assert all(r[4:] == (None, "[]", "[]") for r in upgraded)  # written before: no reason, no names

    shown = members(run, incident)
    assert set(shown) == {SHOT.guid, NAMED.guid, CHARGED.guid}
    assert shown[SHOT.guid]["why"] == {"reason": "first report", "score": None}
    assert shown[NAMED.guid]["why"]["reason"] == "similar" and shown[NAMED.guid]["why"]["also_matched"] == []
    assert shown[CHARGED.guid]["why"]["reason"] == "follow-up"
    new = next(r for r in rows if r[0] == shown[CHARGED.guid]["id"])
    assert new[4] == "follow-up" and "marisol quintero" in json.loads(new[5])
    assert "joined: score" in run("clusters", "show", str(incident)).stdout  # NAMED, as before
