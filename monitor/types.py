"""Frozen records passed between the pipeline's stages (fetch -> parse -> store -> cluster -> digest),
and the records Monitor answers the CLI with (feeds, clusters, search hits, status).

Records, not rows or dicts, cross module boundaries. Times are timezone-aware UTC datetimes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FeedSource:
    """A feed as an OPML outline or `feeds add` describes it, before it is stored."""

    url: str
    title: str | None = None  # outline title: the outlet's name
    category: str | None = None  # nested outline path, "World/Middle East"
    site_url: str | None = None  # htmlUrl


@dataclass(frozen=True)
class Feed:
    """A stored feed with its fetch state."""

    id: int
    url: str
    title: str | None  # outlet name from OPML, else the channel title
    category: str | None
    site_url: str | None
    etag: str | None  # validators from the last 200, for conditional GET
    last_modified: str | None
    last_polled: datetime | None
    last_status: int | None  # HTTP status of the last poll, None for transport errors
    last_error: str | None  # short reason of the last failed poll; None once a poll succeeds
    last_warning: str | None  # recoverable parse problem of the last good poll
    error_count: int  # consecutive failures, drives the backoff
    next_poll: datetime | None  # when the feed is due; None = due now
    disabled: bool  # 410 Gone or removed by an operator
    interval: float | None = None  # seconds; None = [polling] interval
    disabled_reason: str | None = None  # gone (410) | removed (operator)
    body_hash: str | None = None  # hash of the last body that parsed: identical bytes are not parsed again

    @property
    def outlet(self) -> str:
        return self.title or self.url


@dataclass(frozen=True)
class FetchResult:
    """What one HTTP fetch produced. `error` is set for every failure; nothing is raised."""

    url: str  # the URL asked for
    status: int | None  # final HTTP status; None when no response arrived
    body: bytes | None = None  # decoded body of a 200
    headers: Mapping[str, str] = field(default_factory=dict)  # final response headers, lower-case names
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # target of a 301/308 chain that passed the guard: store it
    final_url: str | None = None  # where the final response came from (base for relative links)
    retry_after: float | None = None  # seconds, from Retry-After (capped), for 429/503
    max_age: float | None = None  # seconds, from Cache-Control max-age
    error: str | None = None  # short reason code: timeout, too_large, blocked_address, http_500...
    detail: str = ""  # human detail for the error
    elapsed: float = 0.0  # seconds

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class EntryData:
    """One normalised feed entry, ready to store."""

    key: str  # identity within the feed: guid, else canonical link, else hash of title+summary
    guid: str  # the id as the feed gave it (link when the feed gave none)
    link: str | None  # canonical http(s) link
    title: str  # plain text
    summary_html: str  # sanitised HTML for display
    content_html: str  # sanitised full text (content:encoded / atom content), may be ""
    text: str  # plain text of summary or content, for matching and clustering
    author: str | None
    published: datetime  # UTC; fetch time when missing, unparseable or in the future
    updated: datetime | None
    content_hash: str  # changes when what we show changes: decides "updated"


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed document."""

    title: str | None
    link: str | None
    ttl: int | None  # minutes, RSS <ttl>
    entries: tuple[EntryData, ...]
    warning: str | None = None  # recoverable bozo reason, kept as the feed's last_warning


@dataclass(frozen=True)
class ClusterDoc:
    """What clustering needs to know about one stored entry."""

    entry_id: int
    feed_id: int
    outlet: str
    title: str
    text: str
    published: datetime


# -- what Monitor answers: records the CLI turns into tables or the JSON of design.md ----------
# The field order of each record is the key order of its JSON object (monitor.cli converts them
# one kind at a time); times are stored as written by iso() and come back unchanged.


@dataclass(frozen=True)
class FeedHealth:
    """One feed as `feeds list` shows it: its fetch state and how many entries it has stored."""

    url: str
    title: str | None
    category: str | None
    last_polled: datetime | None
    last_status: int | None  # HTTP status of the last poll; None for transport errors or never polled
    last_error: str | None  # short reason of the last failed poll; None once a poll succeeds
    last_warning: str | None
    error_count: int  # consecutive failures
    next_poll: datetime | None
    disabled: bool
    entries: int  # stored entries of this feed


@dataclass(frozen=True)
class EntrySummary:
    """A stored entry as cluster listings and search hits name it."""

    id: int
    guid: str  # the id as the feed gave it (link when the feed gave none)
    link: str | None
    title: str
    outlet: str  # the feed's title from OPML, else the channel title, else its URL
    feed_url: str
    published: datetime


@dataclass(frozen=True)
class JoinReason:
    """Why an entry joined its cluster: the member it matched best, how well and on what."""

    score: float | None
    matched_entry_id: int
    matched_title: str | None  # None when that entry is no longer a member
    shared_terms: tuple[str, ...]  # names and terms the two have in common
    time_gap_hours: float | None  # between the two reports, to a tenth of an hour
    reason: str = "similar"  # similar | syndicated | follow-up (shared names, past the window)
    also_matched: tuple[int, ...] = ()  # follow-up: other clusters it named (it joined one)


