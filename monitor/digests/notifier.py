"""Chat and webhook transport: one digest message to one Apprise URL, accepted or refused.

A transport only moves text; the outbox decides what to send and records the outcome, as for
mail (monitor.digests.mailer). `send` returns when the service accepted the message, and
otherwise raises:
- TemporaryDeliveryError: a later attempt may succeed: no connection, a timeout, HTTP 5xx, 408
  or 429, or a failure that named no HTTP status;
- PermanentDeliveryError: the same message will be refused again: any other HTTP status (400,
  401, 403, 404, 410, 413...), or a URL Apprise cannot load.
The reason names the destination by destination_label() only: a destination URL is a secret.

How the status is learnt. Apprise's notify() answers with an AppriseResult (apprise/result.py):
per service a NotifyResult, per attempt a NotifyAttempt with the log entries the plugin wrote
while it ran. Its HTTP plugins write `error=NNN` when the service answered with a status they
do not accept (JSON, form, XML, Slack, Mattermost, ntfy, Discord, Telegram, Matrix, Teams
workflows...), and a connection failure as a warning plus the requests exception at DEBUG. We
read those entries, never echo them (they may hold a URL with its token), and classify the
status; when one plugin call answered several statuses (one per target), a temporary one wins,
so the message is tried again. Limits: a plugin that fails without writing `error=NNN` (a few
do, and so does a service answering 200 with an error inside) is a temporary failure without a
code, retried on the outbox's schedule until the outbox gives up; Retry-After is not seen (the
outbox's own backoff applies); a URL naming several targets (slack://.../#a/#b) is one delivery,
so when one target refuses, a retry sends to the others again.

What Apprise may and may not do here:
- no retries of its own (the URL's `?retry=` is overridden): the outbox retries, with backoff;
- no persistent storage, keys or config files: the asset keeps its store in memory, so the
  daemon's read-only file system is enough;
- no secrets in log records: Apprise's DEBUG lines hold request URLs with their paths and
  query strings (a Slack webhook's token is its path), and its "privacy" URLs mask passwords
  only. While a URL is in use (and until a call we stopped waiting for ends), a filter on the
  `apprise` logger replaces every part of it that destination_label() does not show with
  `****`, in each record, before any handler sees it: Apprise's own per-call capture, or one
  an operator or a test attaches. `error=NNN` is kept. `apprise` is set to DEBUG so the capture
  sees the connection error's text; it stops propagating and has only a NullHandler, so nothing
  reaches our stderr or the root logger. `urllib3` (used by Apprise's requests and nothing else
  here) logs request lines at DEBUG: it is set to ERROR, stops propagating, and is filtered the
  same way. All this is for the life of the process, not the call;
- timeouts: each request has Apprise's connect and read timeouts, capped at `timeout`; and the
  whole call runs on a daemon thread that the caller stops waiting for after `timeout`
  seconds, which also ends a server that trickles bytes just fast enough to defeat a read
  timeout. Giving up does not stop the request: if the service accepts it after that, the
  outbox, told "timed out", sends it again once: at-most-once becomes at-least-once for that
  one message, the same window as a crash between acceptance and the outbox's record. The
  thread does not keep the process alive at exit;
- a message longer than the service's limit (Discord 2,000 characters, Teams workflows and
  Rocket.Chat 1,000) is cut by whole events into "+N more" (chat.fit), and Apprise truncates
  what its own conversion lengthens, unless the URL names an `overflow=` mode.

Apprise is imported on first use, not with this module: the CLI must start without it.
"""
from __future__ import annotations

import functools
import http
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, unquote_plus

from monitor.digests.chat import destination_label, fit, url_scheme
from monitor.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError

if TYPE_CHECKING:
    from apprise import AppriseAsset
    from apprise.plugins.base import NotifyBase

DEFAULT_TIMEOUT = 20.0

# HTTP statuses that say "not now" rather than "not this": the rest of 4xx (and anything else a
# plugin refused) would be refused again.
TEMPORARY_STATUSES = frozenset({408, 429})

