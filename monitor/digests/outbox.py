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

This module decides and holds the transactions; the rows are read and written by
monitor.storage.outbox (digests, their items and recipients, schedule runs) and
monitor.storage.matches (what a topic matched).
"""
from __future__ import annotations

import email
import email.utils
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from itertools import chain

from monitor.config import Settings, TopicSettings
from monitor.digests import lead
from monitor.digests.chat import ChatMessage, destination_key, destination_label, render_chat
from monitor.digests.digest import (
    Candidate,
    DigestItem,
    DigestPlan,
    PriorSend,
    Report,
    make_message_id,
    render,
    select_items,
    with_leads,
)
from monitor.digests.mailer import Refusal, Transport
from monitor.digests.notifier import ChatTransport
from monitor.digests.schedule import due_topics
from monitor.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from monitor.events.headlines import Affixes
from monitor.feeds.normalize import one_line
from monitor.logs import event, get_logger
from monitor.storage import clusters as clusters_db
from monitor.storage import matches as matches_db
from monitor.storage import outbox as outbox_db
from monitor.storage.database import Store, iso, survivors
from monitor.storage.outbox import MAIL, OutboxEntry, PendingDigest

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
class ChatDraft:
    """A rendered chat/webhook message for one destination of a topic, not (yet) in the outbox."""

    topic: TopicSettings
    plan: DigestPlan
    message: ChatMessage
    channel: str  # "chat:" + a hash of the URL: the destination's ledger, without its token
    destination: str  # what may be shown: "slack://hooks.slack.com"
    message_id: str

    @property
    def subject(self) -> str:
        return self.message.title


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
    channel: str = MAIL


@dataclass(frozen=True)
class SendReport:
    outcomes: tuple[SendOutcome, ...]
    stopped: str | None = None  # why the run stopped early (server unreachable)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


# -- loading what a topic's digest is decided from ---------------------------------------------


def load_candidates(store: Store, topic: TopicSettings,
                    newer_than: datetime | None = None, channel: str = MAIL) -> list[Candidate]:
    """The topic's matched clusters that a digest could carry now: never carried, or grown since
    (more outlets, or a follow-up that joined after the digest that last carried it).

    Matches and earlier sends recorded against a cluster that was later merged count for
    the cluster that absorbed it. Digests that failed for good do not count as carried,
    so their clusters come back in the next digest. `newer_than` ([digest] max_age) skips
    clusters whose last report is older before their reports are read. What was carried is
    counted per `channel`: mail and each chat destination keep their own ledger.
    """
    survivor = survivors(store)
    matched: dict[int, list[str]] = {}  # cluster -> matched terms
    for cid, terms in matches_db.matched_terms(store, topic.name):
        words = matched.setdefault(survivor.get(cid, cid), [])
        words.extend(t for t in terms if t not in words)
    prior: dict[int, PriorSend] = {}
    for item in outbox_db.carried_items(store, topic.name, channel):
        cid = survivor.get(item.cluster_id, item.cluster_id)
        before = prior.get(cid)
        known = list(before.outlet_names) if before else []
        known.extend(n for n in item.outlet_names if n not in known)
        # clusters merged since: the latest carry of any of them, so that no follow-up one of
        # them carried comes back
        carried = max(before.carried or item.created, item.created) if before else item.created
        prior[cid] = PriorSend(max(before.outlets if before else 0, item.outlets), tuple(known), carried)
    sent = [cid for cid in matched if cid in prior]
    counts = outbox_db.outlet_counts(store, sent)
    follow_ups = outbox_db.latest_follow_ups(store, sent)

    def grown(cid: int) -> bool:
        p = prior[cid]
        joined = follow_ups.get(cid)
        return counts.get(cid, 0) > p.outlets or (joined is not None and p.carried is not None
                                                   and joined > p.carried)

    keep = [cid for cid in matched if cid not in prior or grown(cid)]
    heads = outbox_db.recent_headlines(store, keep, newer_than)
    keep = [cid for cid in keep if cid in heads]
    furniture: dict[int, Affixes] = {}

    def title(r: outbox_db.ReportRow) -> str:
        # a follow-up's own headline is shown under the cluster's: cleaned as cluster headlines are
        if r.reason != "follow-up":
            return r.title
        learned = clusters_db.feed_furniture(store, r.feed_id, furniture)
        return clusters_db.display_title(r.title, r.outlet, learned)

    reports = {cid: [Report(outlet=one_line(r.outlet, 120) or "?", link=r.link, title=title(r),
                            published=r.published, follow_up=r.reason == "follow-up", joined=r.joined)
                     for r in rows]
               for cid, rows in outbox_db.cluster_reports(store, keep).items()}
    return [Candidate(cluster_id=cid, headline=heads[cid] or "", reports=tuple(reports.get(cid, ())),
                      terms=tuple(matched[cid]), prior=prior.get(cid)) for cid in keep]


def load_leads(store: Store, items: Sequence[DigestItem]) -> dict[int, str | None]:
    """Cluster id -> the lead of its item (None: no report of it says what happened in its text).

    Reports are tried best first (lead.best_first: the member the others matched most often),
    skipping those without text, at most lead.MAX_TRIES of them. A report's feed furniture is
    learnt from the feed's latest entries outside the cluster, once per feed, and only when the
    report has a sentence its shape does not already rule out. Only listed items are asked for."""
    members = outbox_db.lead_members(store, [i.cluster_id for i in items])
    leads: dict[int, str | None] = {}
    for item in items:
        rows = {m.entry_id: m for m in members.get(item.cluster_id, [])}
        order = lead.best_first(list(rows), [m.matched_entry_id for m in rows.values()])
        tries = [rows[e] for e in order if rows[e].has_text][:lead.MAX_TRIES]
        texts = outbox_db.entry_texts(store, [m.entry_id for m in tries], lead.SOURCE_CHARS)
        furniture: dict[int, lead.FeedFurniture] = {}
        leads[item.cluster_id] = None
        for m in tries:
            sentences = lead.candidates(texts.get(m.entry_id, ""), (m.title, item.headline))
            first = next(sentences, None)
            if first is None:  # all furniture by its shape: the feed need not be read
                continue
            if m.feed_id not in furniture:
                furniture[m.feed_id] = lead.FeedFurniture(outbox_db.recent_feed_texts(
                    store, m.feed_id, item.cluster_id, lead.RECENT_ENTRIES, lead.SOURCE_CHARS))
            found = lead.compose(chain([first], sentences), furniture[m.feed_id])
            if found is not None:
                leads[item.cluster_id] = found
                break
    return leads


def _newer_than(settings: Settings, now: datetime) -> datetime | None:
    """The oldest last report a digest item may have ([digest] max_age), None without a limit."""
    max_age = settings.digest.max_age
    return now - timedelta(seconds=max_age) if max_age is not None else None


def chat_drafts(store: Store, settings: Settings, topic: TopicSettings, now: datetime) -> list[ChatDraft]:
    """The chat/webhook message each of `topic`'s destinations would get now (those with something new
    to them: every destination keeps its own ledger of what it was sent)."""
    newer_than = _newer_than(settings, now)
    drafts = []
    for url in dict.fromkeys(topic.notify):
        channel = destination_key(url)
        plan = select_items(topic, load_candidates(store, topic, newer_than, channel), now,
                            max_items=settings.digest.chat_max_items, max_age=settings.digest.max_age)
        if not plan:
            continue
        message = render_chat(plan, max_items=settings.digest.chat_max_items)
        drafts.append(ChatDraft(topic=topic, plan=plan, message=message,
                                channel=channel, destination=destination_label(url),
                                message_id=make_message_id(topic.name, settings.smtp.sender)))
    return drafts


def draft(store: Store, settings: Settings, topic: TopicSettings, now: datetime,
          token: str | None = None) -> Draft | None:
    """The digest `topic` would get now, rendered; None when there is nothing to say or no one to tell."""
    if not topic.recipients:
        return None
    max_age = settings.digest.max_age
    plan = select_items(topic, load_candidates(store, topic, _newer_than(settings, now)), now,
                        max_items=settings.digest.max_items, max_age=max_age)
    if not plan:
        return None
    plan = with_leads(plan, load_leads(store, plan.items))
    sender = settings.smtp.sender
    message_id = make_message_id(topic.name, sender, token)
    message = render(plan, sender=sender, recipients=topic.recipients, message_id=message_id, now=now,
                     tz=settings.digest.timezone)
    return Draft(topic=topic, plan=plan, message=message, message_id=message_id, sender=sender,
                 recipients=tuple(topic.recipients))


# -- creating digests ------------------------------------------------------------------------------


def topics_to_run(store: Store, settings: Settings, now: datetime,
                  topic: str | None = None) -> list[TopicSettings]:
    """The topics whose schedule is due; a topic named explicitly runs whatever its schedule."""
    if topic is not None:
        chosen = [t for t in settings.topics if t.name == topic]
        if not chosen:
            known = ", ".join(t.name for t in settings.topics) or "none configured"
            raise ConfigError(f"no topic named {topic!r} (topics: {known})")
        return chosen
    return due_topics(settings.topics, outbox_db.last_runs(store), now, settings.digest.timezone)


def _item_rows(plan: DigestPlan) -> list[outbox_db.ItemRow]:
    """The ledger rows of a digest: every cluster it carries, listed or counted under "more"."""
    return [outbox_db.ItemRow(i.cluster_id, i.kind, [o.name for o in i.outlets], listed)
            for listed, plan_items in ((True, plan.items), (False, plan.unlisted)) for i in plan_items]


def _insert(store: Store, d: Draft, now: datetime) -> int:
    """Store a draft as a pending digest; its items are the ledger of what the topic has carried."""
    items = _item_rows(d.plan)
    return outbox_db.insert_digest(store, topic=d.topic.name, message_id=d.message_id, subject=d.subject,
                                   recipients=d.recipients, message=d.message.as_bytes(), created=now,
                                   sender=email.utils.parseaddr(d.sender)[1] or d.sender, items=items)


def _insert_chat(store: Store, d: ChatDraft, now: datetime) -> int:
    """Store a chat draft as a pending digest of its channel: the message as JSON (title and body),
    so that every retry sends the same text; its shown destination is its one recipient."""
    items = _item_rows(d.plan)
    body = json.dumps({"title": d.message.title, "body": d.message.body}, ensure_ascii=False).encode("utf-8")
    return outbox_db.insert_digest(store, topic=d.topic.name, message_id=d.message_id, subject=d.subject,
                                   recipients=[d.destination], message=body, created=now, sender="",
                                   items=items, channel=d.channel)


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
            chats = chat_drafts(store, settings, t, now)
            outbox_db.record_run(store, t.name, now)
            ids = ([(_insert(store, d, now), d)] if d is not None else []) + \
                [(_insert_chat(store, c, now), c) for c in chats]
        for digest_id, made in ids:
            created.append(digest_id)
            if isinstance(made, ChatDraft):
                event(log, "digest_created", digest=digest_id, topic=t.name, destination=made.destination,
                      items=len(made.plan.items), more=len(made.plan.unlisted))
            else:
                event(log, "digest_created", digest=digest_id, topic=t.name, message_id=made.message_id,
                      items=len(made.plan.items), more=len(made.plan.unlisted),
                      recipients=len(made.recipients))
    return created


def preview(store: Store, settings: Settings, now: datetime,
            topic: str | None = None) -> list[Draft | ChatDraft]:
    """What `create_digests` would put in the outbox now, mail and chat. Writes nothing."""
    drafts: list[Draft | ChatDraft] = []
    with store.read():
        for t in topics_to_run(store, settings, now, topic):
            mail = draft(store, settings, t, now)
            if mail is not None:
                drafts.append(mail)
            drafts.extend(chat_drafts(store, settings, t, now))
    return drafts


# -- sending ---------------------------------------------------------------------------------------


def _envelope_sender(row: PendingDigest, message: bytes) -> str:
    if row.sender:
        return row.sender
    parsed = email.message_from_bytes(message, policy=policy.default)
    addresses = parsed["From"].addresses if parsed["From"] else ()
    return addresses[0].addr_spec if addresses else ""


def _claim(store: Store, digest_id: int, now: datetime) -> bool:
    with store.write():
        return outbox_db.claim_digest(store, digest_id, now, until=now + LEASE)


def _defer(store: Store, row: PendingDigest, now: datetime, error: str) -> SendOutcome:
    attempts = row.attempts + 1
    if now - row.created >= GIVE_UP:
        return _fail(store, row, now, f"gave up after {attempts} attempts: {error}")
    retry = now + backoff(attempts)
    with store.write():
        outbox_db.defer_digest(store, row.id, attempts, error, retry)
    event(log, "digest_deferred", logging.WARNING, digest=row.id, topic=row.topic, attempts=attempts,
          next_attempt=iso(retry), error=error)
    return SendOutcome(row.id, row.topic, row.message_id, "pending", error=error, next_attempt=retry,
                       channel=row.channel)


def _fail(store: Store, row: PendingDigest, now: datetime, error: str) -> SendOutcome:
    """No more attempts. Recipients who already have the message keep it counted as sent:
    a digest some of its readers received must not come back to them in the next one."""
    with store.write():
        outbox_db.refuse_pending_recipients(store, row.id, error)
        delivered = outbox_db.count_recipients(store, row.id, "accepted")
        status = "sent" if delivered else "failed"
        outbox_db.finish_digest(store, row.id, status, error)
    event(log, "digest_failed", logging.ERROR, digest=row.id, topic=row.topic, error=error)
    return SendOutcome(row.id, row.topic, row.message_id, status, error=error, channel=row.channel)


def _settle(store: Store, row: PendingDigest, now: datetime, recipients: Sequence[str],
            refused: dict[str, Refusal]) -> SendOutcome:
    """Record a transaction the server completed: per recipient accepted, refused (5xx) or deferred (4xx)."""
    accepted = tuple(r for r in recipients if r not in refused)
    summary = "; ".join(f"{r}: {x}" for r, x in refused.items())
    detail = {r: str(x) for r, x in refused.items()}
    with store.write():  # one transaction: recipients and the digest's status agree after a crash
        for r in recipients:
            refusal = refused.get(r)
            status = "accepted" if refusal is None else ("pending" if refusal.temporary else "refused")
            outbox_db.set_recipient_status(store, row.id, r, status, str(refusal) if refusal else None)
        if accepted:
            outbox_db.mark_first_delivery(store, row.id, now)
        if outbox_db.count_recipients(store, row.id, "pending"):
            return replace(_defer(store, row, now, f"recipients deferred: {summary}"), accepted=accepted,
                           refused=detail)
        delivered = outbox_db.count_recipients(store, row.id, "accepted")
        status = "sent" if delivered else "failed"
        error = (f"refused: {summary}" if summary else None) if delivered else \
            f"all recipients refused: {summary or 'none'}"
        outbox_db.finish_digest(store, row.id, status, error)
    event(log, "digest_sent" if delivered else "digest_failed", logging.INFO if delivered else logging.ERROR,
          digest=row.id, topic=row.topic, accepted=len(accepted), refused=len(refused), error=error)
    return SendOutcome(row.id, row.topic, row.message_id, status, accepted, detail, error,
                       channel=row.channel)


def _send_chat(store: Store, row: PendingDigest, now: datetime, chat: ChatTransport | None,
               destinations: Mapping[str, str]) -> tuple[SendOutcome, bool]:
    """Deliver a claimed chat digest to its destination and record what happened, as for mail: sent
    once the service accepted it, deferred on a temporary failure, failed on a permanent one.
    The flag says the destination could not be reached (refused, timed out)."""
    url = destinations.get(row.channel)
    if url is None or chat is None:  # the destination was taken out of the topic's config
        return _fail(store, row, now, "destination no longer configured for this topic"), False
    stored = json.loads(outbox_db.digest_message(store, row.id))
    shown = outbox_db.pending_recipients(store, row.id)
    try:
        chat.send(url, stored["title"], stored["body"])
    except TemporaryDeliveryError as exc:
        return _defer(store, row, now, str(exc)), exc.unreachable
    except PermanentDeliveryError as exc:
        return _fail(store, row, now, str(exc)), False
    except Exception as exc:  # a transport bug must not lose the digest: keep it queued
        log.exception("chat transport failed unexpectedly")
        return _defer(store, row, now, f"unexpected {type(exc).__name__}"), False
    return _settle(store, row, now, shown, {}), False


def send_pending(store: Store, transport: Transport, now: datetime, *, topic: str | None = None,
                 chat: ChatTransport | None = None,
                 destinations: Mapping[str, str] | None = None) -> SendReport:
    """Deliver every pending digest whose next attempt is due: mail first, then chat, oldest first.

    When the mail server cannot be reached at all, the mail stops at the first digest (it is
    deferred) and later ones keep their place: they would fail the same way. Chat digests go
    on: each destination succeeds or fails on its own, and one that cannot be reached (refused,
    or no answer within the transport's deadline) is not tried again in this run, so a hanging
    destination costs one deadline per run, not one per digest waiting for it. `destinations`
    maps a chat digest's channel to its URL (from the config: the URL is not stored).

    A topic's digests reach the reader in the order they were written: a digest waits while
    an older one of its topic and channel that nobody has received yet waits for its retry (or
    is being sent by another sender). Without this, after an outage the digests created during
    it (never tried, so due at once) went out before the first one, still in its backoff.
    """
    outcomes: list[SendOutcome] = []
    # (topic, channel) with an older digest still waiting for its first delivery
    held: set[tuple[str, str]] = set()
    stopped: str | None = None
    down: set[str] = set()  # chat channels that could not be reached in this run
    for row in outbox_db.pending_digests(store, topic):
        key = (row.topic, row.channel)
        if key in held or row.channel in down or (stopped and row.channel == MAIL):
            continue
        waiting = row.next_attempt is not None and row.next_attempt > now
        if waiting or not _claim(store, row.id, now):
            if row.sent is None:  # not due yet, or another sender has it
                held.add(key)
            continue
        if row.channel != MAIL:
            outcome, unreachable = _send_chat(store, row, now, chat, destinations or {})
            outcomes.append(outcome)
            if unreachable:
                down.add(row.channel)
        else:
            message = outbox_db.digest_message(store, row.id)
            recipients = outbox_db.pending_recipients(store, row.id)
            try:
                sender = _envelope_sender(row, message)
                refused = transport.send(message, sender, recipients) if recipients else {}
            except TemporaryDeliveryError as exc:
                outcomes.append(_defer(store, row, now, str(exc)))
                if exc.unreachable:
                    stopped = str(exc)
            except PermanentDeliveryError as exc:
                outcomes.append(_fail(store, row, now, str(exc)))
            except Exception as exc:  # a transport bug must not lose the digest: keep it queued
                log.exception("digest transport failed unexpectedly")
                outcomes.append(_defer(store, row, now, f"unexpected {type(exc).__name__}: {exc}"))
            else:
                outcomes.append(_settle(store, row, now, recipients, refused))
        if outcomes[-1].status == "pending" and row.sent is None and not outcomes[-1].accepted:
            held.add(key)
    return SendReport(tuple(outcomes), stopped=stopped)


# -- looking at the outbox ---------------------------------------------------------------------------


def outbox_entries(store: Store, statuses: Sequence[str] = ("pending", "failed"), limit: int = 100
                   ) -> list[OutboxEntry]:
    """Digests in the outbox with the given statuses, oldest first (for `status` and `digest preview`)."""
    return outbox_db.list_outbox(store, statuses, limit)
