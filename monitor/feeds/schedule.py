"""Pure polling decisions: what a fetch outcome means for a feed's state and its next poll.

Nothing here reads the clock or touches I/O: `now` and the fetch result come in, a
FeedUpdate intent goes out, and the store applies it. Politeness lives here:
- success (200 or 304) resets the error count; Cache-Control max-age or RSS <ttl> may
  stretch the interval (never shorten it), within [min_interval, max_interval];
- 429/503 wait for Retry-After (or the interval) and do not count as errors: the server
  is alive and asked us to slow down;
- 410 Gone disables the feed;
- every other failure backs off exponentially (interval * 2^(n-1), capped), with a
  deterministic jitter of +-10% so feeds that failed together do not retry in lockstep.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.errors import FailureReason, http_reason
from monitor.types import Feed, FetchResult

JITTER = 0.10
SLOW_DOWN = (429, 503)


@dataclass(frozen=True)
class PollPolicy:
    interval: float = 900.0
    min_interval: float = 300.0
    max_interval: float = 86400.0


@dataclass(frozen=True)
class FeedUpdate:
    """How a feed's stored state changes after one poll."""

    last_status: int | None
    last_error: str | None  # a FailureReason or http_NNN; None = success
    error_count: int
    next_poll: datetime
    etag: str | None
    last_modified: str | None
    disabled_reason: str | None = None  # "gone" when the feed answered 410
    new_url: str | None = None  # permanent redirect target
    warning: str | None = None
    channel_title: str | None = None
    site_url: str | None = None
    counts_as_error: bool = False
    body_hash: str | None = None  # set after a body parsed: the next identical body is skipped


def jitter(feed_id: int, attempt: int) -> float:
    """A factor in [1 - JITTER, 1 + JITTER], stable for a feed and attempt (testable, no RNG)."""
    digest = hashlib.blake2b(f"{feed_id}:{attempt}".encode(), digest_size=4).digest()
    fraction = int.from_bytes(digest, "big") / 0xFFFFFFFF
    return 1 - JITTER + 2 * JITTER * fraction


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))


def base_interval(feed: Feed, policy: PollPolicy) -> float:
    return feed.interval or policy.interval


def success_interval(feed: Feed, policy: PollPolicy, max_age: float | None, ttl_minutes: int | None) -> float:
    """The interval after a good poll: hints from the server stretch it within bounds."""
    interval = base_interval(feed, policy)
    hints = [h for h in (max_age, (ttl_minutes or 0) * 60) if h]
    if hints:
        interval = max(interval, min(max(hints), policy.max_interval))
    return clamp(interval, min(policy.min_interval, interval), policy.max_interval)


def backoff_interval(feed: Feed, policy: PollPolicy, error_count: int) -> float:
    base = base_interval(feed, policy)
    delay = min(base * 2 ** max(error_count - 1, 0), policy.max_interval)
    return delay * jitter(feed.id, error_count)


def after_fetch(feed: Feed, result: FetchResult, now: datetime, policy: PollPolicy, *,
                parse_error: str | None = None, ttl_minutes: int | None = None,
                warning: str | None = None, channel_title: str | None = None,
                site_url: str | None = None) -> FeedUpdate:
    """Decide the feed's new state from a fetch result (and the parse outcome of a 200)."""
    etag = result.etag if result.status == 200 else feed.etag
    last_modified = result.last_modified if result.status == 200 else feed.last_modified
    if result.status == 304 and (result.etag or result.last_modified):
        etag, last_modified = result.etag or feed.etag, result.last_modified or feed.last_modified
    new_url = result.permanent_url if result.permanent_url and result.permanent_url != feed.url else None
    ok = result.error is None and result.status in (200, 304) and parse_error is None
    if ok:
        interval = success_interval(feed, policy, result.max_age, ttl_minutes)
        return FeedUpdate(result.status, None, 0, now + timedelta(seconds=interval), etag, last_modified,
                          new_url=new_url, warning=warning, channel_title=channel_title, site_url=site_url)
    if result.status == 410:
        return FeedUpdate(410, FailureReason.GONE, feed.error_count + 1,
                          now + timedelta(seconds=policy.max_interval), feed.etag, feed.last_modified,
                          disabled_reason=FailureReason.GONE, counts_as_error=True)
    if result.status in SLOW_DOWN:
        wait = result.retry_after if result.retry_after is not None else base_interval(feed, policy)
        wait = clamp(wait, 1.0, policy.max_interval)
        return FeedUpdate(result.status, result.error or http_reason(result.status), feed.error_count,
                          now + timedelta(seconds=wait), feed.etag, feed.last_modified)
    errors = feed.error_count + 1
    reason = parse_error or result.error or http_reason(result.status)
    if parse_error and result.status == 200:
        # The body was fetched but is unusable: keep the old validators so an unchanged
        # broken body is not answered with 304 and mistaken for "nothing new".
        etag, last_modified = feed.etag, feed.last_modified
    retry = now + timedelta(seconds=backoff_interval(feed, policy, errors))
    return FeedUpdate(result.status, reason, errors, retry, etag, last_modified, counts_as_error=True)


def is_due(feed: Feed, now: datetime) -> bool:
    return not feed.disabled and (feed.next_poll is None or feed.next_poll <= now)
