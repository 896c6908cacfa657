"""The topic_matches table on its own: a match recorded again accumulates, and each topic's activity."""
from __future__ import annotations

import json
from datetime import timedelta


from monitor.storage import matches as matches_db
from monitor.storage import outbox as outbox_db
from tests.support.world import NOW, World


def record(world: World, topic: str, cid: int, entry_ids, terms, when, max_terms=None) -> None:
    with world.store.write():
        matches_db.record_match(world.store, topic, cid, entry_ids, terms, when, max_terms)


def test_a_match_recorded_again_accumulates_entries_and_terms_up_to_the_cap(world):
    cid = world.cluster(world.entry("Trend", "Telegram blocked"))
    record(world, "t", cid, (5, 3), ("telegram", "ban"), NOW, max_terms=3)
    record(world, "t", cid, (4, 3), ("ban", "fine", "court", "appeal"), NOW + timedelta(hours=1), max_terms=3)
    row = world.store.query("SELECT * FROM topic_matches")[0]
    assert json.loads(row["entry_ids"]) == [3, 4, 5]
    assert json.loads(row["terms"]) == ["telegram", "ban", "fine"]  # first seen first, cut at the cap
    assert matches_db.matched_terms(world.store, "t") == [(cid, ["telegram", "ban", "fine"])]
    assert matches_db.matched_terms(world.store, "other") == []


def test_topic_activity_counts_matches_and_digests_per_topic(world):
    a = world.cluster(world.entry("Trend", "Telegram blocked"))
    b = world.cluster(world.entry("Trend", "Telegram fined"))
    record(world, "matched", a, (1,), ("telegram",), NOW)
    record(world, "matched", b, (2,), ("telegram",), NOW + timedelta(hours=1))
    with world.store.write():
        for n, created in enumerate((NOW, NOW + timedelta(hours=2))):
            outbox_db.insert_digest(world.store, topic="mailed", message_id=f"<{n}@example.org>", subject="s",
                                    recipients=("a@example.org",), message=b"m", created=created,
                                    sender="monitor@example.org", items=())
    activity = matches_db.topic_activity(world.store)
    assert activity["matched"] == matches_db.TopicActivity(matches=2, last_matched=NOW + timedelta(hours=1),
                                                           last_digest=None, pending=0)
    assert activity["mailed"] == matches_db.TopicActivity(matches=0, last_matched=None,
                                                          last_digest=NOW + timedelta(hours=2), pending=2)
    assert set(activity) == {"matched", "mailed"}


def test_cluster_outlines_name_outlets_once_in_order_and_leave_unknown_clusters_empty(world):
    cid = world.cluster(world.entry("Trend", "a", published=NOW - timedelta(hours=2)),
                        world.entry("Tehran Times", "b", published=NOW - timedelta(hours=1)),
                        world.entry("Trend", "c", published=NOW), headline="Telegram blocked")
    outlines = matches_db.cluster_outlines(world.store, [cid, cid + 100])
    assert outlines[cid].outlets == ("Trend", "Tehran Times") and len(outlines[cid].members) == 3
    assert (outlines[cid].headline, outlines[cid].last_activity) == ("Telegram blocked", NOW)
    assert outlines[cid + 100] == matches_db.ClusterOutline((), (), "", None)
