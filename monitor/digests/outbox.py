"""The digest outbox: build due digests into the database, then deliver them from there.

Two steps with the database between them, so a crash never loses a digest and a retry
never changes one:
1. `create_digests` decides each due topic's digest (monitor.digests.digest), renders it, and
   commits the whole message, its items and its recipients in ONE transaction, before
   any SMTP I/O. Those digest_items are the ledger of what a topic has carried.
2. `send_pending` hands the stored bytes to a transport, oldest first, and records what
   the server said: sent only after it accepted, per-recipient refusals, temporary
   failures retried later with backoff (same bytes, same Message-ID), permanent ones failed.

Each send first claims its digest with a lease, so the daemon and a `monitor digest send`
running at the same moment cannot both deliver it.
"""
from __future__ import annotations

import email
import email.utils
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage

from monitor.config import Settings, TopicSettings
from monitor.digests.digest import (
    Candidate,
    DigestPlan,
    PriorSend,
    Report,
    due_topics,
    make_message_id,
    render,
    select_items,
)
from monitor.digests.mailer import Refusal, Transport
from monitor.digests.topics import OUTLET_SQL
from monitor.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from monitor.feeds.normalize import one_line
from monitor.logs import event, get_logger
from monitor.storage.database import Store, chunked, inserted_id, iso, parse_iso, parse_stamp, survivors

log = get_logger("outbox")

LEASE = timedelta(minutes=10)  # a claimed digest is left alone this long by other senders
GIVE_UP = timedelta(days=5)  # like an MTA's queue lifetime: after that a deferred digest fails


def backoff(attempts: int) -> timedelta:
    """1, 4, 16, 64 minutes, then every 4 hours: quick after a blip, gentle during an outage.

    Capped in integer minutes before it becomes a timedelta: 4 ** 21 minutes is past what a
    timedelta holds, and a digest deferred that often (about three days) must still be retried."""
    return timedelta(minutes=min(4 ** max(0, attempts - 1), 4 * 60))


@dataclass(frozen=True)
class Draft:
    """A rendered digest that is not (yet) in the outbox."""

    topic: TopicSettings
    plan: DigestPlan
    message: EmailMessage
    message_id: str
    sender: str
    recipients: tuple[str, ...]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass(frozen=True)
class SendOutcome:
    digest_id: int
    topic: str
    message_id: str
    status: str  # sent | pending (deferred) | failed
    accepted: tuple[str, ...] = ()
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> SMTP reply
    error: str | None = None
    next_attempt: datetime | None = None


@dataclass(frozen=True)
class SendReport:
    outcomes: tuple[SendOutcome, ...]
    stopped: str | None = None  # why the run stopped early (server unreachable)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


# -- loading what a topic's digest is decided from ---------------------------------------------


