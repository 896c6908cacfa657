"""A loopback feed farm and mail server for the reliability suite (tests/reliability/, bench/).

- FeedFarm: many feeds on one loopback host (or a few: one port each) whose entries are
  published in rounds. It remembers every entry it ever served and which entries each
  ETag stood for, counts the requests in flight per host (and records any moment over
  `per_host`), and can make chosen feeds fail: 500, 404, garbage, a hung server, a slow
  drip, a reset. It records how long each hung request was held and who ended it, so a
  test can prove a client's deadline without a stopwatch on the client.
- Mailbox: a real SMTP server (aiosmtpd) that records the Message-ID of everything it
  accepts, with a hook at the moment it has accepted a message and not yet replied.

Both are bounded: servers stop when closed, hung routes give up after `hang_limit` seconds.
"""
from __future__ import annotations

import email
import email.utils
import random
import select
import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from http.server import BaseHTTPRequestHandler
from xml.sax.saxutils import escape

from tests.support.loopback import LoopbackServer
from tests.support.smtpserver import SmtpServer

HANG_LIMIT = 60.0  # a hung route holds its connection at most this long (by default)
FAILURE_MODES = ("http_500", "http_404", "garbage", "timeout", "slow", "reset")


# -- the news the farm publishes ---------------------------------------------------------------

PLACES = ["Iran", "Turkey", "Russia", "Egypt", "Pakistan", "Vietnam", "Ethiopia", "Belarus", "Myanmar", "Uganda"]
PLATFORMS = ["Telegram", "WhatsApp", "social media", "Signal", "YouTube"]
ACTIONS = [("blocks", "blocked"), ("bans", "banned"), ("censors", "censored"), ("arrests", "arrested")]
OTHER = ["budget", "election", "harvest", "stadium", "bridge", "railway", "museum", "festival", "port", "tariff"]
SYLLABLES = "ka ri mo ta le ne sa vo di pa lu ze ga ro mi te na bo ki su fa jo".split()


@dataclass
class Event:
    """A story several outlets report in their own words within a few rounds."""

    key: int
    place: str
    subject: str
    verb: tuple[str, str]
    trigger: str
    number: int
    person: str
    on_topic: bool

    def headline(self, style: int) -> str:
        present, past = self.verb
        return [
            f"{self.place} {present} {self.subject} after {self.trigger}",
            f"{self.subject} {past} in {self.place} as {self.trigger} spread",
            f"Authorities in {self.place} {present} {self.subject} amid {self.trigger}, {self.number} affected",
            f"{self.person}: {self.place} {present} {self.subject}",
        ][style % 4]

    def summary(self, style: int) -> str:
        present, past = self.verb
        return (f"<p>Officials in {self.place} {past} {self.subject} on Tuesday, {self.person} said, "
                f"after {self.trigger}; {self.number} people were affected.</p>"
                + ("<p>Witnesses described long queues.</p>" if style % 2 else ""))


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


class Newsroom:
    """Deterministic stream of events (some about platform regulation) and one-off stories."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.events: list[Event] = []

    def new_event(self, on_topic: bool | None = None) -> Event:
        r = self.rng
        on_topic = r.random() < 0.5 if on_topic is None else on_topic
        event = Event(key=len(self.events), place=r.choice(PLACES),
                      subject=r.choice(PLATFORMS) if on_topic else f"{r.choice(OTHER)} {_word(r)}",
                      verb=r.choice(ACTIONS) if on_topic else ("approves", "approved"),
                      trigger=f"{_word(r)} protests", number=r.randint(10, 9000),
                      person=f"{_word(r).title()} {_word(r).title()}", on_topic=on_topic)
        self.events.append(event)
        return event

    def one_off(self) -> tuple[str, str]:
        r = self.rng
        return (f"{_word(r).title()} council reviews {r.choice(OTHER)} plan for {_word(r)}",
                f"<p>The {_word(r)} {r.choice(OTHER)} committee met on {_word(r)}.</p>")


# -- the feed farm ----------------------------------------------------------------------------


def _closed(sock: socket.socket) -> bool:
    """True when the peer has closed the connection (readable with nothing to read)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0)) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


@dataclass
class FarmFeed:
    index: int
    title: str
    entries: list[dict] = field(default_factory=list)  # every entry ever published, oldest first
    body: bytes = b""
    etag: str = ""


