"""Topic digests, pure: what goes in a topic's digest, and the e-mail that carries it (when a
topic is due is monitor.digests.schedule's).

Records in, decisions and an `EmailMessage` out; no database, no clock, no SMTP. The
outbox (monitor.digests.outbox) loads the records and stores what this module decides, so the
rules here can be tested from tables.

What a digest holds (design.md, "Digest semantics"): every cluster the topic matched that
no earlier digest for the topic carried, plus clusters carried before that have gained
outlets since, or a follow-up ("updated", naming the new outlets and showing the latest
follow-up's headline). "Carried" is read from the digest ledger, not from timestamps, so a
poll cycle that commits while a digest is being built or sent can neither slip between two
digests nor appear in both. A follow-up is new to the reader when it joined after the
digest that last carried its cluster was made: one that digest could see is not news again.
Each listed item shows a lead under its headline: the outbox picks it (monitor.digests.lead)
once the items are chosen, and `with_leads` puts it in the plan.
"""
from __future__ import annotations

import email.utils
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from email import policy
from email.message import EmailMessage
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.config import TopicSettings
from monitor.digests.lead import MAX_LEAD
from monitor.feeds.normalize import one_line, safe_url

if TYPE_CHECKING:
    from jinja2 import Environment

# -- what goes in a digest ----------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One member entry of a cluster, as the digest shows it."""

    outlet: str
    link: str | None
    title: str
    published: datetime
    follow_up: bool = False  # joined its incident later, on shared names (the suspect charged, the trial)
    joined: datetime | None = None  # when it joined the cluster (None: not known)


@dataclass(frozen=True)
class PriorSend:
    """What the last digest(s) of this topic carried about a cluster."""

    outlets: int  # outlet count then
    outlet_names: tuple[str, ...]  # outlets then (empty for rows written before names were kept)
    carried: datetime | None = None  # when the last digest that carried it was made (None: not known)


@dataclass(frozen=True)
class Candidate:
    """A cluster the topic matched, with what is needed to decide and to show it."""

    cluster_id: int
    headline: str
    reports: tuple[Report, ...]
    terms: tuple[str, ...]
    prior: PriorSend | None = None  # None: never carried by a digest of this topic


@dataclass(frozen=True)
class Spread:
    """Outlets first reporting the event per time bucket: how it spread."""

    start: datetime
    bucket: timedelta
    counts: tuple[int, ...]

    @property
    def unit(self) -> str:
        hours = self.bucket / timedelta(hours=1)
        if hours < 24:
            return "hour" if hours == 1 else f"{hours:g} hours"
        days = hours / 24
        return "day" if days == 1 else f"{days:g} days"


@dataclass(frozen=True)
class OutletLink:
    name: str
    link: str | None  # http(s) only


@dataclass(frozen=True)
class FollowUpNote:
    """The latest follow-up the reader has not seen, shown under the cluster's headline."""

    headline: str
    days: int | None  # whole days after the report before it (None: no report before it)


@dataclass(frozen=True)
class DigestItem:
    cluster_id: int
    kind: str  # new | updated
    headline: str
    outlets: tuple[OutletLink, ...]
    new_outlets: tuple[str, ...]  # for "updated": outlets since the last send
    reports: int
    first_seen: datetime
    last_seen: datetime
    terms: tuple[str, ...]
    spread: Spread
    follow_up: FollowUpNote | None = None
    lead: str | None = None  # what happened, in a sentence or two of the most typical report (lead.py)


@dataclass(frozen=True)
class DigestPlan:
    topic: TopicSettings
    items: tuple[DigestItem, ...]  # listed, most significant first
    unlisted: tuple[DigestItem, ...]  # beyond max_items: counted as "+N more", recorded as carried

    @property
    def all_items(self) -> tuple[DigestItem, ...]:
        return self.items + self.unlisted

    @property
    def new(self) -> int:
        return sum(1 for i in self.all_items if i.kind == "new")

    @property
    def updated(self) -> int:
        return sum(1 for i in self.all_items if i.kind == "updated")

    def __bool__(self) -> bool:
        return bool(self.items or self.unlisted)


MAX_HEADLINE = 300
MAX_OUTLET = 120
MAX_BUCKETS = 24  # a sparkline of 24 characters reads at a glance and keeps the HTML small
BAR_HEIGHT = 20  # px of the busiest bucket in the HTML bars