def _outlet_counts(store: Store, ids: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for part in chunked(list(ids)):
        marks = ",".join("?" * len(part))
        counts.update(store.db.execute(
            f"SELECT m.cluster_id, count(DISTINCT {OUTLET_SQL}) FROM memberships m"
            f" JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id"
            f" WHERE m.cluster_id IN ({marks}) GROUP BY m.cluster_id", list(part)))
    return counts


def _reports(store: Store, ids: Sequence[int]) -> dict[int, list[Report]]:
    reports: dict[int, list[Report]] = {}
    for part in chunked(list(ids)):
        marks = ",".join("?" * len(part))
        for cid, outlet, link, title, published in store.db.execute(
                f"SELECT m.cluster_id, {OUTLET_SQL}, e.link, e.title, e.published FROM memberships m"
                f" JOIN entries e ON e.id = m.entry_id JOIN feeds f ON f.id = e.feed_id"
                f" WHERE m.cluster_id IN ({marks}) ORDER BY e.published, e.id", list(part)):
            reports.setdefault(cid, []).append(
                Report(outlet=one_line(outlet, 120) or "?", link=link, title=title,
                       published=parse_stamp(published)))
    return reports


def load_candidates(store: Store, topic: TopicSettings,
                    newer_than: datetime | None = None) -> list[Candidate]:
    """The topic's matched clusters that a digest could carry now: never carried, or grown since.

    Matches and earlier sends recorded against a cluster that was later merged count for
    the cluster that absorbed it. Digests that failed for good do not count as carried,
    so their clusters come back in the next digest. `newer_than` ([digest] max_age) skips
    clusters whose last report is older before their reports are read.
    """
    survivor = survivors(store)
    matched: dict[int, list[str]] = {}  # cluster -> matched terms
    for cid, terms in store.db.execute("SELECT cluster_id, terms FROM topic_matches WHERE topic = ?",
                                       [topic.name]):
        words = matched.setdefault(survivor.get(cid, cid), [])
        words.extend(t for t in json.loads(terms or "[]") if t not in words)
    prior: dict[int, PriorSend] = {}
    for cid, outlets, names in store.db.execute(
            "SELECT di.cluster_id, di.outlets, di.outlet_names FROM digest_items di"
            " JOIN digests d ON d.id = di.digest_id WHERE d.topic = ? AND d.status != 'failed'"
            " ORDER BY d.created, d.id", [topic.name]):
        cid = survivor.get(cid, cid)
        before = prior.get(cid, PriorSend(0, ()))
        known = list(before.outlet_names)
        known.extend(n for n in json.loads(names or "[]") if n not in known)
        prior[cid] = PriorSend(max(before.outlets, outlets), tuple(known))
    sent = [cid for cid in matched if cid in prior]
    counts = _outlet_counts(store, sent)
    keep = [cid for cid in matched if cid not in prior or counts.get(cid, 0) > prior[cid].outlets]
    heads: dict[int, str] = {}
    floor = iso(newer_than) if newer_than else ""
    for part in chunked(keep):
        marks = ",".join("?" * len(part))
        heads.update(store.db.execute(
            f"SELECT id, headline FROM clusters WHERE id IN ({marks}) AND coalesce(last_published, ?) >= ?",
            [*part, floor, floor]))
    keep = [cid for cid in keep if cid in heads]
    reports = _reports(store, keep)
    return [Candidate(cluster_id=cid, headline=heads[cid] or "", reports=tuple(reports.get(cid, ())),
                      terms=tuple(matched[cid]), prior=prior.get(cid)) for cid in keep]


def draft(store: Store, settings: Settings, topic: TopicSettings, now: datetime,
          token: str | None = None) -> Draft | None:
    """The digest `topic` would get now, rendered; None when there is nothing to say or no one to tell."""
    if not topic.recipients:
        return None
    max_age = settings.digest.max_age
    newer_than = now - timedelta(seconds=max_age) if max_age is not None else None
    plan = select_items(topic, load_candidates(store, topic, newer_than), now,
                        max_items=settings.digest.max_items, max_age=max_age)
    if not plan:
        return None
    sender = settings.smtp.sender
    message_id = make_message_id(topic.name, sender, token)
    message = render(plan, sender=sender, recipients=topic.recipients, message_id=message_id, now=now,
                     tz=settings.digest.timezone)
    return Draft(topic=topic, plan=plan, message=message, message_id=message_id, sender=sender,
                 recipients=tuple(topic.recipients))


# -- creating digests ------------------------------------------------------------------------------


def last_runs(store: Store) -> dict[str, datetime]:
    return {t: parse_stamp(r) for t, r in store.db.execute("SELECT topic, last_run FROM digest_schedule")}


def topics_to_run(store: Store, settings: Settings, now: datetime,
                  topic: str | None = None) -> list[TopicSettings]:
    """The topics whose schedule is due; a topic named explicitly runs whatever its schedule."""
    if topic is not None:
        chosen = [t for t in settings.topics if t.name == topic]
        if not chosen:
            known = ", ".join(t.name for t in settings.topics) or "none configured"
            raise ConfigError(f"no topic named {topic!r} (topics: {known})")
        return chosen
    return due_topics(settings.topics, last_runs(store), now, settings.digest.timezone)


def _insert(store: Store, d: Draft, now: datetime) -> int:
    digest_id = inserted_id(store.db.execute(
        "INSERT INTO digests (topic, message_id, subject, recipients, message, created, status, attempts,"
        " sender) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
        [d.topic.name, d.message_id, d.subject, json.dumps(list(d.recipients)), d.message.as_bytes(),
         iso(now), email.utils.parseaddr(d.sender)[1] or d.sender]))
    for listed, items in ((1, d.plan.items), (0, d.plan.unlisted)):
        store.db.conn.executemany(
            "INSERT INTO digest_items (digest_id, cluster_id, kind, outlets, outlet_names, listed)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(digest_id, i.cluster_id, i.kind, len(i.outlets), json.dumps([o.name for o in i.outlets]),
              listed) for i in items])
    store.db.conn.executemany(
        "INSERT INTO digest_recipients (digest_id, recipient, status) VALUES (?, ?, 'pending')",
        [(digest_id, r) for r in dict.fromkeys(d.recipients)])
    return digest_id