_STATUS = re.compile(r"\berror=(\d{3})\b")
_OVERFLOW = re.compile(r"[?&]overflow=", re.IGNORECASE)
# What requests/urllib3 say in the exception text Apprise logs for a failed connection, in the
# order they are checked: "Read timed out" wins over the generic "Connection error" warning.
_CONNECTION_FAILURES = tuple((re.compile(pattern, re.IGNORECASE), reason) for pattern, reason in (
    (r"connection refused|errno 111\b", "connection refused"),
    (r"timed out|timeout", "timed out"),
    (r"connection reset|errno 104\b|connection aborted|remotedisconnected|broken pipe", "connection reset"),
    (r"nameresolution|name or service not known|getaddrinfo|nodename nor servname|name resolution",
     "name lookup failed"),
    (r"sslerror|certificate|ssl:", "TLS error"),
    (r"connection error|failed to establish|connectionerror", "connection failed"),
))
_HINTS = {
    "http": "for a plain webhook use json:// (or form://)",
    "https": "for a plain webhook use jsons:// (or forms://)",
    "msteams": "Apprise reaches Teams through workflow:// (a Power Automate workflow)",
}

_setup_lock = threading.Lock()
_quieted = False
_KEEP = re.compile(r"(\berror=\d{3}\b)")  # the status a plugin reports is never a secret
MIN_SECRET = 3  # shorter parts of a URL are not masked: they would garble every message


def secret_parts(url: str) -> set[str]:
    """The parts of `url` that destination_label() does not show: user, password, host when the
    label hides it, path segments, query keys and values; as written and percent-decoded."""
    scheme, _, rest = url.strip().partition("://")
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, _, hostport = authority.rpartition("@")
    shown_host = destination_label(url).partition("://")[2].lower()
    shown = {scheme, *(p for p in (shown_host, *shown_host.rsplit(":", 1)) if p not in ("", "?", "\u2026"))}
    parts = {userinfo, *userinfo.split(":", 1), hostport, *hostport.rsplit(":", 1), *path.split("/"),
             *re.split(r"[&=]", query)}
    parts |= {text for part in parts for text in (unquote(part), unquote_plus(part), part.lstrip("#!@"))}
    return {p for p in parts if len(p) >= MIN_SECRET and p.lower() not in shown}


class _Redactor(logging.Filter):
    """Masks the secret parts of the URLs in use in every record of the logger it filters."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._in_use: Counter[str] = Counter()
        self._pattern: re.Pattern[str] | None = None

    def hide(self, url: str) -> Callable[[], None]:
        """Mask `url`'s secret parts until the returned function is called (once is enough)."""
        parts = secret_parts(url)
        self._change(parts, +1)
        released: list[bool] = []

        def release() -> None:
            with self._lock:
                if not released:
                    released.append(True)
                    self._change(parts, -1)

        return release

    def _change(self, parts: set[str], step: int) -> None:
        with self._lock:
            for part in parts:
                self._in_use[part] += step
                if self._in_use[part] <= 0:
                    del self._in_use[part]
            live = sorted(self._in_use, key=len, reverse=True)  # longest first: "t0ken2" before "t0ken"
            self._pattern = re.compile("|".join(map(re.escape, live))) if live else None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        pieces = _KEEP.split(text)
        return "".join(p if i % 2 else pattern.sub("****", p) for i, p in enumerate(pieces))

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is not None:
            record.msg, record.args = self.redact(record.getMessage()), ()
            if record.exc_info:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            if record.stack_info:
                record.stack_info = self.redact(record.stack_info)
        return True


_redactor = _Redactor()


class ChatTransport(Protocol):
    def send(self, url: str, title: str, body: str) -> None:
        """Return when the service accepted the message; raise a DeliveryError otherwise."""
        ...


