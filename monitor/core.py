"""Monitor: the one place where pure decisions meet I/O. The CLI and the daemon are thin shells over it."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Callable

from monitor.config import EXAMPLE_CONFIG, Settings, load_settings
from monitor.errors import ConfigError, MonitorError
from monitor.opml import OpmlError, OpmlImport, parse_opml, write_opml
from monitor.store import Store, iso, open_store
from monitor.guard import check_url
from monitor.types import Feed, FeedSource

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Monitor:
    """Settings + store + clock. Methods are the operations the CLI and daemon offer."""

    def __init__(self, settings: Settings, store: Store, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- feeds ----------------------------------------------------------------------------

    def import_opml(self, data: bytes) -> tuple[dict[str, int], OpmlImport]:
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

    def export_opml(self) -> bytes:
        feeds = [FeedSource(url=f.url, title=f.title, category=f.category, site_url=f.site_url)
                 for f in self.store.feeds() if f.disabled_reason != "removed"]
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

    def feed_records(self) -> list[dict]:
        """Feeds as the JSON contract gives them (`feeds list --json`)."""
        counts = self.store.feed_entry_counts()
        return [{
            "url": f.url, "title": f.title, "category": f.category,
            "last_polled": iso(f.last_polled), "last_status": f.last_status, "last_error": f.last_error,
            "last_warning": f.last_warning, "error_count": f.error_count, "next_poll": iso(f.next_poll),
            "disabled": f.disabled, "entries": counts.get(f.id, 0),
        } for f in self.store.feeds()]


def open_monitor(config: str | None = None, db: str | None = None, *, create: bool = True,
                 clock: Clock = utcnow) -> Monitor:
    """Load and validate settings, open (and if needed migrate) the store."""
    settings = load_settings(config, db)
    store = open_store(settings.database, create=create, busy_timeout=settings.busy_timeout)
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