def create_digests(store: Store, settings: Settings, now: datetime, topic: str | None = None) -> list[int]:
    """Put every due topic's digest (or `topic`'s, due or not) in the outbox. Returns the new digest ids.

    Deciding and storing happen in one write transaction per topic: a poll cycle that
    records matches meanwhile lands wholly before (in this digest) or after (in the next).
    The schedule's run is recorded even when the digest is empty, so "daily 07:00" means
    07:00 and not "the first cycle after 07:00 that found something".
    """
    created = []
    for t in topics_to_run(store, settings, now, topic):
        with store.write():
            d = draft(store, settings, t, now)
            store.db.execute("INSERT INTO digest_schedule (topic, last_run) VALUES (?, ?) "
                             "ON CONFLICT(topic) DO UPDATE SET last_run = excluded.last_run",
                             [t.name, iso(now)])
            if d is None:
                continue
            digest_id = _insert(store, d, now)
        created.append(digest_id)
        event(log, "digest_created", digest=digest_id, topic=t.name, message_id=d.message_id,
              items=len(d.plan.items), more=len(d.plan.unlisted), recipients=len(d.recipients))
    return created


def preview(store: Store, settings: Settings, now: datetime, topic: str | None = None) -> list[Draft]:
    """What `create_digests` would put in the outbox now. Writes nothing."""
    with store.read():
        drafts = [draft(store, settings, t, now) for t in topics_to_run(store, settings, now, topic)]
    return [d for d in drafts if d is not None]


# -- sending ---------------------------------------------------------------------------------------


def _envelope_sender(row: dict) -> str:
    if row.get("sender"):
        return row["sender"]
    parsed = email.message_from_bytes(row["message"], policy=policy.default)
    addresses = parsed["From"].addresses if parsed["From"] else ()
    return addresses[0].addr_spec if addresses else ""


def _claim(store: Store, digest_id: int, now: datetime) -> bool:
    with store.write():
        cur = store.db.execute(
            "UPDATE digests SET next_attempt = ? WHERE id = ? AND status = 'pending' AND "
            "(next_attempt IS NULL OR next_attempt <= ?)", [iso(now + LEASE), digest_id, iso(now)])
        return cur.rowcount == 1


def _defer(store: Store, row: dict, now: datetime, error: str) -> SendOutcome:
    attempts = row["attempts"] + 1
    if now - parse_stamp(row["created"]) >= GIVE_UP:
        return _fail(store, row, now, f"gave up after {attempts} attempts: {error}")
    retry = now + backoff(attempts)
    with store.write():
        store.db.execute("UPDATE digests SET attempts = ?, last_error = ?, next_attempt = ? WHERE id = ?",
                         [attempts, error, iso(retry), row["id"]])
    event(log, "digest_deferred", logging.WARNING, digest=row["id"], topic=row["topic"], attempts=attempts,
          next_attempt=iso(retry), error=error)
    return SendOutcome(row["id"], row["topic"], row["message_id"], "pending", error=error, next_attempt=retry)


def _fail(store: Store, row: dict, now: datetime, error: str) -> SendOutcome:
    """No more attempts. Recipients who already have the message keep it counted as sent:
    a digest some of its readers received must not come back to them in the next one."""
    with store.write():
        store.db.execute("UPDATE digest_recipients SET status = 'refused', error = ? WHERE digest_id = ? AND "
                         "status = 'pending'", [error, row["id"]])
        delivered = store.scalar("SELECT count(*) FROM digest_recipients WHERE digest_id = ? AND "
                                 "status = 'accepted'", [row["id"]])
        status = "sent" if delivered else "failed"
        store.db.execute("UPDATE digests SET status = ?, attempts = attempts + 1, last_error = ?,"
                         " next_attempt = NULL WHERE id = ?", [status, error, row["id"]])
    event(log, "digest_failed", logging.ERROR, digest=row["id"], topic=row["topic"], error=error)
    return SendOutcome(row["id"], row["topic"], row["message_id"], status, error=error)


def _settle(store: Store, row: dict, now: datetime, recipients: Sequence[str],
            refused: dict[str, Refusal]) -> SendOutcome:
    """Record a transaction the server completed: per recipient accepted, refused (5xx) or deferred (4xx)."""
    accepted = tuple(r for r in recipients if r not in refused)
    summary = "; ".join(f"{r}: {x}" for r, x in refused.items())
    detail = {r: str(x) for r, x in refused.items()}
    with store.write():  # one transaction: recipients and the digest's status agree after a crash
        for r in recipients:
            refusal = refused.get(r)
            status = "accepted" if refusal is None else ("pending" if refusal.temporary else "refused")
            store.db.execute("UPDATE digest_recipients SET status = ?, error = ?"
                             " WHERE digest_id = ? AND recipient = ?",
                             [status, str(refusal) if refusal else None, row["id"], r])
        if accepted:
            store.db.execute("UPDATE digests SET sent = coalesce(sent, ?) WHERE id = ?",
                             [iso(now), row["id"]])
        left = store.scalar("SELECT count(*) FROM digest_recipients"
                            " WHERE digest_id = ? AND status = 'pending'", [row["id"]])
        if left:
            return replace(_defer(store, row, now, f"recipients deferred: {summary}"), accepted=accepted,
                           refused=detail)
        delivered = store.scalar("SELECT count(*) FROM digest_recipients WHERE digest_id = ? AND "
                                 "status = 'accepted'", [row["id"]])
        status = "sent" if delivered else "failed"
        error = (f"refused: {summary}" if summary else None) if delivered else \
            f"all recipients refused: {summary or 'none'}"
        store.db.execute("UPDATE digests SET status = ?, attempts = attempts + 1, last_error = ?,"
                         " next_attempt = NULL WHERE id = ?", [status, error, row["id"]])
    event(log, "digest_sent" if delivered else "digest_failed", logging.INFO if delivered else logging.ERROR,
          digest=row["id"], topic=row["topic"], accepted=len(accepted), refused=len(refused), error=error)
    return SendOutcome(row["id"], row["topic"], row["message_id"], status, accepted, detail, error)


