"""Monitor: the one place where pure decisions meet I/O. The CLI and the daemon are thin shells over it."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from monitor.config import EXAMPLE_CONFIG, Settings, TopicSettings, load_settings, parse_duration
from monitor.digests import topics
from monitor.errors import ConfigError, MonitorError, OpmlError, StorageError
from monitor.feeds.guard import check_url
from monitor.feeds.schedule import is_due
from monitor.logs import event, get_logger
from monitor.storage import clusters, service
from monitor.storage.database import Store, open_store
from monitor.types import (
    ClusterDetail,
    ClusterSummary,
    DatabaseInfo,
    Feed,
    FeedCounts,
    FeedHealth,
    FeedSource,
    ParserInfo,
    SearchHit,
    Status,
)

log = get_logger("cluster")

if TYPE_CHECKING:
    from monitor.digests import mailer, outbox
    from monitor.digests.notifier import ChatTransport
    from monitor.events.clusterer import ClusterConfig, Clusterer
    from monitor.events.headlines import Affixes
    from monitor.events.weighpool import ReadAhead
    from monitor.feeds.cycle import CycleReport, FeedOutcome
    from monitor.feeds.opml import OpmlImport

# The machinery of polling, clustering and digests is imported by the operations that use it:
# a command that only reads the database (clusters list, search) starts in half the time.

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Monitor:
    """Settings + store + clock. Methods are the operations the CLI and daemon offer."""

    def __init__(self, settings: Settings, store: Store, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._clusterer: Clusterer | None = None
        self._clusterer_mark: clusters.AssignmentsMark | None = None  # the database state its memory matches
        self._transport: mailer.Transport | None = None
        self._chat: ChatTransport | None = None
        self._destinations_checked = False

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- feeds ----------------------------------------------------------------------------

    def import_opml(self, data: bytes) -> tuple[dict[str, int], OpmlImport]:
        from monitor.feeds.opml import parse_opml  # imported by the commands that read OPML

        parsed = parse_opml(data)
        counts = self.store.upsert_feeds(parsed.sources, self.clock())
        return counts, parsed

    def import_opml_file(self, path: str) -> tuple[dict[str, int], OpmlImport]:
        try:
            with open(path, "rb") as fh:
                data = fh.read(20_000_001)
        except OSError as exc:
            raise OpmlError(f"cannot read {path}: {exc.strerror}") from None
        return self.import_opml(data)

    def sync_feeds(self) -> tuple[str, dict[str, int], int] | None:
        """Import the configured OPML (or ./feeds.opml) at daemon start; None when there is none."""
        path = self.settings.feeds or ("feeds.opml" if os.path.exists("feeds.opml") else "")
        if not path:
            return None
        counts, parsed = self.import_opml_file(path)
        return path, counts, len(parsed.rejected)

    def export_opml(self) -> bytes:
        feeds = [FeedSource(url=f.url, title=f.title, category=f.category, site_url=f.site_url)
                 for f in self.store.feeds() if f.disabled_reason != "removed"]
        from monitor.feeds.opml import write_opml

        return write_opml(feeds, now=self.clock())

    def add_feed(self, url: str, title: str | None = None, category: str | None = None) -> str:
        url = url.strip()
        problem = check_url(url)
        if problem:
            raise MonitorError(f"refused feed URL {url!r}: {problem.detail}")
        return self.store.add_feed(FeedSource(url=url, title=title, category=category), self.clock())

    def remove_feed(self, url: str) -> bool:
        return self.store.remove_feed(url.strip())

    def feeds(self) -> list[Feed]:
        return self.store.feeds()

    def status(self) -> Status:
        """The operator's health view (`monitor status`)."""
        now = self.clock()
        st = self.store
        day_ago = now - timedelta(hours=24)
        with st.read():
            feeds = st.feeds()
            active = [f for f in feeds if not f.disabled]
            return Status(
                database=DatabaseInfo(path=self.settings.database, size=_db_bytes(self.settings.database),
                                      schema_version=st.schema_version()),
                feeds=FeedCounts(total=len(feeds), active=len(active), disabled=len(feeds) - len(active),
                                 ok=sum(1 for f in active if f.last_error is None and f.last_polled),
                                 failing=sum(1 for f in active if f.last_error is not None),
                                 never_polled=sum(1 for f in active if f.last_polled is None),
                                 due_now=sum(1 for f in active if is_due(f, now))),
                last_cycle=service.last_cycle(st),
                next_poll=min((f.next_poll or now for f in active), default=None),
                entries=service.entry_counts(st, day_ago),
                clusters=clusters.cluster_counts(st, day_ago),
                outbox=service.outbox_counts(st),
                scheduler=service.scheduler_state(st),
                parser=_parser_info(),
                compiled_search=compiled_search(),
            )

    # -- the cycle --------------------------------------------------------------------------

    def poll(self, *, all_feeds: bool = False, stop: threading.Event | None = None,
             progress: Callable[[FeedOutcome], None] | None = None,
             on_start: Callable[[int], None] | None = None,
             on_cluster_start: Callable[[int], None] | None = None,
             on_clustered: Callable[[int], None] | None = None) -> CycleReport:
        """One cycle: fetch the due feeds (or all), parse, store, cluster, match topics.
        `monitor poll` and the daemon call this.

        Progress, for a person watching: `on_start(feeds)` and `progress(outcome)` per feed
        stored; then, when there are entries to cluster, `on_cluster_start(entries)` and
        `on_clustered(done)` as the clusterer decides them (see cluster_pending)."""
        now = self.clock()
        from monitor.feeds.cycle import run_cycle

        feeds = self.store.due_feeds(now, all_feeds=all_feeds)
        if on_start:
            on_start(len(feeds))
        cycle_id = self.store.start_cycle(now, len(feeds))
        ahead = _ReadingAhead(self.store, self._clusterer)
        try:
            report = run_cycle(self.store, self.settings, feeds, self.clock, stop=stop, progress=progress,
                               on_stored=ahead.stored if ahead.wanted else None)
        except BaseException as exc:
            ahead.close()
            self.store.finish_cycle(cycle_id, self.clock(), {}, error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        try:
            # One transaction from reading the unclustered entries to recording topic matches:
            # a cycle matches only the clusters it touched, so clusters committed without their
            # matches (a crash or a failed write in between) would never reach a digest; and
            # another writer cannot cluster the same entries meanwhile.
            with self.store.write():
                report.touched_clusters = self.cluster_pending(on_start=on_cluster_start,
                                                               progress=on_clustered, ahead=ahead.reader)
                report.topic_matches = topics.match_clusters(self.store, self.settings.topics,
                                                             report.touched_clusters, self.clock())
        except BaseException as exc:
            self._clusterer = None  # its memory may hold assignments that were rolled back
            self.store.finish_cycle(cycle_id, self.clock(), report.counts(),
                                    error=f"cluster/match: {type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            ahead.close()  # unless clustering took its worker
        self.store.finish_cycle(cycle_id, self.clock(), report.counts())
        return report

    # -- topics and digests ------------------------------------------------------------------

    def topic(self, name: str) -> TopicSettings:
        for t in self.settings.topics:
            if t.name == name:
                return t
        raise MonitorError(f"no topic named {name!r} (configured: "
                           f"{', '.join(t.name for t in self.settings.topics) or 'none'})")

    def topic_summaries(self) -> list:
        return topics.topic_summaries(self.store, self.settings.topics)

    def test_topic(self, name: str, since: str = "7d") -> list:
        window = None if since == "all" else timedelta(seconds=self._since(since))
        return topics.test_topic(self.store, self.topic(name), window, self.clock())

    def preview_digests(self, topic: str | None = None) -> list:
        if topic:
            self.topic(topic)
        self.check_destinations()
        from monitor.digests import outbox

        return outbox.preview(self.store, self.settings, self.clock(), topic)

    def transport(self) -> mailer.Transport:
        if self._transport is None:
            from monitor.digests import mailer

            self._transport = mailer.transport_for(self.settings)
        return self._transport

    def check_destinations(self) -> None:
        """Refuse chat URLs Apprise cannot load (ConfigError naming the topic). Once per Monitor: its
        settings do not change, and the daemon sends digests every minute."""
        if not self._destinations_checked:
            topics.validate_destinations(self.settings.topics)
            self._destinations_checked = True

    def chat_transport(self) -> ChatTransport:
        if self._chat is None:
            from monitor.digests.notifier import AppriseTransport  # Apprise loads only to send chat

            self._chat = AppriseTransport()
        return self._chat

    def destinations(self) -> dict[str, str]:
        """Chat channel (as stored with its digests) -> the destination's URL, from the config."""
        from monitor.digests.chat import destination_key

        return {destination_key(url): url for t in self.settings.topics for url in t.notify}

    def send_digests(self, topic: str | None = None) -> tuple[list[int], outbox.SendReport]:
        """Queue the digests that are due (committed before any network I/O), then send the outbox:
        mail over SMTP (or to the maildir), chat and webhooks through Apprise."""
        if topic:
            self.topic(topic)
        from monitor.digests import outbox

        transport = self.transport()
        self.check_destinations()
        created = outbox.create_digests(self.store, self.settings, self.clock(), topic)
        destinations = self.destinations()
        chat = self.chat_transport() if destinations else None  # none: waiting chat digests fail
        return created, outbox.send_pending(self.store, transport, self.clock(), topic=topic, chat=chat,
                                            destinations=destinations)

    # -- clustering -----------------------------------------------------------------------

    def cluster_config(self) -> ClusterConfig:
        from monitor.events.clusterer import ClusterConfig

        c = self.settings.clustering
        return ClusterConfig(window=timedelta(seconds=c.window),
                             follow_up_window=timedelta(seconds=c.follow_up_window))

    def _clusterer_for(self, docs: list) -> Clusterer:
        """The in-memory clusterer, rebuilt from stored assignments when another process changed them."""
        if self._clusterer is not None and self._clusterer_mark == clusters.assignments_mark(self.store):
            return self._clusterer
        from monitor.events.clusterer import Clusterer, collection_paused

        clusterer = Clusterer(self.cluster_config(), next_cluster_id=clusters.next_cluster_id(self.store))
        with collection_paused():
            clusters.restore(self.store, clusterer, min(d.published for d in docs))
        self._clusterer = clusterer
        return clusterer

    def cluster_pending(self, *, on_start: Callable[[int], None] | None = None,
                        progress: Callable[[int], None] | None = None,
                        ahead: ReadAhead | None = None) -> set[int]:
        """Cluster every entry that has no cluster yet, in published order, and add the text
        of new entries to the full-text index. Returns touched cluster ids.

        `on_start(n)` is called once there are n entries to cluster (not at all when there are
        none), before the clusterer is restored from stored history, which is part of the stage;
        `progress(done)` with how many of them are decided so far. `ahead`: a worker that read
        entries as the cycle stored them (see _ReadingAhead)."""
        docs = clusters.unclustered(self.store)
        if not docs:
            self.store.index_pending_text()
            return set()
        if on_start:
            on_start(len(docs))
        clusterer = self._clusterer_for(docs)
        from monitor.events.clusterer import collection_paused

        furniture: dict[int, Affixes] = {}
        shown: dict[int, clusters.Shown] = {}

        def alongside() -> None:
            self.store.index_pending_text()
            clusters.learn_headlines(self.store, docs, furniture, shown)

        try:
            # The index is written, and what the headlines need of the entries made (their feeds'
            # title furniture, their titles as shown), on another thread while the clusterer
            # decides (SQLite releases the GIL, and the deciding waits for its weighing worker);
            # the connection is not used here until that thread is done.
            with collection_paused(), _alongside(alongside):
                decisions = clusters.decide(clusterer, docs, progress=progress, ahead=ahead)
            touched = clusters.apply(self.store, decisions, self.clock(), furniture, shown)
        except BaseException:
            self._clusterer = None  # memory may be ahead of the database: rebuild next time
            raise
        self._clusterer_mark = clusters.assignments_mark(self.store)
        return touched

    def apply_retention(self) -> int:
        """Delete entries older than `[retention] entries`; nothing when it is not set."""
        keep = self.settings.retention.entries
        if not keep:
            return 0
        now = self.clock()
        deleted = clusters.purge(self.store, now - timedelta(seconds=keep), now)
        if deleted:
            self._clusterer = None
        return deleted

    def recluster(self, since: str = "all", *, on_start: Callable[[int | None], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Rebuild cluster assignments of entries published since (after a configuration change).

        `on_start(n)` is called first with how many entries will be decided (every stored entry
        for "all"; None for a cutoff, whose count only the rebuild learns), `progress(done)` with
        how many are decided so far."""
        cutoff = None if since == "all" else self.clock() - timedelta(seconds=self._since(since))
        if on_start:
            on_start(service.entry_counts(self.store, self.clock()).total if cutoff is None else None)
        self._clusterer = None
        self.store.index_pending_text()
        from monitor.events.clusterer import Clusterer, collection_paused

        with collection_paused():
            return clusters.rebuild(self.store,
                                    lambda first: Clusterer(self.cluster_config(), next_cluster_id=first),
                                    cutoff, self.clock(), progress=progress)

    def clusters(self, *, since: str = "7d", topic: str | None = None, min_size: int = 1,
                 min_outlets: int = 1, limit: int | None = None) -> list[ClusterSummary]:
        cutoff = None if since == "all" else self.clock() - timedelta(seconds=self._since(since))
        if topic and topic not in {t.name for t in self.settings.topics}:
            raise MonitorError(f"unknown topic {topic!r} (configured: "
                               f"{', '.join(t.name for t in self.settings.topics) or 'none'})")
        return clusters.list_clusters(self.store, since=cutoff, topic=topic, min_size=min_size,
                                      min_outlets=min_outlets, limit=limit)

    @staticmethod
    def _since(value: str) -> float:
        try:
            return parse_duration(value, "--since")
        except ConfigError as exc:
            raise MonitorError(f"{exc} (or 'all')") from None

    def cluster(self, cluster_id: int) -> ClusterDetail:
        record = clusters.show_cluster(self.store, cluster_id)
        if record is None:
            raise MonitorError(f"no cluster {cluster_id}")
        return record

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        try:
            return clusters.search(self.store, query, limit)
        except StorageError as exc:
            raise MonitorError(f"bad search query {query!r}: {str(exc).split(': ')[-1]}") from None

    def feed_health(self) -> list[FeedHealth]:
        """Every feed with its fetch state and stored entries (`feeds list`)."""
        counts = self.store.feed_entry_counts()
        return [FeedHealth(url=f.url, title=f.title, category=f.category, last_polled=f.last_polled,
                           last_status=f.last_status, last_error=f.last_error, last_warning=f.last_warning,
                           error_count=f.error_count, next_poll=f.next_poll, disabled=f.disabled,
                           entries=counts.get(f.id, 0))
                for f in self.store.feeds()]


def compiled_search() -> bool:
    """Whether clustering's index, search and reading run compiled (built at install with a C compiler)."""
    from monitor.events import reading, scan

    return scan.COMPILED and reading.COMPILED


def _parser_info() -> ParserInfo:
    from monitor.feeds.parse import parser_info

    return parser_info()


def _db_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


class _ReadingAhead:
    """A cycle's new entries, sent to a weighing worker as they are stored once there are many
    (weighpool.ReadAhead): it reads them while the cycle fetches and parses, so clustering,
    which must wait for the cycle, only weighs and decides.

    Not when there is a single core, nor when a worker already holds the clusterer's statistics
    from the last run (the daemon after a large run): it goes on with them instead. A worker
    that cannot start, or entries that cannot be read back, are a log line; clustering then
    reads as it would have.
    """

    def __init__(self, store: Store, clusterer: Clusterer | None) -> None:
        self.store = store
        self.reader: ReadAhead | None = None
        self.wanted = clusterer is None or clusterer.weigher.holder is None
        self.pending: list[int] = []

    def stored(self, ids: list[int]) -> None:
        """The cycle's hook: `ids` were just committed. Reading ahead only saves time, so a
        failure here is a log line and the end of it, never the cycle's."""
        if not self.wanted:
            return
        try:
            self._send(ids)
        except Exception as exc:
            self.wanted = False
            self.close()
            event(log, "read_ahead_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")

    def _send(self, ids: list[int]) -> None:
        from monitor.events import weighpool  # clustering will import it anyway: there are new entries

        if self.reader is None:
            self.pending += ids
            if len(self.pending) < weighpool.AHEAD_FROM:
                return
            ids, self.pending = self.pending, []
            if not weighpool.workers_available():
                self.wanted = False
                return
            self.reader = weighpool.ReadAhead()
        if self.reader.sent < weighpool.AHEAD_MAX:
            self.reader.add(clusters.docs_of(self.store, ids))

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


@contextlib.contextmanager
def _alongside(work: Callable[[], object]) -> Iterator[None]:
    """Run `work` on a thread while the block runs; wait for it at the end and raise what it raised."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="monitor-index", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failure:
        raise failure[0]


def open_monitor(config: str | None = None, db: str | None = None, *, create: bool = True,
                 clock: Clock = utcnow, on_upgrade: Callable[[int, int], object] | None = None) -> Monitor:
    """Load and validate settings, open (and if needed migrate: `on_upgrade(from, to)` first) the store."""
    settings = load_settings(config, db)
    store = open_store(settings.database, create=create, busy_timeout=settings.busy_timeout,
                       on_upgrade=on_upgrade)
    try:
        # Topic queries are checked by FTS5 itself at start-up: a bad one names its topic.
        topics.validate_topics(store, settings.topics)
    except BaseException:
        store.close()
        raise
    return Monitor(settings, store, clock)


def write_example_config(path: str) -> bool:
    """Write the commented example config; never overwrite an existing file. True if written."""
    if os.path.exists(path):
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot write {path}: folder {parent} does not exist")
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(EXAMPLE_CONFIG)
    return True


def datasette_metadata_path() -> str:
    """The datasette metadata file shipped in the package (`monitor datasette-metadata`)."""
    from importlib import resources  # here, not at start-up: only this command needs it

    shipped = resources.files("monitor").joinpath("datasette", "metadata.json")
    if not shipped.is_file():
        raise MonitorError(f"the datasette metadata file is missing from this installation ({shipped}); "
                           "reinstall monitor")
    if not isinstance(shipped, os.PathLike):  # inside a zip: there is no path to hand to datasette
        raise MonitorError(f"the datasette metadata file is not on the file system ({shipped})")
    return os.fspath(shipped)
