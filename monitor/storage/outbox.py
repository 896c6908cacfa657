"""The outbox tables: digests, their items and recipients, and each topic's schedule runs.

monitor.digests.outbox decides what to write and when; this module reads and writes the rows.
A digest's row holds the rendered message, so every retry sends the same bytes; its
digest_items are the ledger of what a topic has carried; digest_recipients say, per address,
what the server answered. Functions that write expect the caller's write transaction
(`with store.write():`), whose boundaries are the crash-safety promise.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from monitor.storage.database import Store, chunked, inserted_id, iso, parse_iso, parse_stamp
from monitor.storage.matches import OUTLET_SQL

# -- what a topic's digest is decided from -------------------------------------------------------


class CarriedItem(NamedTuple):
    """A cluster as an earlier digest carried it."""

    cluster_id: int  # as stored: may have been merged away since
    outlets: int  # its outlet count then
    outlet_names: list[str]
    created: datetime  # when that digest was made: members that joined later were not in it


MAIL = "mail"  # digests.channel of e-mail digests; a chat destination's is "chat:" + a hash of its URL


def carried_items(store: Store, topic: str, channel: str = MAIL) -> list[CarriedItem]:
    """Every cluster `topic`'s digests on `channel` have carried, oldest digest first; digests that
    failed for good carried nothing. Each channel (mail, each chat destination) has its own ledger."""
    return [CarriedItem(cid, outlets, json.loads(names or "[]"), parse_stamp(created))
            for cid, outlets, names, created in store.execute(
                "SELECT di.cluster_id, di.outlets, di.outlet_names, d.created FROM digest_items di"
                " JOIN digests d ON d.id = di.digest_id WHERE d.topic = ? AND d.channel = ?"
                " AND d.status != 'failed' ORDER BY d.created, d.id", [topic, channel])]


def outlet_counts(store: Store, cluster_ids: Sequence[int]) -> dict[int, int]:
    """Cluster id -> its distinct outlets now (clusters without members are left out)."""
    counts: dict[int, int] = {}
    for part in chunked(list(cluster_ids)):
        marks = ",".join("?" * len(part))
        counts.update(store.execute(
            f"SELECT m.cluster_id, count(DISTINCT {OUTLET_SQL}) FROM memberships m"
            f" JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id"
            f" WHERE m.cluster_id IN ({marks}) GROUP BY m.cluster_id", list(part)))
    return counts


def latest_follow_ups(store: Store, cluster_ids: Sequence[int]) -> dict[int, datetime]:
    """Cluster id -> when its latest follow-up member joined (clusters without one are left out).

    A follow-up is a member that joined on shared names past the clustering window
    (memberships.reason 'follow-up'); `joined` is the time it was stored, to the second."""
    latest: dict[int, datetime] = {}
    for part in chunked(list(cluster_ids)):
        marks = ",".join("?" * len(part))
        latest.update((cid, parse_stamp(joined)) for cid, joined in store.execute(
            f"SELECT cluster_id, max(joined) FROM memberships WHERE cluster_id IN ({marks})"
            f" AND reason = 'follow-up' GROUP BY cluster_id", list(part)))
    return latest


def recent_headlines(store: Store, cluster_ids: Sequence[int], newer_than: datetime | None) -> dict[int, str]:
    """Cluster id -> headline, for those of `cluster_ids` whose last report is not older than
    `newer_than` (all of them when None; a cluster without a publication time always counts)."""
    floor = iso(newer_than) if newer_than else ""
    heads: dict[int, str] = {}
    for part in chunked(list(cluster_ids)):
        marks = ",".join("?" * len(part))
        heads.update(store.execute(
            f"SELECT id, headline FROM clusters WHERE id IN ({marks}) AND coalesce(last_published, ?) >= ?",
            [*part, floor, floor]))
    return heads


class ReportRow(NamedTuple):
    """One member entry of a cluster, as a digest lists it."""

    outlet: str
    link: str | None
    title: str
    published: datetime
    reason: str | None  # how it joined: new | similar | syndicated | follow-up (None: not recorded)
    joined: datetime  # when it joined the cluster
    feed_id: int = 0  # for the feed's learned title furniture (monitor.storage.clusters.feed_furniture)


def cluster_reports(store: Store, cluster_ids: Sequence[int]) -> dict[int, list[ReportRow]]:
    """Cluster id -> its member entries in published order (ties by id), for those with members."""
    reports: dict[int, list[ReportRow]] = {}
    for part in chunked(list(cluster_ids)):
        marks = ",".join("?" * len(part))
        for cid, outlet, link, title, published, reason, joined, feed_id in store.execute(
                f"SELECT m.cluster_id, {OUTLET_SQL}, e.link, e.title, e.published, m.reason, m.joined,"
                f" e.feed_id"
                f" FROM memberships m JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id"
                f" WHERE m.cluster_id IN ({marks}) ORDER BY e.published, e.id", list(part)):
            reports.setdefault(cid, []).append(ReportRow(outlet, link, title, parse_stamp(published), reason,
                                                         parse_stamp(joined), feed_id))
    return reports


# -- what a digest item's lead is taken from -----------------------------------------------------


class LeadMember(NamedTuple):
    """A member entry of a cluster, as the lead of its digest item is chosen from."""

    entry_id: int
    feed_id: int
    title: str
    matched_entry_id: int | None  # the member it matched best: the most matched member is the most typical
    has_text: bool


def lead_members(store: Store, cluster_ids: Sequence[int]) -> dict[int, list[LeadMember]]:
    """Cluster id -> its members in published order (ties by id), as clusters.refresh reads them."""
    members: dict[int, list[LeadMember]] = {}
    for part in chunked(list(cluster_ids)):
        marks = ",".join("?" * len(part))
        for cid, entry_id, feed_id, title, matched, has_text in store.execute(
                f"SELECT m.cluster_id, e.id, e.feed_id, e.title, m.matched_entry_id, e.text != ''"
                f" FROM memberships m JOIN entries e ON e.id = m.entry_id"
                f" WHERE m.cluster_id IN ({marks}) ORDER BY e.published, e.id", list(part)):
            members.setdefault(cid, []).append(LeadMember(entry_id, feed_id, title, matched, bool(has_text)))
    return members


def entry_texts(store: Store, entry_ids: Sequence[int], chars: int) -> dict[int, str]:
    """Entry id -> the first `chars` characters of its text."""
    texts: dict[int, str] = {}
    for part in chunked(list(entry_ids)):
        marks = ",".join("?" * len(part))
        texts.update(store.execute(f"SELECT id, substr(text, 1, ?) FROM entries WHERE id IN ({marks})",
                                   [chars, *part]))
    return texts


def recent_feed_texts(store: Store, feed_id: int, outside: int, limit: int,
                      chars: int) -> list[tuple[str, str]]:
    """(title, first `chars` characters of text) of the feed's latest `limit` entries with text that
    are not members of cluster `outside`: what the feed repeats around every story.

    Bounded: the ids are read from the (feed_id, entry_key) index alone, then `limit` rows."""
    return [(title, text) for title, text in store.execute(
        "SELECT title, substr(text, 1, ?) FROM entries WHERE id IN ("
        " SELECT id FROM entries WHERE feed_id = ? AND id NOT IN"
        " (SELECT entry_id FROM memberships WHERE cluster_id = ?) ORDER BY id DESC LIMIT ?) AND text != ''",
        [chars, feed_id, outside, limit])]


# -- schedule runs and new digests ---------------------------------------------------------------


def last_runs(store: Store) -> dict[str, datetime]:
    """Topic name -> when its schedule last ran (whether or not that run made a digest)."""
    return {t: parse_stamp(r) for t, r in store.execute("SELECT topic, last_run FROM digest_schedule")}


def record_run(store: Store, topic: str, now: datetime) -> None:
    """Note that `topic`'s schedule ran at `now`."""
    store.execute("INSERT INTO digest_schedule (topic, last_run) VALUES (?, ?) "
                  "ON CONFLICT(topic) DO UPDATE SET last_run = excluded.last_run", [topic, iso(now)])