def _quiet_loggers() -> None:
    """Keep Apprise's log records (which may hold request paths and tokens) off our handlers.

    Done once, before Apprise is imported, and never undone (see the module docstring).
    """
    global _quieted
    with _setup_lock:
        if _quieted:
            return
        import urllib3  # noqa: F401  (requests' transport: its module loggers exist once it is imported)

        for name, level in (("apprise", logging.DEBUG), ("urllib3", logging.ERROR)):
            logger = logging.getLogger(name)
            logger.addHandler(logging.NullHandler())
            logger.propagate = False
            logger.setLevel(level)
        # A filter applies to the records of its own logger only, not of its children: urllib3 logs
        # request lines on urllib3.connectionpool, should anyone turn its DEBUG back on.
        for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("apprise", "urllib3")]:
            logging.getLogger(name).addFilter(_redactor)
        _quieted = True


@functools.cache
def _asset() -> AppriseAsset:
    """The settings every call shares (never changed after this)."""
    _quiet_loggers()
    from apprise import AppriseAsset

    return AppriseAsset(
        async_mode=False,  # with no deadline of Apprise's own, the call runs on our thread
        service_timeout=0,  # our deadline, not Apprise's (whose worker pool is joined at exit)
        storage_mode="memory", pgp_autogen=False, pem_autogen=False,  # nothing written to disk
        interpret_emojis=False, interpret_escapes=False,  # feed text stays what it was
        allow_templates=False, secure_logging=True)


def _load(url: str, asset: AppriseAsset) -> tuple[NotifyBase | None, str]:
    """The Apprise plugin for `url`, or None and why not (a reason without secrets)."""
    scheme = url_scheme(url)
    if scheme is None:
        return None, "not a URL of the form scheme://..."
    from apprise import Apprise
    from apprise.manager_plugins import NotificationManager

    plugins = NotificationManager()  # one registry per process (a singleton)
    known = scheme in plugins
    if known and not plugins[scheme].enabled:
        return None, f"{scheme}:// is not available on this system (a library it needs is missing)"
    plugin = Apprise.instantiate(url.strip(), asset=asset)
    if plugin is not None:
        return plugin, ""
    if known:
        return None, f"{scheme}:// URL is malformed or incomplete (see its Apprise documentation)"
    hint = _HINTS.get(scheme)
    return None, f"unknown scheme {scheme}://" + (f": {hint}" if hint else "")


def check_url(url: str) -> str | None:
    """None when Apprise can load `url`; else a short reason, without the URL's secrets.

    For configuration checks: loading reads the URL only, nothing is sent.
    """
    asset = _asset()
    release = _redactor.hide(url)
    try:
        plugin, reason = _load(url, asset)
    except Exception as exc:  # a plugin that raises on odd input: the URL is the problem
        return f"URL cannot be loaded ({type(exc).__name__})"
    finally:
        release()
    return None if plugin is not None else reason


def temporary_status(status: int) -> bool:
    """5xx, 408 and 429 may pass later; every other refusal is final."""
    return status >= 500 or status in TEMPORARY_STATUSES


def classify(label: str, statuses: list[int], messages: list[str], timed_out: bool = False) -> DeliveryError:
    """The error for a delivery Apprise reported as failed, from what its plugin logged.

    `statuses`: the HTTP statuses the plugin logged as `error=NNN`, in order; `messages`: its log
    messages, read for a connection failure and never copied into the reason.
    """
    if statuses:
        status = next((s for s in reversed(statuses) if temporary_status(s)), statuses[-1])
        try:
            phrase = f" {http.HTTPStatus(status).phrase}"
        except ValueError:
            phrase = ""
        reason = f"{label}: HTTP {status}{phrase}"
        if temporary_status(status):
            return TemporaryDeliveryError(reason, code=status)
        return PermanentDeliveryError(reason, code=status)
    for pattern, what in _CONNECTION_FAILURES:
        if any(pattern.search(m) for m in messages):
            return TemporaryDeliveryError(f"{label}: {what}", unreachable=True)
    if timed_out:
        return TemporaryDeliveryError(f"{label}: timed out", unreachable=True)
    return TemporaryDeliveryError(f"{label}: not accepted (the service gave no HTTP status)")


