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
from typing import NamedTuple, cast

from monitor.config import Settings
from monitor.errors import ParseError
from monitor.feeds.fetch import FetchJob, FetchPolicy, fetch_all
from monitor.feeds.parsepool import ParsePool
from monitor.feeds.schedule import FeedUpdate, PollPolicy, after_fetch
from monitor.logs import event, get_logger
from monitor.storage.database import Store
from monitor.types import EntryData, Feed, FetchResult, ParsedFeed

log = get_logger("poll")
# How long the storing thread waits for a fetch result while parses run, or for a parse outcome
# while fetches may bring more: short, so that neither kind of result waits long behind the other.
_TICK = 0.05
# With nothing being parsed, how long the storing thread lets fetch results gather after the
# first one arrives before it takes them all: handed over and stored one by one, each of an
# all-304 cycle's results made the fetching thread and this one take turns with the
# interpreter lock, about a third of that cycle's time.
_GATHER = 0.005


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
              on_stored: Callable[[list[int]], None] | None = None) -> CycleReport:
    """Fetch, parse and store the given feeds. Returns the report; raises only if storing fails.

    `stop` ends fetching at the next result; what was fetched by then is still parsed and stored.
    `on_stored(ids)` is called with the ids of each feed's new entries once they are committed.
    """
    started = time.monotonic()
    report = CycleReport(feeds=len(feeds))
    if not feeds:
        return report
    cycle = _Cycle(store, settings, feeds, clock, stop or threading.Event(), report, progress, on_stored)
    fetcher = threading.Thread(target=cycle.fetch, name="monitor-fetch", daemon=True)
    fetcher.start()
    with contextlib.closing(cycle.pool):
        while cycle.fetching or cycle.parsing:
            cycle.take_fetched()  # store what needs no parse; hand new bodies to the parse pool
            cycle.store_parsed()  # store parse outcomes, until fresh fetch results are waiting
    fetcher.join(timeout=5)
    if cycle.fetch_failure is not None:
        raise cycle.fetch_failure
    report.stopped = cycle.stop.is_set()
    report.seconds = time.monotonic() - started
    return report


class _Fetched(NamedTuple):
    """One fetch result, as the fetch thread hands it over."""

    feed_id: int
    result: FetchResult
    # When the result came: the poll's time, which orders two overlapping polls of one feed
    # (see Store.apply_poll), so not the later time of storing.
    at: datetime


class _NoEntries(NamedTuple):
    """A fetch result that brings no entries: stored with the others taken at the same time."""

    feed: Feed
    result: FetchResult
    update: FeedUpdate
    at: datetime  # as in _Fetched
    unchanged: bool  # the same body as the last good parse (else a failure, a 304, or a 429/503)


class _Parsing(NamedTuple):
    """A 200 whose body is in the parse pool."""

    result: FetchResult
    digest: str  # body_hash of the body, stored once it parsed
    at: datetime  # as in _Fetched