class ItemRow(NamedTuple):
    """One cluster a new digest carries."""

    cluster_id: int
    kind: str  # new | updated
    outlet_names: list[str]  # its outlets now; their count is what "updated" is measured against
    listed: bool  # shown in the message, or only counted under "more"


def insert_digest(store: Store, *, topic: str, message_id: str, subject: str, recipients: Sequence[str],
                  message: bytes, created: datetime, sender: str, items: Sequence[ItemRow],
                  channel: str = MAIL) -> int:
    """Add a rendered digest to the outbox as pending, with its items and one pending row per
    distinct recipient (for a chat destination: its shown name). Returns its id."""
    digest_id = inserted_id(store.execute(
        "INSERT INTO digests (topic, message_id, subject, recipients, message, created, status, attempts,"
        " sender, channel) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
        [topic, message_id, subject, json.dumps(list(recipients)), message, iso(created), sender, channel]))
    store.conn.executemany(
        "INSERT INTO digest_items (digest_id, cluster_id, kind, outlets, outlet_names, listed)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(digest_id, i.cluster_id, i.kind, len(i.outlet_names), json.dumps(i.outlet_names), int(i.listed))
         for i in items])
    store.conn.executemany(
        "INSERT INTO digest_recipients (digest_id, recipient, status) VALUES (?, ?, 'pending')",
        [(digest_id, r) for r in dict.fromkeys(recipients)])
    return digest_id