class AppriseTransport:
    """Apprise, one URL per call, under a hard deadline of `timeout` seconds."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AppriseTransport(timeout={self.timeout!r})"

    def send(self, url: str, title: str, body: str) -> None:
        label = destination_label(url)
        asset = _asset()
        # The URL's secrets stay masked in Apprise's records until the delivery thread ends, even
        # when we stopped waiting for it.
        release = _redactor.hide(url)
        try:
            manager, body = self._manager(url, label, title, body, asset)
            outcome: list[DeliveryError | None] = []
            worker = threading.Thread(target=self._notify, name="chat-delivery", daemon=True,
                                      args=(manager, label, title, body, outcome, release))
            worker.start()
        except BaseException:
            release()
            raise
        worker.join(self.timeout)
        if worker.is_alive() or not outcome:
            raise TemporaryDeliveryError(f"{label}: timed out after {self.timeout:g} s", unreachable=True)
        if outcome[0] is not None:
            raise outcome[0]

    def _manager(self, url: str, label: str, title: str, body: str, asset: AppriseAsset) -> tuple[Any, str]:
        """Apprise with the one plugin for `url`, on the caller's thread: the first load imports
        Apprise's plugins (a noticeable fraction of a second), which must not use up the deadline."""
        try:
            plugin, reason = _load(url, asset)
        except Exception as exc:
            raise PermanentDeliveryError(f"{label}: URL cannot be loaded ({type(exc).__name__})") from None
        if plugin is None:
            raise PermanentDeliveryError(f"{label}: {reason}")
        from apprise import Apprise

        manager = Apprise(asset=asset)
        manager.add(plugin)
        return manager, self._prepare(plugin, url, title, body)

    def _prepare(self, plugin: NotifyBase, url: str, title: str, body: str) -> str:
        """Set the plugin up for one attempt under our rules; the body cut to the service's limit."""
        from apprise.common import OverflowMode

        plugin.retry = 0
        plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout), self.timeout)
        plugin.socket_read_timeout = min(float(plugin.socket_read_timeout), self.timeout)
        if not _OVERFLOW.search(url):
            plugin.overflow_mode = OverflowMode.TRUNCATE
        limit = int(plugin.body_maxlen or 0)
        if plugin.title_maxlen <= 0 and title:  # the title goes in the body, on a line of its own
            limit -= len(title) + 2
        return fit(body, limit) if limit > 0 else body

    @staticmethod
    def _notify(manager: Any, label: str, title: str, body: str, outcome: list[DeliveryError | None],
                release: Callable[[], None]) -> None:
        """Runs on the delivery thread: the call, then its result read into our error (or None)."""
        try:
            outcome.append(AppriseTransport._deliver(manager, label, title, body))
        finally:
            release()

    @staticmethod
    def _deliver(manager: Any, label: str, title: str, body: str) -> DeliveryError | None:
        from apprise import AppriseResultStatus, NotifyFormat

        try:
            result = manager.notify(body=body, title=title, body_format=NotifyFormat.TEXT,
                                    log_level=logging.DEBUG)
        except Exception as exc:  # Apprise's own failure: nothing was confirmed sent
            return TemporaryDeliveryError(f"{label}: delivery failed ({type(exc).__name__})")
        try:
            if result:
                return None
            statuses: list[int] = []
            messages: list[str] = []
            timed_out = result.status == AppriseResultStatus.TIMEOUT
            for service in result:
                timed_out = timed_out or service.status == AppriseResultStatus.TIMEOUT
                for entry in service.logs():
                    # Only what the plugin says about the exchange: its DEBUG lines also dump the
                    # payload (feed text, which may say "error=404") and the service's answer.
                    if entry.level not in ("DEBUG", "TRACE"):
                        messages.append(entry.message)
                        statuses.extend(int(s) for s in _STATUS.findall(entry.message))
                    elif entry.message.startswith("Socket Exception:"):
                        messages.append(entry.message)
            return classify(label, statuses, messages, timed_out)
        except Exception as exc:
            return TemporaryDeliveryError(f"{label}: delivery failed ({type(exc).__name__})")
        finally:
            result.close()
