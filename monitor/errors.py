"""The error tree: one base class, so callers can catch every user-facing failure at once.

    MonitorError                   anything `monitor` reports to its user in one line
    ├── ConfigError                a bad key or value in the file, environment or options
    ├── StorageError               the database cannot be opened, is locked, or is newer
    ├── OpmlError                  an OPML document that cannot be read as a whole
    ├── FeedError                  one feed could not be read (`reason`, `detail`)
    │   └── ParseError             its body is not a usable feed (not_a_feed, entities...)
    ├── DeliveryError              a digest was not delivered
    │   ├── TemporaryDeliveryError a later attempt may succeed (4xx, unreachable server)
    │   └── PermanentDeliveryError the server refused this message for good (5xx)
    └── WorkerLost                 the weighing worker died with work that cannot be redone

A failing feed is reported as a value (FeedOutcome.error, with the reasons listed in the
README), not raised past the feed boundary: a fetch failure never raises at all, it comes
back in FetchResult.error. These exceptions are for whole operations that cannot go on,
and for the parse step's refusal, which the cycle turns into the feed's outcome.
"""
from __future__ import annotations


class MonitorError(Exception):
    """Base of every error `monitor` reports to its user in one line."""


class ConfigError(MonitorError):
    """The configuration (file, environment or options) has a bad key or value."""


class StorageError(MonitorError):
    """The database cannot be opened, is locked, or is newer than this code."""


class OpmlError(MonitorError):
    """The document as a whole cannot be read as OPML."""


class FeedError(MonitorError):
    """One feed could not be read; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ParseError(FeedError):
    """The body is not a usable feed (not_a_feed, entities, parse_timeout...)."""


class DeliveryError(MonitorError):
    """A digest could not be handed to the mail server or written to the outbox."""


class TemporaryDeliveryError(DeliveryError):
    """Nothing was delivered, but a later attempt may succeed. `unreachable`: the server itself
    could not be reached or would not talk to us, so the rest of the batch would fail the same way."""

    def __init__(self, reason: str, *, unreachable: bool = False, code: int | None = None) -> None:
        super().__init__(reason)
        self.unreachable = unreachable
        self.code = code


class PermanentDeliveryError(DeliveryError):
    """The server refused this message for good (5xx): retrying the same bytes cannot help."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class WorkerLost(MonitorError):
    """The weighing worker died and the entries it had weighed cannot be weighed again here."""
