"""What a format reader hands to parse.py: a document's fields and entries as written, not yet normalised.

parse.py reads RSS and Atom (with fastfeed or feedparser) and dispatches JSON Feed to
jsonfeed.py; every reader returns a RawFeed, and parse.py alone turns its RawEntry records
into EntryData (sanitising, keys, dates checked against the fetch time). These records live
in a module of their own so that the readers need not import parse.py, which imports them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple

MAX_FIELD = 200_000  # characters of summary/content/text per entry
MAX_TITLE = 1_000  # characters of a feed or entry title
MAX_WARNING = 300  # characters of a warning or a refusal's detail


@dataclass
class RawEntry:
    """One entry as read from the document, before normalisation."""

    id: str | None
    link: str | None
    title: str
    title_is_html: bool
    summary_html: str
    content_html: str
    author: str | None
    published: datetime | None
    updated: datetime | None
    base: str | None = None  # URL that relative links in the summary and content are relative to


class RawFeed(NamedTuple):
    """What one reader found in a document."""

    title: str | None
    link: str | None  # the site's address, canonical
    ttl: int | None  # RSS <ttl>, minutes
    entries: list[RawEntry]
    warning: str | None  # a recoverable problem the reader met


def parse_date(value: str | None) -> datetime | None:
    """An RFC 822 or ISO 8601 date (date-only allowed) as UTC; naive times count as UTC."""
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
