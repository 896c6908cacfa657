"""The outbox tables on their own: storing a digest, the queue order, claims, and what a digest reads."""
from __future__ import annotations

import json
from datetime import timedelta


from monitor.storage import outbox as outbox_db
from monitor.storage.database import iso
from tests.support.world import NOW, World

LEASE = timedelta(minutes=10)


def put(world: World, topic: str = "t", *, created=NOW, recipients=("a@example.org",),
        items: tuple[outbox_db.ItemRow, ...] = ()) -> int:
    world.n += 1
    with world.store.write():
        return outbox_db.insert_digest(world.store, topic=topic, message_id=f"<{world.n}@example.org>",
                                       subject=f"{topic} digest", recipients=recipients,
                                       message=b"Subject: x\r\n\r\nbody", created=created,
                                       sender="monitor@example.org", items=items)


def test_a_stored_digest_is_pending_with_one_recipient_row_per_address(world):
    a = world.cluster(world.entry("Trend", "Telegram blocked"))
    b = world.cluster(world.entry("Gulf Ledger", "Telegram fined"))
    items = (outbox_db.ItemRow(a, "new", ["Trend", "Tehran Times"], True),
             outbox_db.ItemRow(b, "updated", ["Gulf Ledger"], False))
    did = put(world, recipients=("b@example.org", "a@example.org", "b@example.org"), items=items)
    row = world.store.query("SELECT * FROM digests WHERE id = ?", [did])[0]
    assert (row["status"], row["attempts"], row["next_attempt"], row["sent"]) == ("pending", 0, None, None)
    assert json.loads(row["recipients"]) == ["b@example.org", "a@example.org", "b@example.org"]  # as given
    assert outbox_db.pending_recipients(world.store, did) == ["a@example.org", "b@example.org"]  # once each
    assert world.store.db.execute("SELECT cluster_id, kind, outlets, outlet_names, listed FROM digest_items"
                                  " WHERE digest_id = ? ORDER BY rowid", [did]).fetchall() == [
        (a, "new", 2, '["Trend", "Tehran Times"]', 1), (b, "updated", 1, '["Gulf Ledger"]', 0)]
    assert outbox_db.digest_message(world.store, did) == b"Subject: x\r\n\r\nbody"  # byte for byte


def test_pending_digests_are_oldest_first_and_can_be_limited_to_a_topic(world):
    late = put(world, "a", created=NOW + timedelta(minutes=5))
    early = put(world, "b", created=NOW)
    also_early = put(world, "a", created=NOW)
    assert [d.id for d in outbox_db.pending_digests(world.store)] == [early, also_early, late]
    [first, second] = outbox_db.pending_digests(world.store, "a")
    assert (first.id, first.created, first.next_attempt, first.sent) == (also_early, NOW, None, None)
    assert second.id == late


def test_a_claim_keeps_other_senders_off_until_it_runs_out(world):
    did = put(world)
    with world.store.write():
        assert outbox_db.claim_digest(world.store, did, NOW, NOW + LEASE) is True
    with world.store.write():  # another sender, a minute later
        assert outbox_db.claim_digest(world.store, did, NOW + timedelta(minutes=1), NOW + LEASE) is False
    with world.store.write():  # the lease has run out: the digest is due again
        assert outbox_db.claim_digest(world.store, did, NOW + LEASE, NOW + 2 * LEASE) is True
    with world.store.write():
        outbox_db.finish_digest(world.store, did, "sent", None)
    later = NOW + timedelta(days=1)
    with world.store.write():  # a finished digest is never claimed
        assert outbox_db.claim_digest(world.store, did, later, later + LEASE) is False