def spread(reports: Sequence[Report]) -> Spread:
    """Hourly buckets for an event spanning less than a day, daily (or wider) ones after that."""
    firsts: dict[str, datetime] = {}
    for r in sorted(reports, key=lambda r: r.published):
        firsts.setdefault(r.outlet, r.published)
    times = sorted(firsts.values())
    hour = timedelta(hours=1)
    start = times[0].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    span = times[-1] - start
    if span < timedelta(hours=MAX_BUCKETS):
        bucket = hour
    else:
        start = start.replace(hour=0)
        bucket = timedelta(days=(times[-1] - start) // timedelta(days=MAX_BUCKETS) + 1)
    counts = [0] * (int((times[-1] - start) / bucket) + 1)
    for t in times:
        counts[int((t - start) / bucket)] += 1
    return Spread(start=start, bucket=bucket, counts=tuple(counts))


def _fresh_follow_up(c: Candidate) -> Report | None:
    """The latest follow-up (by publication) that the reader has not seen with this cluster.

    Never carried: any follow-up. Carried before: one that joined after the digest that last
    carried the cluster was made; a follow-up that joined in the same second counts as seen
    (times are kept to the second), so no follow-up is shown twice. When that time is not
    known, none is new.
    """
    since = c.prior.carried if c.prior is not None else None
    if c.prior is not None and since is None:
        return None
    fresh = [r for r in c.reports if r.follow_up
             and (since is None or (r.joined is not None and r.joined > since))]
    return max(fresh, key=lambda r: (r.published, r.joined or r.published), default=None)


def _note(reports: Sequence[Report], follow_up: Report) -> FollowUpNote:
    before = [r.published for r in reports if r.published <= follow_up.published and r is not follow_up]
    days = (follow_up.published - max(before)).days if before else None
    return FollowUpNote(one_line(follow_up.title, MAX_HEADLINE) or "(no title)", days)


def _item(c: Candidate, kind: str, new_outlets: Sequence[str], follow_up: Report | None = None) -> DigestItem:
    reports = sorted(c.reports, key=lambda r: (r.published, r.outlet))
    outlets: dict[str, str | None] = {}
    for r in reports:
        name = one_line(r.outlet, MAX_OUTLET) or "?"
        if outlets.get(name) is None:  # the outlet's first report with a usable link
            outlets[name] = safe_url(r.link)
    headline = one_line(c.headline, MAX_HEADLINE) or one_line(reports[0].title, MAX_HEADLINE) or "(no title)"
    return DigestItem(
        cluster_id=c.cluster_id, kind=kind, headline=headline,
        outlets=tuple(OutletLink(n, link) for n, link in outlets.items()),
        new_outlets=tuple(one_line(o, MAX_OUTLET) for o in new_outlets), reports=len(reports),
        first_seen=reports[0].published, last_seen=reports[-1].published,
        terms=tuple(one_line(t, 60) for t in c.terms if one_line(t)), spread=spread(reports),
        follow_up=_note(reports, follow_up) if follow_up is not None else None)


def select_items(topic: TopicSettings, candidates: Iterable[Candidate], now: datetime, *,
                 max_items: int = 50, max_age: float | None = None) -> DigestPlan:
    """Decide a topic's digest: new clusters, grown ones as "updated", most outlets first.

    A cluster carried before comes back only when it has more outlets than when it was
    last carried, or a follow-up that joined after that digest was made (a station's own
    report of the trial adds no outlet, and is the news). Each item shows its latest
    unseen follow-up. `max_age` (seconds) drops clusters whose newest report is older.
    """
    chosen: list[DigestItem] = []
    for c in candidates:
        if not c.reports:
            continue
        outlets = list(dict.fromkeys(r.outlet for r in sorted(c.reports, key=lambda r: r.published)))
        if len(outlets) < topic.min_outlets:
            continue
        newest = max(r.published for r in c.reports)
        if max_age is not None and (now - newest).total_seconds() > max_age:
            continue
        follow_up = _fresh_follow_up(c)
        if c.prior is None:
            chosen.append(_item(c, "new", (), follow_up))
            continue
        fresh: list[str] = []
        if len(outlets) > c.prior.outlets:
            known = set(c.prior.outlet_names)
            # more outlets by count but none by name is a renamed feed, not news
            fresh = [o for o in outlets if o not in known] if known else outlets[c.prior.outlets:]
        if fresh or follow_up is not None:
            chosen.append(_item(c, "updated", fresh, follow_up))
    chosen.sort(key=lambda i: (-len(i.outlets), -i.last_seen.timestamp(), i.cluster_id))
    limit = max(1, max_items)
    return DigestPlan(topic=topic, items=tuple(chosen[:limit]), unlisted=tuple(chosen[limit:]))


def with_leads(plan: DigestPlan, leads: Mapping[int, str | None]) -> DigestPlan:
    """The plan with each listed item's lead (cluster id -> lead, None: it has none). Items under
    "+N more" are not shown, so they need none. A lead is one line and capped like the headline."""
    return replace(plan, items=tuple(
        replace(i, lead=one_line(leads.get(i.cluster_id) or "", MAX_LEAD) or None) for i in plan.items))


# -- the message --------------------------------------------------------------------------

MAX_SUBJECT = 150
MAX_LINKS = 15  # outlets listed with their link per item; the rest by name, to keep digests readable
_LEVELS = "▁▂▃▄▅▆▇█"
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def bars(counts: Sequence[int]) -> list[tuple[int, int]]:
    """HTML bar heights in px, one per bucket, with runs of empty buckets as one (0, n) gap.

    Gaps are collapsed because each bar costs about a hundred bytes of inline-styled
    markup, and Gmail clips messages over 102 KB.
    """
    top = max(counts, default=0) or 1
    out: list[tuple[int, int]] = []
    for n in counts:
        if n == 0 and out and out[-1][0] == 0:
            out[-1] = (0, out[-1][1] + 1)
        else:
            out.append((max(2, math.ceil(n / top * BAR_HEIGHT)) if n else 0, 1))
    return out


def sparkline(counts: Sequence[int]) -> str:
    """`▁▃█·▂`: one character per bucket scaled to the busiest; '·' marks a bucket with none."""
    top = max(counts, default=0)
    if not top:
        return ""
    return "".join("·" if n == 0 else _LEVELS[min(len(_LEVELS) - 1, math.ceil(n / top * len(_LEVELS)) - 1)]
                   for n in counts)


def follow_up_label(days: int | None) -> str:
    """'Follow-up, 261 days later', as `clusters show` counts them: whole days after the report before it."""
    if days is None:
        return "Follow-up"
    if days == 0:
        return "Follow-up, the same day"
    return f"Follow-up, {days} day{'' if days == 1 else 's'} later"


def subject(plan: DigestPlan) -> str:
    """'Platform regulation: 3 new events, 1 updated': one line, the title shortened to fit the cap."""
    parts = []
    if plan.new:
        parts.append(f"{plan.new} new event{'' if plan.new == 1 else 's'}")
    if plan.updated:
        parts.append(f"{plan.updated} updated")
    counts = ", ".join(parts) or "no events"
    title = one_line(plan.topic.title or plan.topic.name)
    room = MAX_SUBJECT - len(counts) - 2
    if len(title) > room:
        title = title[:max(1, room - 1)].rstrip() + "…"
    return f"{title}: {counts}"


def sender_domain(sender: str) -> str:
    address = email.utils.parseaddr(sender)[1]
    domain = address.rpartition("@")[2].strip().lower() if "@" in address else ""
    valid = 0 < len(domain) <= 200 and all(_LABEL.fullmatch(label) for label in domain.split("."))
    return domain if valid else "monitor.localhost"


def make_message_id(topic: str, sender: str, token: str | None = None) -> str:
    """`<digest-TOPIC-TOKEN@DOMAIN>`, made once when the digest is created and stored with it."""
    token = re.sub(r"[^A-Za-z0-9.-]", "", token or uuid.uuid4().hex[:20])
    name = re.sub(r"[^A-Za-z0-9_-]", "", topic)[:64] or "topic"
    return f"<digest-{name}-{token}@{sender_domain(sender)}>"


@cache
def _environments() -> tuple[Environment, Environment]:
    # imported to render only: commands that only read the database start faster
    from jinja2 import Environment, PackageLoader, StrictUndefined

    loader = PackageLoader("monitor.digests", "templates")
    html = Environment(loader=loader, autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True)
    text = Environment(loader=loader, autoescape=False, undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True)
    for env in (html, text):
        env.filters["sparkline"] = sparkline
        env.filters["bars"] = bars
    return html, text


def render(plan: DigestPlan, *, sender: str, recipients: Sequence[str], message_id: str, now: datetime,
           tz: str | tzinfo = "UTC") -> EmailMessage:
    """The digest as multipart/alternative: a plain-text part and an HTML part, no images.

    Every header value is either ours or passed through one_line(), and the header
    registry refuses CR/LF, so a feed title cannot add a header. Both parts are
    quoted-printable: 7-bit clean for any relay, and the sparkline survives.
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz

    def when(dt: datetime) -> str:
        local = dt.astimezone(zone)
        return local.strftime("%d %b %Y %H:%M").lstrip("0")

    topic = plan.topic
    title = one_line(topic.title or topic.name, 200)
    context = {
        "title": title, "topic": topic.name, "items": plan.items, "more": len(plan.unlisted),
        "new": [i for i in plan.items if i.kind == "new"],
        "updated": [i for i in plan.items if i.kind == "updated"],
        "when": when, "zone": getattr(zone, "key", str(zone)), "generated": when(now),
        "subject": subject(plan), "links": MAX_LINKS, "follow_up_label": follow_up_label,
    }
    html_env, text_env = _environments()
    msg = EmailMessage(policy=policy.default)
    msg["Subject"] = context["subject"]
    msg["From"] = one_line(sender)
    msg["To"] = ", ".join(recipients) if recipients else "undisclosed-recipients:;"
    msg["Date"] = email.utils.format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id
    phrase = re.sub(r'[<>"\\]', "", title)[:80]
    msg["List-Id"] = f"{phrase} <{re.sub(r'[^A-Za-z0-9_-]', '', topic.name)}.{sender_domain(sender)}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a digest
    msg.set_content(text_env.get_template("digest.txt").render(context), cte="quoted-printable")
    msg.add_alternative(html_env.get_template("digest.html").render(context), subtype="html",
                        cte="quoted-printable")
    return msg