# -- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingDigest:
    """A digest waiting in the outbox (its message is read only when it is sent)."""

    id: int
    topic: str
    message_id: str
    created: datetime
    attempts: int
    sender: str | None  # envelope sender; None in digests stored before it was recorded
    next_attempt: datetime | None  # not before then: a retry's backoff, or another sender's lease
    sent: datetime | None  # when a first recipient accepted it
    channel: str = MAIL  # mail, or chat:<hash of the destination URL>


def pending_digests(store: Store, topic: str | None = None) -> list[PendingDigest]:
    """Pending digests (of `topic`, when given): mail first, then chat, each oldest first (a chat
    destination that hangs until its timeout never delays the mail)."""
    where = "status = 'pending'"
    params: list = []
    if topic is not None:
        where += " AND topic = ?"
        params.append(topic)
    rows = store.query(f"SELECT id, topic, message_id, created, attempts, sender, next_attempt, sent, channel"
                       f" FROM digests WHERE {where} ORDER BY channel != '{MAIL}', created, id", params)
    return [PendingDigest(id=r["id"], topic=r["topic"], message_id=r["message_id"],
                          created=parse_stamp(r["created"]), attempts=r["attempts"], sender=r["sender"],
                          next_attempt=parse_iso(r["next_attempt"]), sent=parse_iso(r["sent"]),
                          channel=r["channel"])
            for r in rows]


def claim_digest(store: Store, digest_id: int, now: datetime, until: datetime) -> bool:
    """Take a pending digest that is due at `now` for sending, keeping other senders off it until
    `until`. False when it is not due, or no longer pending."""
    cur = store.execute(
        "UPDATE digests SET next_attempt = ? WHERE id = ? AND status = 'pending' AND "
        "(next_attempt IS NULL OR next_attempt <= ?)", [iso(until), digest_id, iso(now)])
    return cur.rowcount == 1


def digest_message(store: Store, digest_id: int) -> bytes:
    """The stored message, byte for byte as rendered."""
    message: bytes = store.scalar("SELECT message FROM digests WHERE id = ?", [digest_id])
    return message


def pending_recipients(store: Store, digest_id: int) -> list[str]:
    """The digest's recipients that have not received it and were not refused for good, sorted."""
    return [r for (r,) in store.execute(
        "SELECT recipient FROM digest_recipients WHERE digest_id = ? AND status = 'pending'"
        " ORDER BY recipient", [digest_id])]


def set_recipient_status(store: Store, digest_id: int, recipient: str, status: str,
                         error: str | None) -> None:
    """Record what the server said about one recipient: accepted, pending (deferred) or refused."""
    store.execute("UPDATE digest_recipients SET status = ?, error = ?"
                  " WHERE digest_id = ? AND recipient = ?", [status, error, digest_id, recipient])


