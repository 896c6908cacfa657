"""The error tree: one base class, so callers can catch every user-facing failure at once.

A failing feed is reported as a value (FeedOutcome.error), not raised past the feed
boundary; these exceptions are for whole operations that cannot go on.
"""
from __future__ import annotations


class MonitorError(Exception):
    """Base of every error `monitor` reports to its user in one line."""


class ConfigError(MonitorError):
    """The configuration (file, environment or options) has a bad key or value."""


class FeedError(MonitorError):
    """One feed could not be fetched or parsed; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class FetchError(FeedError):
    """HTTP-level failure: refused address, timeout, too large, bad status..."""


class ParseError(FeedError):
    """The body is not a usable feed (not_a_feed, entities, parse_timeout...)."""


class StorageError(MonitorError):
    """The database cannot be opened, is locked, or is newer than this code."""


class DeliveryError(MonitorError):
    """A digest could not be handed to the mail server or written to the outbox."""
