"""One poll cycle as a pipeline: fetch (asyncio thread) -> parse (worker processes) -> store (this thread).

Fetching runs on its own thread with its own event loop, so slow servers never wait on
parsing or SQLite; parsing uses every core through the ParsePool; this thread is the one
writer, storing each feed's entries and state in one transaction as soon as its parse is
done. A failure of one feed becomes that feed's recorded error; it never stops the others.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import cast

from monitor.config import Settings
from monitor.errors import ParseError
from monitor.feeds.fetch import FetchJob, FetchPolicy, fetch_all
from monitor.feeds.parsepool import ParsePool
from monitor.feeds.schedule import FeedUpdate, PollPolicy, after_fetch
from monitor.logs import event, get_logger
from monitor.storage.database import Store
from monitor.types import EntryData, Feed, FetchResult, ParsedFeed

log = get_logger("poll")


class Stopped(Exception):
    """Raised inside the fetch callback to cancel outstanding fetches on shutdown."""


@dataclass
class FeedOutcome:
    """What happened to one feed in a cycle (for the report and the logs)."""

    feed: Feed
    status: int | None
    error: str | None = None
    detail: str = ""
    new: int = 0
    updated: int = 0


@dataclass
class CycleReport:
    feeds: int = 0
    fetched: int = 0
    not_modified: int = 0
    failed: int = 0
    new: int = 0
    updated: int = 0
    seconds: float = 0.0
    new_entry_ids: list[int] = field(default_factory=list)
    updated_entry_ids: list[int] = field(default_factory=list)
    outcomes: list[FeedOutcome] = field(default_factory=list)
    stopped: bool = False
    touched_clusters: set[int] = field(default_factory=set)
    topic_matches: list = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"fetched": self.fetched, "not_modified": self.not_modified, "failed": self.failed,
                "new": self.new, "updated": self.updated}


def fetch_policy(settings: Settings) -> FetchPolicy:
    p = settings.polling
    return FetchPolicy(user_agent=p.user_agent, timeout=p.timeout, connect_timeout=p.connect_timeout,
                       max_bytes=p.max_bytes, per_host=p.per_host, max_connections=p.max_connections,
                       allow_private_addresses=p.allow_private_addresses, allow_hosts=p.allow_hosts,
                       max_retry_after=p.max_interval)


def poll_policy(settings: Settings) -> PollPolicy:
    p = settings.polling
    return PollPolicy(interval=p.interval, min_interval=p.min_interval, max_interval=p.max_interval)


def run_cycle(store: Store, settings: Settings, feeds: list[Feed], clock: Callable[[], datetime], *,
              stop: threading.Event | None = None, progress: Callable[[FeedOutcome], None] | None = None,
              ) -> CycleReport:
    """Fetch, parse and store the given feeds. Returns the report; raises only if storing fails."""
    started = time.monotonic()
    report = CycleReport(feeds=len(feeds))
    if not feeds:
        return report
    stop = stop or threading.Event()
    by_id = {f.id: f for f in feeds}
    policy = poll_policy(settings)
    jobs = [FetchJob(key=f.id, url=f.url, etag=f.etag, last_modified=f.last_modified) for f in feeds]
    # feed id, its result, and when the result came: the poll's time, which orders two
    # overlapping polls of one feed (see Store.apply_poll), so not the later time of storing.
    results: queue.Queue[tuple[int, FetchResult, datetime] | None] = queue.Queue()
    fetch_failure: list[BaseException] = []

    def on_result(job: FetchJob, result: FetchResult) -> None:
        results.put((job.key, result, clock()))  # type: ignore[arg-type]
        if stop.is_set():
            raise Stopped

    def fetch_thread() -> None:
        try:
            fetch_all(jobs, fetch_policy(settings), clock(), on_result)
        except Stopped:
            pass
        except BaseException as exc:  # pragma: no cover - a bug in fetching must not hang the cycle
            fetch_failure.append(exc)
        finally:
            results.put(None)

    # feed id -> 200 result being parsed, its body hash, when it was fetched
    fetched: dict[int, tuple[FetchResult, str, datetime]] = {}

    def record(feed: Feed, result: FetchResult, update: FeedUpdate, now: datetime,
               entries: Iterable[EntryData] = (), detail: str = "", unchanged: bool = False) -> None:
        new_ids, updated_ids = store.apply_poll(feed, update, entries, now)
        outcome = FeedOutcome(feed, result.status, update.last_error if update.counts_as_error else None,
                              detail, len(new_ids), len(updated_ids))
        report.new_entry_ids += new_ids
        report.updated_entry_ids += updated_ids
        report.new += len(new_ids)
        report.updated += len(updated_ids)
        if update.counts_as_error:
            report.failed += 1
            event(log, "feed_failed", logging.WARNING, feed=feed.url, status=result.status,
                  reason=update.last_error, detail=detail or result.detail, errors=update.error_count)
        elif result.status == 304 or unchanged:
            report.not_modified += 1
        elif result.status == 200:
            report.fetched += 1
        else:  # 429/503: asked to slow down, not an error
            event(log, "feed_deferred", feed=feed.url, status=result.status,
                  until=update.next_poll.isoformat())
        report.outcomes.append(outcome)
        if progress:
            progress(outcome)

    thread = threading.Thread(target=fetch_thread, name="monitor-fetch", daemon=True)
    thread.start()
    workers = settings.polling.parse_workers or None
    # Workers start on the first 200: an all-304 cycle never pays for starting them.
    pool = ParsePool(workers, parse_timeout=settings.polling.parse_timeout,
                     max_entries=settings.polling.max_entries)
    with contextlib.closing(pool):
        fetching = True
        submitted = 0
        while fetching or submitted:
            try:
                item = results.get(timeout=0.05 if submitted else None)
                while True:
                    if item is None:
                        fetching = False
                    else:
                        feed_id, result, at = item
                        feed = by_id[feed_id]
                        digest = body_hash(result.body) if result.ok and result.body is not None else None
                        if digest is not None and digest == feed.body_hash:
                            # Same bytes as the last good parse (a server without validators):
                            # nothing can have changed, so it is not parsed again.
                            record(feed, result, after_fetch(feed, result, at, policy), at, unchanged=True)
                        elif digest is not None and result.body is not None:  # a digest implies a body
                            fetched[feed_id] = (result, digest, at)
                            pool.submit(feed_id, result.body, result.headers, at,
                                        base_url=result.final_url or feed.url)
                            submitted += 1
                        else:
                            update = after_fetch(feed, result, at, policy)
                            record(feed, result, update, at, detail=result.detail)
                    item = results.get_nowait()
            except queue.Empty:
                pass
            for key, outcome in pool.results(wait_at_most=0.05):
                submitted -= 1
                feed_id = cast(int, key)  # the pool hands back the keys it was given
                feed, (result, digest, at) = by_id[feed_id], fetched.pop(feed_id)
                if isinstance(outcome, ParseError):
                    update = after_fetch(feed, result, at, policy, parse_error=outcome.reason)
                    record(feed, result, update, at, detail=outcome.detail)
                else:
                    update = replace(_parsed_update(feed, result, outcome, at, policy), body_hash=digest)
                    record(feed, result, update, at, outcome.entries)
                if not results.empty():
                    break  # hand fresh fetch results to idle workers before storing more
    thread.join(timeout=5)
    if fetch_failure:
        raise fetch_failure[0]
    report.stopped = stop.is_set()
    report.seconds = time.monotonic() - started
    return report


def body_hash(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _parsed_update(feed: Feed, result: FetchResult, parsed: ParsedFeed, now: datetime,
                   policy: PollPolicy) -> FeedUpdate:
    return after_fetch(feed, result, now, policy, ttl_minutes=parsed.ttl, warning=parsed.warning,
                       channel_title=parsed.title, site_url=parsed.link)