def refuse_pending_recipients(store: Store, digest_id: int, error: str) -> None:
    """Give up on every recipient still pending; those who accepted keep their status."""
    store.execute("UPDATE digest_recipients SET status = 'refused', error = ? WHERE digest_id = ? AND "
                  "status = 'pending'", [error, digest_id])


def count_recipients(store: Store, digest_id: int, status: str) -> int:
    """How many of the digest's recipients have `status` (pending | accepted | refused)."""
    count: int = store.scalar("SELECT count(*) FROM digest_recipients WHERE digest_id = ? AND status = ?",
                              [digest_id, status])
    return count


def mark_first_delivery(store: Store, digest_id: int, now: datetime) -> None:
    """A recipient accepted the digest: `sent` becomes `now` unless an earlier attempt set it."""
    store.execute("UPDATE digests SET sent = coalesce(sent, ?) WHERE id = ?", [iso(now), digest_id])


def defer_digest(store: Store, digest_id: int, attempts: int, error: str, retry: datetime) -> None:
    """Leave the digest pending after a failed attempt: `attempts` so far, the last error, and
    when to try again."""
    store.execute("UPDATE digests SET attempts = ?, last_error = ?, next_attempt = ? WHERE id = ?",
                  [attempts, error, iso(retry), digest_id])


def finish_digest(store: Store, digest_id: int, status: str, error: str | None) -> None:
    """End the digest's attempts with `status` (sent | failed), counting this one."""
    store.execute("UPDATE digests SET status = ?, attempts = attempts + 1, last_error = ?,"
                  " next_attempt = NULL WHERE id = ?", [status, error, digest_id])


# -- looking at the outbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    """A digest in the outbox with what the server said about each recipient."""

    id: int
    topic: str
    subject: str
    message_id: str
    status: str
    created: datetime
    attempts: int
    last_error: str | None
    next_attempt: datetime | None
    sent: datetime | None
    recipients: dict[str, str]  # recipient (a chat destination's shown name) -> pending | accepted | refused
    channel: str = MAIL


def list_outbox(store: Store, statuses: Sequence[str], limit: int) -> list[OutboxEntry]:
    """Digests with the given statuses, oldest first, at most `limit`, each with its recipients."""
    marks = ",".join("?" * len(statuses))
    rows = store.query(f"SELECT id, topic, subject, message_id, status, created, attempts, last_error,"
                       f" next_attempt, sent, channel FROM digests WHERE status IN ({marks})"
                       f" ORDER BY created, id LIMIT ?",
                       [*statuses, limit])
    result = []
    for r in rows:
        recipients = dict(store.execute(
            "SELECT recipient, status FROM digest_recipients WHERE digest_id = ? ORDER BY recipient",
            [r["id"]]))
        result.append(OutboxEntry(
            id=r["id"], topic=r["topic"], subject=r["subject"], message_id=r["message_id"],
            status=r["status"], created=parse_stamp(r["created"]), attempts=r["attempts"],
            last_error=r["last_error"], next_attempt=parse_iso(r["next_attempt"]), sent=parse_iso(r["sent"]),
            recipients=recipients, channel=r["channel"]))
    return result


@dataclass(frozen=True)
class ChannelActivity:
    """What one topic's channel (mail, or a chat destination) has delivered, for `topics list`."""

    last_sent: datetime | None  # when its latest delivered digest was first accepted
    sent: int
    pending: int
    failed: int
    last_error: str | None  # of its latest digest that failed or waits for a retry


def channel_activity(store: Store) -> dict[tuple[str, str], ChannelActivity]:
    """(topic, channel) -> its deliveries, for every channel with a digest stored."""
    return {(topic, channel): ChannelActivity(parse_iso(last_sent), sent or 0, pending or 0, failed or 0,
                                              error)
            for topic, channel, last_sent, sent, pending, failed, error in store.execute(
                "SELECT topic, channel, max(sent), sum(status = 'sent'), sum(status = 'pending'),"
                " sum(status = 'failed'),"
                " (SELECT e.last_error FROM digests e WHERE e.topic = d.topic AND e.channel = d.channel"
                "  AND e.last_error IS NOT NULL AND e.status != 'sent' ORDER BY e.created DESC, e.id DESC"
                "  LIMIT 1)"
                " FROM digests d GROUP BY topic, channel")}