def send_pending(store: Store, transport: Transport, now: datetime, *,
                 topic: str | None = None) -> SendReport:
    """Deliver every pending digest whose next attempt is due, oldest first.

    When the server cannot be reached at all, the run stops at the first digest (it is
    deferred) and later ones keep their place: they would fail the same way.

    A topic's digests reach the reader in the order they were written: a digest waits while
    an older one of its topic that nobody has received yet waits for its retry (or is being
    sent by another sender). Without this, after an outage the digests created during it
    (never tried, so due at once) went out before the first one, still in its backoff.
    """
    where = "status = 'pending'"
    params: list = []
    if topic is not None:
        where += " AND topic = ?"
        params.append(topic)
    rows = store.query(f"SELECT id, topic, message_id, created, attempts, sender, next_attempt, sent"
                       f" FROM digests WHERE {where} ORDER BY created, id", params)
    outcomes: list[SendOutcome] = []
    held: set[str] = set()  # topics with an older digest still waiting for its first delivery
    stamp = iso(now)
    for row in rows:
        if row["topic"] in held:
            continue
        waiting = row["next_attempt"] is not None and row["next_attempt"] > stamp
        if waiting or not _claim(store, row["id"], now):
            if row["sent"] is None:  # not due yet, or another sender has it
                held.add(row["topic"])
            continue
        row["message"] = store.scalar("SELECT message FROM digests WHERE id = ?", [row["id"]])
        recipients = [r for (r,) in store.db.execute(
            "SELECT recipient FROM digest_recipients WHERE digest_id = ? AND status = 'pending'"
            " ORDER BY recipient", [row["id"]])]
        try:
            refused = transport.send(row["message"], _envelope_sender(row), recipients) if recipients else {}
        except TemporaryDeliveryError as exc:
            outcomes.append(_defer(store, row, now, str(exc)))
            if exc.unreachable:
                return SendReport(tuple(outcomes), stopped=str(exc))
        except PermanentDeliveryError as exc:
            outcomes.append(_fail(store, row, now, str(exc)))
        except Exception as exc:  # a transport bug must not lose the digest: keep it queued
            log.exception("digest transport failed unexpectedly")
            outcomes.append(_defer(store, row, now, f"unexpected {type(exc).__name__}: {exc}"))
        else:
            outcomes.append(_settle(store, row, now, recipients, refused))
        if outcomes[-1].status == "pending" and row["sent"] is None and not outcomes[-1].accepted:
            held.add(row["topic"])
    return SendReport(tuple(outcomes))


# -- looking at the outbox ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
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
    recipients: dict[str, str]  # recipient -> pending | accepted | refused


def outbox_entries(store: Store, statuses: Sequence[str] = ("pending", "failed"), limit: int = 100
                   ) -> list[OutboxEntry]:
    """Digests in the outbox with the given statuses, oldest first (for `status` and `digest preview`)."""
    marks = ",".join("?" * len(statuses))
    rows = store.query(f"SELECT id, topic, subject, message_id, status, created, attempts, last_error,"
                       f" next_attempt, sent FROM digests WHERE status IN ({marks})"
                       f" ORDER BY created, id LIMIT ?",
                       [*statuses, limit])
    result = []
    for r in rows:
        recipients = dict(store.db.execute(
            "SELECT recipient, status FROM digest_recipients WHERE digest_id = ? ORDER BY recipient",
            [r["id"]]))
        result.append(OutboxEntry(
            id=r["id"], topic=r["topic"], subject=r["subject"], message_id=r["message_id"],
            status=r["status"], created=parse_stamp(r["created"]), attempts=r["attempts"],
            last_error=r["last_error"], next_attempt=parse_iso(r["next_attempt"]), sent=parse_iso(r["sent"]),
            recipients=recipients))
    return result