class _Cycle:
    """The state of one cycle, and its steps; run_cycle drives them.

    `fetch` runs on the fetch thread and changes nothing but `arrived` and `fetch_failure`;
    every other method runs on the calling thread, the one writer.
    """

    def __init__(self, store: Store, settings: Settings, feeds: list[Feed], clock: Callable[[], datetime],
                 stop: threading.Event, report: CycleReport,
                 progress: Callable[[FeedOutcome], None] | None,
                 on_stored: Callable[[list[int]], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.feeds = {f.id: f for f in feeds}
        self.jobs = [FetchJob(key=f.id, url=f.url, etag=f.etag, last_modified=f.last_modified) for f in feeds]
        self.clock = clock
        self.stop = stop
        self.report = report
        self.progress = progress
        self.on_stored = on_stored
        self.policy = poll_policy(settings)
        polling = settings.polling
        # Workers start on the first 200: an all-304 cycle never pays for starting them.
        self.pool = ParsePool(polling.parse_workers or None, parse_timeout=polling.parse_timeout,
                              max_entries=polling.max_entries)
        self.arrived: queue.Queue[_Fetched | None] = queue.Queue()  # None: the fetch thread is done
        self.fetching = True  # until that None is taken
        self.parsing: dict[int, _Parsing] = {}  # feed id -> its body in the parse pool
        self.no_entries: list[_NoEntries] = []  # taken results that bring no entries, to store together
        self.fetch_failure: BaseException | None = None

    # -- fetch (the fetch thread) ---------------------------------------------------------------

    def fetch(self) -> None:
        """Fetch every feed, queueing each result as it completes, then None."""
        try:
            fetch_all(self.jobs, fetch_policy(self.settings), self.clock(), self._fetched)
        except Stopped:
            pass
        except BaseException as exc:  # pragma: no cover - a bug in fetching must not hang the cycle
            self.fetch_failure = exc
        finally:
            self.arrived.put(None)

    def _fetched(self, job: FetchJob, result: FetchResult) -> None:
        self.arrived.put(_Fetched(cast(int, job.key), result, self.clock()))
        if self.stop.is_set():
            raise Stopped  # cancels the fetches still running

    # -- then parse and store (the calling thread) ----------------------------------------------

    def take_fetched(self) -> None:
        """Take every fetch result that has arrived, waiting for the first; store those that
        bring no entries together.

        With nothing being parsed only a fetch result can come next, so the wait has no limit,
        and more results are let gather for _GATHER; otherwise the wait is at most _TICK, as
        parse outcomes wait to be stored too.
        """
        try:
            with contextlib.suppress(queue.Empty):  # ends the loop once nothing more has arrived
                self._route(self.arrived.get(timeout=_TICK if self.parsing else None))
                if not self.parsing and self.fetching:
                    time.sleep(_GATHER)
                while True:
                    self._route(self.arrived.get_nowait())
        finally:
            self._record_no_entries()

    def _route(self, item: _Fetched | None) -> None:
        """Queue a result that has nothing to parse for storing (see _record_no_entries); hand a
        new body to the parse pool."""
        if item is None:
            self.fetching = False
            return
        feed, result, at = self.feeds[item.feed_id], item.result, item.at
        body = result.body if result.ok else None
        if body is not None:
            digest = body_hash(body)
            if digest != feed.body_hash:
                self.parsing[item.feed_id] = _Parsing(result, digest, at)
                self.pool.submit(item.feed_id, body, result.headers, at,
                                 base_url=result.final_url or feed.url)
                return
        # A failure, a 304, a 429/503 asking us to slow down, or the same bytes as the last good
        # parse (a server without validators: nothing can have changed, so they are not parsed again).
        update = after_fetch(feed, result, at, self.policy)
        self.no_entries.append(_NoEntries(feed, result, update, at, unchanged=body is not None))

    def store_parsed(self) -> None:
        """Store parse outcomes as they finish; return once fresh fetch results are waiting, or
        when none finishes within _TICK."""
        for key, outcome in self.pool.results(wait_at_most=_TICK):
            feed_id = cast(int, key)  # the pool hands back the keys it was given
            feed, (result, digest, at) = self.feeds[feed_id], self.parsing.pop(feed_id)
            if isinstance(outcome, ParseError):
                update = after_fetch(feed, result, at, self.policy, parse_error=outcome.reason)
                self._record(feed, result, update, at, detail=outcome.detail)
            else:
                update = replace(_parsed_update(feed, result, outcome, at, self.policy), body_hash=digest)
                self._record(feed, result, update, at, outcome.entries)
            if not self.arrived.empty():
                return  # hand fresh fetch results to idle workers before storing more

    def _record_no_entries(self) -> None:
        """Store the taken results that bring no entries, in one transaction, then count them."""
        if self.no_entries:
            taken, self.no_entries = self.no_entries, []
            self.store.apply_polls([(r.feed, r.update, r.at) for r in taken])
            for r in taken:
                detail = "" if r.unchanged else r.result.detail
                self._count(r.feed, r.result, r.update, [], [], detail, r.unchanged)

    def _record(self, feed: Feed, result: FetchResult, update: FeedUpdate, now: datetime,
                entries: Iterable[EntryData] = (), detail: str = "") -> None:
        """Store one feed's poll in one transaction, then count it in the report."""
        new_ids, updated_ids = self.store.apply_poll(feed, update, entries, now)
        if new_ids and self.on_stored:
            self.on_stored(new_ids)
        self._count(feed, result, update, new_ids, updated_ids, detail)

    def _count(self, feed: Feed, result: FetchResult, update: FeedUpdate, new_ids: list[int],
               updated_ids: list[int], detail: str, unchanged: bool = False) -> None:
        """Count a stored poll in the report, log it if it failed, and tell `progress`."""
        outcome = FeedOutcome(feed, result.status, update.last_error if update.counts_as_error else None,
                              detail, len(new_ids), len(updated_ids))
        report = self.report
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
        if self.progress:
            self.progress(outcome)


def body_hash(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _parsed_update(feed: Feed, result: FetchResult, parsed: ParsedFeed, now: datetime,
                   policy: PollPolicy) -> FeedUpdate:
    return after_fetch(feed, result, now, policy, ttl_minutes=parsed.ttl, warning=parsed.warning,
                       channel_title=parsed.title, site_url=parsed.link)