class FeedFarm:
    """`feeds` feeds at http://127.0.0.1:PORT/f/N.xml, published in rounds (see module doc).

    With `hosts` > 1 the feeds are spread over that many servers (ports), which a fetcher's
    per-host limit treats as different publishers; in-flight requests are counted per host.
    """

    def __init__(self, feeds: int, *, seed: int = 1, modes: dict[int, str] | None = None,
                 per_host: int | None = None, slow_seconds: float = 1.5, hosts: int = 1,
                 hang_limit: float = HANG_LIMIT) -> None:
        self.rng = random.Random(seed)
        self.news = Newsroom(seed)
        self.feeds = [FarmFeed(i, f"Outlet {i:04d}") for i in range(feeds)]
        self.versions: dict[str, frozenset[str]] = {}  # ETag -> guids of that document
        self.modes = dict(modes or {})
        self.per_host = per_host
        self.slow_seconds = slow_seconds
        self.hang_limit = hang_limit
        # one (seconds held, ended by) per hung request: "client" (it gave up and closed),
        # "limit" (the farm's hang_limit passed first) or "closed" (the farm was closed)
        self.hung: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.active: dict[int, dict[int, socket.socket]] = defaultdict(dict)  # port -> handler id -> socket
        self.max_in_flight = 0
        self.over_limit: list[int] = []  # in-flight counts seen above per_host
        self.requests = 0
        self.statuses: Counter[str] = Counter()
        self.rounds = 0
        self.stop = threading.Event()
        # One loopback server per host, all answered by _serve, which counts requests in flight per
        # host itself. A client killed mid-request (the point of these tests) is not news: no tracebacks.
        self.hosts = [LoopbackServer(self._serve, record=False, report_errors=False) for _ in range(hosts)]
        self.ports = [host.port for host in self.hosts]
        self.port = self.ports[0]

    # -- content --------------------------------------------------------------------------

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}/f/{index}.xml"

    def index_of(self, url: str) -> int | None:
        for port in self.ports:
            prefix = f"http://127.0.0.1:{port}/f/"
            if url.startswith(prefix) and url.endswith(".xml") and url[len(prefix):-4].isdigit():
                return int(url[len(prefix):-4])
        return None

    @property
    def allow_hosts(self) -> str:
        """The `polling.allow_hosts` value (TOML) that lets monitor fetch from this farm."""
        return "[" + ", ".join(f'"127.0.0.1:{port}"' for port in self.ports) + "]"

    def opml(self) -> bytes:
        lines = ['<?xml version="1.0" encoding="utf-8"?><opml version="2.0"><head><title>farm</title></head><body>']
        lines += [f'<outline type="rss" text="{f.title}" title="{f.title}" xmlUrl="{self.url(f.index)}"/>'
                  for f in self.feeds]
        lines.append("</body></opml>")
        return "\n".join(lines).encode()

    def publish(self, *, events: int = 3, reporters: float = 0.3, one_offs: float = 0.1,
                on_topic: bool | None = None, now: datetime | None = None) -> int:
        """One round of news: `events` new events (about platform regulation or not, by
        chance unless `on_topic` says), each reported by about `reporters` of the feeds in
        their own words, plus one-off stories. Returns the entries published."""
        now = now or datetime.now(timezone.utc)
        self.rounds += 1
        fresh = [self.news.new_event(on_topic) for _ in range(events)]
        count = 0
        with self.lock:
            for feed in self.feeds:
                items = []
                for event in fresh:
                    if self.rng.random() < reporters:
                        style = self.rng.randrange(4)
                        items.append((event.headline(style), event.summary(style)))
                if self.rng.random() < one_offs:
                    items.append(self.news.one_off())
                for title, summary in items:
                    n = len(feed.entries)
                    feed.entries.append({
                        "guid": f"f{feed.index}-e{n}", "title": title, "summary": summary,
                        "link": f"https://outlet{feed.index}.example/news/{n}?utm_source=rss",
                        "published": now - timedelta(minutes=self.rng.randint(0, 90))})
                    count += 1
                if items or not feed.body:
                    self._render(feed)
        return count

    def _render(self, feed: FarmFeed) -> None:
        shown = feed.entries
        out = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{feed.title}</title>'
               f"<link>https://outlet{feed.index}.example/</link>"]
        for e in reversed(shown):
            out.append(f"<item><title>{escape(e['title'])}</title><link>{escape(e['link'])}</link>"
                       f'<guid isPermaLink="false">{e["guid"]}</guid>'
                       f"<pubDate>{email.utils.format_datetime(e['published'])}</pubDate>"
                       f"<description>{escape(e['summary'])}</description></item>")
        out.append("</channel></rss>")
        feed.body = "".join(out).encode()
        feed.etag = f'"{feed.index}-{len(feed.entries)}"'
        self.versions[feed.etag] = frozenset(e["guid"] for e in shown)

    def published(self, index: int) -> set[str]:
        """Every guid the feed has listed (what monitor must store once it polls cleanly)."""
        with self.lock:
            return {e["guid"] for e in self.feeds[index].entries}

    # -- serving --------------------------------------------------------------------------

    def _enter(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            active = self.active[h.server.server_address[1]]
            for key, sock in list(active.items()):
                if _closed(sock):  # the client gave up (timeout): no longer in flight
                    del active[key]
            active[id(h)] = h.connection
            self.requests += 1
            n = len(active)
            self.max_in_flight = max(self.max_in_flight, n)
            if self.per_host is not None and n > self.per_host:
                self.over_limit.append(n)

    def _leave(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.active[h.server.server_address[1]].pop(id(h), None)

    def _write(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/rss+xml",
               **headers: str) -> None:
        """The whole response in one write, after leaving the in-flight set: a client that has
        the last byte may start its next request at once, and must not be counted twice."""
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}.get(status, "")
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.statuses[str(status)] += 1
        self._leave(h)
        try:
            h.wfile.write(data)
        except OSError:
            pass

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        self._enter(h)
        try:
            path = h.path.split("?")[0]
            index = int(path[3:-4]) if path.startswith("/f/") and path.endswith(".xml") else -1
            if not 0 <= index < len(self.feeds):
                self._write(h, 404, b"not found", "text/plain")
                return
            mode = self.modes.get(index)
            if mode == "http_500":
                self._write(h, 500, b"oops", "text/plain")
            elif mode == "http_404":
                self._write(h, 404, b"gone missing", "text/plain")
            elif mode == "garbage":
                self._write(h, 200, bytes(self.rng.randrange(256) for _ in range(2000)), "application/rss+xml")
            elif mode == "timeout":
                self.statuses["hung"] += 1
                t0 = time.monotonic()
                ended = "limit"
                while time.monotonic() - t0 < self.hang_limit:
                    if self.stop.is_set():
                        ended = "closed"
                        break
                    if _closed(h.connection):
                        ended = "client"
                        break
                    time.sleep(0.05)
                with self.lock:
                    self.hung.append((round(time.monotonic() - t0, 2), ended))
                h.close_connection = True
            elif mode == "reset":
                self.statuses["reset"] += 1
                self._leave(h)
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                h.close_connection = True
            elif mode == "slow":
                self._drip(h, index)
            else:
                with self.lock:
                    feed = self.feeds[index]
                    etag, body = feed.etag, feed.body
                if h.headers.get("If-None-Match") == etag:
                    self._write(h, 304, b"", ETag=etag)
                else:
                    self._write(h, 200, body, ETag=etag)
        finally:
            self._leave(h)

    def _drip(self, h: BaseHTTPRequestHandler, index: int) -> None:
        """A slow but working server: the document in ten pieces over `slow_seconds`."""
        with self.lock:
            feed = self.feeds[index]
            body = feed.body
        self.statuses["slow"] += 1
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {len(body)}\r\n"
                f"ETag: {feed.etag}\r\n\r\n").encode()
        step = max(1, len(body) // 10 + 1)
        try:
            h.wfile.write(head)
            for start in range(0, len(body), step):
                if start + step >= len(body):
                    self._leave(h)
                h.wfile.write(body[start:start + step])
                h.wfile.flush()
                time.sleep(self.slow_seconds / 10)
        except OSError:
            h.close_connection = True

    def close(self) -> None:
        self.stop.set()
        for host in self.hosts:
            host.close()


def pick_failures(feeds: int, share: float, seed: int = 7) -> dict[int, str]:
    """`share` of the feeds failing, spread evenly over FAILURE_MODES."""
    rng = random.Random(seed)
    chosen = rng.sample(range(feeds), round(feeds * share))
    return {index: FAILURE_MODES[n % len(FAILURE_MODES)] for n, index in enumerate(chosen)}


# -- the mail server -------------------------------------------------------------------------


class Mailbox(SmtpServer):
    """aiosmtpd on 127.0.0.1 that records each accepted message's Message-ID, in order.

    `on_accept` (if set) runs after a message is accepted and before the reply: the moment
    a crash would fall into the documented at-least-once window.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []
        self.on_accept = None
        handler, mailbox = self.handler, self
        original = handler.handle_DATA

        async def handle_DATA(server, session, envelope):  # noqa: N802
            reply = await original(server, session, envelope)
            if reply.startswith("250"):
                msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
                mailbox.received.append(str(msg["Message-ID"]))
                if mailbox.on_accept:
                    mailbox.on_accept()
            return reply

        handler.handle_DATA = handle_DATA
