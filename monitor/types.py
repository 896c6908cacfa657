"""Frozen records passed between the pipeline's stages (fetch -> parse -> store -> cluster -> digest).

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