@dataclass(frozen=True)
class ClusterMember:
    """An entry of a shown cluster, with why it is there."""

    entry: EntrySummary
    why: JoinReason | None  # None: it started the cluster (or the entry it matched was purged)


@dataclass(frozen=True)
class TimelinePoint:
    """One period of a cluster's timeline (an hour, or a day when the event spans over 3 days)."""

    period: str  # "2016-11-16 09:00", or "2016-11-16" per day
    reports: int
    new_outlets: tuple[str, ...]  # outlets reporting the event for the first time in this period


@dataclass(frozen=True)
class ClusterSummary:
    """An event cluster as `clusters list` gives it."""

    id: int
    title: str  # the headline
    size: int  # entries
    outlets: tuple[str, ...]  # outlet names, by their first report
    first_published: datetime | None
    last_published: datetime | None
    last_activity: datetime  # when the cluster last gained an entry
    topics: tuple[str, ...]  # names of the topics it matched
    entries: tuple[EntrySummary, ...] | None  # in published order; None when not asked for (or none stored)


@dataclass(frozen=True)
class ClusterTopicMatch:
    """A topic a shown cluster matched, when it first did, and the terms that matched."""

    topic: str
    first_matched: datetime
    terms: tuple[str, ...]


@dataclass(frozen=True)
class ClusterDetail:
    """One cluster as `clusters show` gives it: members with why they joined, timeline, history."""

    cluster: ClusterSummary  # without entries: `members` has them
    members: tuple[ClusterMember, ...]  # in published order
    timeline: tuple[TimelinePoint, ...]
    merged_from: tuple[int, ...]  # ids of the clusters it absorbed, in merge order
    topic_matches: tuple[ClusterTopicMatch, ...]
    requested_id: int | None  # the id asked for when it was merged into this one, else None


@dataclass(frozen=True)
class ClusterHeadline:
    """A cluster named by its id and headline (None when the cluster row is gone)."""

    id: int
    title: str | None


@dataclass(frozen=True)
class SearchHit:
    """An entry that matched a full-text search, with the matched span and its cluster."""

    entry: EntrySummary
    snippet: str  # matched terms between [ and ]
    cluster: ClusterHeadline | None  # None until the entry is clustered


@dataclass(frozen=True)
class DatabaseInfo:
    path: str
    size: int  # bytes of the database file and its write-ahead log
    schema_version: int


@dataclass(frozen=True)
class FeedCounts:
    """Feeds by health; ok, failing, never_polled and due_now count active feeds only."""

    total: int
    active: int
    disabled: int
    ok: int
    failing: int
    never_polled: int
    due_now: int


@dataclass(frozen=True)
class CycleSummary:
    """A finished polling cycle as the cycles table records it."""

    started: datetime
    finished: datetime
    feeds: int
    fetched: int
    not_modified: int
    failed: int
    new_entries: int
    updated_entries: int
    error: str | None  # why the cycle failed, None when it completed


@dataclass(frozen=True)
class EntryCounts:
    total: int
    last_24h: int  # first seen in the last 24 hours


@dataclass(frozen=True)
class ClusterCounts:
    total: int  # live clusters (not merged into another)
    active_24h: int  # live clusters that gained an entry in the last 24 hours


@dataclass(frozen=True)
class OutboxCounts:
    pending: int  # digests of every channel: mail and chat
    failed: int
    sent: int
    chat_pending: int = 0  # of those, deliveries to chat and webhook destinations
    chat_failed: int = 0


@dataclass(frozen=True)
class SchedulerState:
    """What the daemon last recorded about itself."""

    state: str  # running | stopped | never started
    pid: int | None
    heartbeat: datetime | None  # when it last recorded its state: at start and after each cycle


@dataclass(frozen=True)
class ParserInfo:
    """Which feed parser the polls use: the fast reader replays feedparser's handlers as one
    release wrote them, and turns itself off under any other release."""

    feedparser: str  # the installed release
    fast_path: bool  # the fast reader is on
    verified: tuple[str, ...]  # the releases it was compared with
    compiled_text: bool = True  # white space in parsed text is collapsed compiled (feeds/_text.c)


@dataclass(frozen=True)
class Status:
    """The operator's health view (`monitor status`)."""

    database: DatabaseInfo
    feeds: FeedCounts
    last_cycle: CycleSummary | None  # the last finished cycle
    next_poll: datetime | None  # when the first active feed is due
    entries: EntryCounts
    clusters: ClusterCounts
    outbox: OutboxCounts
    scheduler: SchedulerState
    parser: ParserInfo
    compiled_search: bool  # clustering's index, search and reading run compiled (events: scan, reading)

    @property
    def last_poll(self) -> datetime | None:
        return self.last_cycle.finished if self.last_cycle else None