def test_recent_headlines_drop_old_clusters_and_keep_those_without_a_publication_time(world):
    old, new, unknown = (world.cluster(world.entry("Trend", t), headline=t) for t in ("Old", "New", "Odd"))
    with world.store.write():
        for cid, when in ((old, NOW - timedelta(days=10)), (new, NOW - timedelta(hours=1))):
            world.store.db.execute("UPDATE clusters SET last_published = ? WHERE id = ?", [iso(when), cid])
        world.store.db.execute("UPDATE clusters SET last_published = NULL WHERE id = ?", [unknown])
    ids = [old, new, unknown]
    assert outbox_db.recent_headlines(world.store, ids, NOW - timedelta(days=3)) == {new: "New",
                                                                                     unknown: "Odd"}
    assert outbox_db.recent_headlines(world.store, ids, None) == {old: "Old", new: "New", unknown: "Odd"}


def test_the_outbox_listing_filters_by_status_limits_and_names_each_recipients_state(world):
    sent = put(world, "a", created=NOW, recipients=("a@example.org", "b@example.org"))
    first = put(world, "b", created=NOW + timedelta(minutes=1))
    put(world, "c", created=NOW + timedelta(minutes=2))
    with world.store.write():
        outbox_db.set_recipient_status(world.store, sent, "a@example.org", "accepted", None)
        outbox_db.set_recipient_status(world.store, sent, "b@example.org", "refused", "550 no such user")
        outbox_db.finish_digest(world.store, sent, "sent", "refused: b@example.org: 550 no such user")
    [entry] = outbox_db.list_outbox(world.store, ("sent",), 10)
    assert (entry.id, entry.status, entry.attempts) == (sent, "sent", 1)
    assert entry.recipients == {"a@example.org": "accepted", "b@example.org": "refused"}
    assert [e.id for e in outbox_db.list_outbox(world.store, ("pending", "failed"), 1)] == [first]


def test_what_a_digest_reads_about_follow_ups(world):
    """Each report says how and when it joined, each carried cluster when its digest was made, and
    each cluster when its latest follow-up joined (the other members do not count)."""
    first = world.entry("Valley News 8", "Man shot dead outside Copper Kettle bar", published=NOW)
    cid = world.cluster(first, headline="Man shot dead outside Copper Kettle bar")
    alone = world.cluster(world.entry("Valley News 8", "Road repairs approved", published=NOW))
    charged = world.entry("Valley News 8", "Dorian Kessler charged", published=NOW + timedelta(days=35))
    trial = world.entry("Valley News 8", "Dorian Kessler trial opens", published=NOW + timedelta(days=261))
    late = world.entry("Continental Wire", "Alderbrook shooting: a look back",
                       published=NOW + timedelta(days=262))
    world.join(cid, charged, trial, late)
    joined = {first: NOW, charged: NOW + timedelta(days=35), trial: NOW + timedelta(days=261, hours=1),
              late: NOW + timedelta(days=300)}
    with world.store.write():
        reasons = {first: "new", charged: "follow-up", trial: "follow-up", late: "similar"}
        for entry_id, reason in reasons.items():
            world.store.db.execute("UPDATE memberships SET reason = ?, joined = ? WHERE entry_id = ?",
                                   [reason, iso(joined[entry_id]), entry_id])

    rows = outbox_db.cluster_reports(world.store, [cid])[cid]
    assert [(r.title, r.reason, r.joined) for r in rows] == [
        ("Man shot dead outside Copper Kettle bar", "new", NOW),
        ("Dorian Kessler charged", "follow-up", joined[charged]),
        ("Dorian Kessler trial opens", "follow-up", joined[trial]),
        ("Alderbrook shooting: a look back", "similar", joined[late])]
    assert outbox_db.latest_follow_ups(world.store, [cid, alone]) == {cid: joined[trial]}

    for kind, created in (("new", NOW + timedelta(hours=2)), ("updated", NOW + timedelta(days=36))):
        put(world, created=created, items=(outbox_db.ItemRow(cid, kind, ["Valley News 8"], True),))
    assert [(c.cluster_id, c.created) for c in outbox_db.carried_items(world.store, "t")] == [
        (cid, NOW + timedelta(hours=2)), (cid, NOW + timedelta(days=36))]
