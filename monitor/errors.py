"""The error tree: one base class, so callers can catch every user-facing failure at once.

    MonitorError                   anything `monitor` reports to its user in one line
    ├── ConfigError                a bad key or value in the file, environment or options
    ├── StorageError               the database cannot be opened, is locked, or is newer
    ├── OpmlError                  an OPML document that cannot be read as a whole
    ├── FeedError                  one feed could not be read (`reason`, `detail`)
    │   └── ParseError             its body is not a usable feed (not_a_feed, entities...)
    ├── DeliveryError              a digest was not delivered
    │   ├── TemporaryDeliveryError a later attempt may succeed (SMTP 4xx; HTTP 5xx, 408, 429; unreachable)
    │   └── PermanentDeliveryError refused for good (SMTP 5xx; other HTTP 4xx)
    └── WorkerLost                 the weighing worker died with work that cannot be redone

A failing feed is reported as a value (FeedOutcome.error, with the reasons listed in the
README), not raised past the feed boundary: a fetch failure never raises at all, it comes
back in FetchResult.error. These exceptions are for whole operations that cannot go on,
and for the parse step's refusal, which the cycle turns into the feed's outcome.

Those reasons are one vocabulary, beside the tree rather than in it:

    FailureReason (StrEnum)        FetchResult.error, FeedError.reason, a feed's `last_error`;
                                   a final status other than 200/304 is `http_NNN` (http_reason)
"""
from __future__ import annotations

from enum import StrEnum


class MonitorError(Exception):
    """Base of every error `monitor` reports to its user in one line."""


class ConfigError(MonitorError):
    """The configuration (file, environment or options) has a bad key or value."""


class StorageError(MonitorError):
    """The database cannot be opened, is locked, or is newer than this code."""


class OpmlError(MonitorError):
    """The document as a whole cannot be read as OPML."""


class FeedError(MonitorError):
    """One feed could not be read; `reason` is a short machine-readable code (a FailureReason)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        # The message is a plain str, so even the exception's repr shows the bare code.
        super().__init__(f"{reason}: {detail}" if detail else str(reason))


class ParseError(FeedError):
    """The body is not a usable feed (not_a_feed, entities, parse_timeout...)."""


class DeliveryError(MonitorError):
    """A digest could not be handed to the mail server or chat service, or written to the outbox."""


class TemporaryDeliveryError(DeliveryError):
    """Nothing was delivered, but a later attempt may succeed. `unreachable`: the server itself
    could not be reached or would not talk to us, so the rest of the batch would fail the same way."""

    def __init__(self, reason: str, *, unreachable: bool = False, code: int | None = None) -> None:
        super().__init__(reason)
        self.unreachable = unreachable
        self.code = code


class PermanentDeliveryError(DeliveryError):
    """The server refused this message for good (SMTP 5xx, HTTP 4xx other than 408 and 429): retrying
    the same bytes cannot help."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class WorkerLost(MonitorError):
    """The weighing worker died and the entries it had weighed cannot be weighed again here."""


class FailureReason(StrEnum):
    """Why one feed's poll failed: the short codes stored in `last_error` and shown in JSON.

    Members are `str`, equal to their values, and format, print, log, bind to SQLite and dump
    to JSON as the bare value, so the stored and printed codes are those the README lists.
    A final HTTP status other than 200/304 is not a member: it is `http_NNN` (http_reason).
    """

    # fetching (monitor.feeds.fetch, with the address guard's refusals)
    BAD_URL = "bad_url"  # the URL cannot be parsed or has no host
    BAD_SCHEME = "bad_scheme"  # not http or https, also on a redirect
    BLOCKED_ADDRESS = "blocked_address"  # the address guard refused the destination
    DNS_ERROR = "dns_error"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    TIMEOUT = "timeout"  # the overall deadline or the connect timeout passed
    RESET = "reset"  # the connection broke while sending or receiving
    TRUNCATED = "truncated"  # the body ended before its declared or compressed end
    PROTOCOL_ERROR = "protocol_error"
    DECODE_ERROR = "decode_error"  # bad gzip/deflate data, or an encoding we did not offer
    TOO_LARGE = "too_large"  # the decoded body is over max_bytes
    REDIRECT_LOOP = "redirect_loop"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    ERROR = "error"  # anything unexpected; the detail names the exception
    # polling decisions (monitor.feeds.schedule)
    GONE = "gone"  # 410: the feed is disabled
    # parsing (monitor.feeds.parse, monitor.feeds.parsepool)
    NOT_A_FEED = "not_a_feed"  # no feed version and no entries (an HTML page, JSON that is no JSON Feed)
    ENTITIES = "entities"  # the document declares XML entities; refused before parsing
    PARSER_ERROR = "parser_error"  # the parser crashed on this document
    PARSE_TIMEOUT = "parse_timeout"  # the parse took longer than parse_timeout
    PARSER_CRASHED = "parser_crashed"  # the parse worker process died


def http_reason(status: int | None) -> str:
    """The reason for a final HTTP status that is neither 200 nor 304: `http_404`, `http_503`..."""
    return f"http_{status}"
