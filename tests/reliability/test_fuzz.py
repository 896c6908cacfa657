"""Hostile input, fuzzed: random and adversarial feed documents through every stage to the digest.

parse -> normalise -> store -> cluster -> topic match -> digest render, as the poll cycle
and the outbox chain them. Invariants, for any document:
- nothing raises past the feed boundary (a bad document is the feed's recorded error);
- everything stored is valid UTF-8 without NUL;
- the rendered HTML has no script, no event-handler attribute, no non-http(s) link or
  source, no frame, form, embed or refresh; header values carry no CR/LF, so a feed
  cannot add a header.

`MONITOR_FUZZ_EXAMPLES` raises the example count (default 200) for a longer run.
The last test runs a batch of such documents through a real `monitor poll` and
`monitor digest send`, over loopback HTTP and SMTP.
"""
from __future__ import annotations

import email
import json
import os
import random
import sqlite3
from datetime import datetime, timezone
from email import policy
from html.parser import HTMLParser
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Settings, SmtpSettings, TopicSettings
from monitor.core import Monitor
from monitor.digests import outbox, topics
from monitor.errors import OpmlError, ParseError
from monitor.feeds.opml import parse_opml
from monitor.feeds.parse import parse_feed
from monitor.feeds.schedule import PollPolicy, after_fetch
from monitor.storage.database import Store
from monitor.types import FeedSource, FetchResult
from tests.support.feedfarm import Mailbox
from tests.support.loopback import LoopbackServer, feed_route
from tests.support.reliability import monitor, write_config

EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "200"))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
TOPIC = TopicSettings(name="fuzz", title="Fuzz <b>topic</b>\r\nBcc: x@evil.example", query="telegram AND ban*",
                      recipients=("desk@example.org",), schedule="immediate")
SETTINGS = Settings(database=":memory:", topics=(TOPIC,),
                    smtp=SmtpSettings(host="127.0.0.1", sender="Monitor <monitor@example.org>"))
HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "List-Id", "Auto-Submitted", "MIME-Version",
           "Content-Type", "Content-Transfer-Encoding"}

# -- hostile pieces --------------------------------------------------------------------------

ATTACKS = [
    "<script>alert(1)</script>", "<SCRIPT SRC=//evil.example/x.js></SCRIPT>", "<img src=x onerror=alert(1)>",
    "<a href=\"javascript:alert(1)\">click</a>", "<a href=\" java\nscript:alert(1)\">nl</a>",
    "<a href=\"&#106;avascript:alert(1)\">ent</a>", "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">d</a>",
    "<a href='vbscript:msgbox(1)'>v</a>", "<svg onload=alert(1)><script>x</script></svg>",
    "<iframe src=\"https://evil.example\"></iframe>", "<object data=x.swf></object>", "<embed src=x>",
    "<form action=\"https://evil.example\"><input name=p></form>", "<meta http-equiv=refresh content=\"0;url=x\">",
    "<style>body{background:url(javascript:alert(1))}</style>", "<base href=\"javascript:/\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", "<div style=\"x:expression(alert(1))\">s</div>",
    "<a href=\"https://ok.example/\" onclick=\"alert(1)\">ok</a>", "<p onmouseover=alert(1)>hover</p>",
    "\x00", "\x1b[31m", "\u202e", "\ufeff", "\ud800", "&#0;", "&#xD800;", "&#x1F4A9;", "&amp;lt;script&amp;gt;",
    "\r\nBcc: victim@example.org\r\n", "\nX-Injected: 1", "]]>", "<![CDATA[<script>x</script>]]>", "<!--", "-->",
    "%00", "\\u0000", "' OR 1=1 --", "\"; DROP TABLE entries; --", "{{7*7}}", "{% raw %}", "${jndi:ldap://x}",
    "A" * 3000, "é" * 500, "\u0627\u0644\u062e\u0628\u0631", "\U0001F600" * 20, "telegram", "ban", "Telegram ban",
]
WORDS = st.sampled_from(["Iran", "Telegram", "banned", "ban", "WhatsApp", "blocked", "court", "news", "the", "a"])
TEXT = st.lists(st.one_of(st.sampled_from(ATTACKS), WORDS, st.text(max_size=30)), max_size=8).map(" ".join)
URLS = st.one_of(st.sampled_from(["javascript:alert(1)", "data:text/html,x", " https://ok.example/a b",
                                  "https://ok.example/p?utm_source=x&id=1", "//evil.example/x", "ftp://x/y", "",
                                  "http://[::1", "https://ok.example/\r\nX: y", "mailto:a@b"]),
                 st.text(max_size=40))
DATES = st.one_of(st.none(), st.sampled_from(["Tue, 10 Jun 2003 04:00:00 GMT", "2026-11-20T11:00:00Z", "yesterday",
                                              "Fri, 31 Dec 9999 23:59:59 GMT", "0000-00-00", "1970-01-01T00:00:00Z",
                                              "Mon, 32 Foo 2026 25:61:61 +9999"]), st.text(max_size=20))


def _x(value: str, raw: bool) -> str:
    return value if raw else escape(value)


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


@st.composite
def documents(draw) -> tuple[bytes, dict[str, str]]:
    """RSS, Atom, JSON Feed or plain bytes, with hostile values escaped or raw (malformed XML)."""
    kind = draw(st.sampled_from(["rss", "atom", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=2000)), {"content-type": draw(st.sampled_from(["application/rss+xml", ""]))}
    items = draw(st.lists(st.tuples(TEXT, TEXT, URLS, st.one_of(st.none(), TEXT), DATES, st.booleans()),
                          min_size=0, max_size=4))
    title = draw(TEXT)
    if kind == "json":
        doc = {"version": "https://jsonfeed.org/version/1.1", "title": title, "home_page_url": draw(URLS),
               "items": [{"id": guid, "title": t, "content_html": s, "url": link, "date_published": date}
                         for t, s, link, guid, date, _raw in items]}
        body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    elif kind == "rss":
        parts = [f"<title>{_x(title, False)}</title>"]
        for t, s, link, guid, date, raw in items:
            parts.append(f"<item><title>{_x(t, raw)}</title><link>{_x(link, raw)}</link>"
                         + (f"<guid>{_x(guid, raw)}</guid>" if guid is not None else "")
                         + (f"<pubDate>{_x(date, raw)}</pubDate>" if date is not None else "")
                         + f"<description>{_x(s, raw)}</description></item>")
        body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>' + "".join(parts)
                + "</channel></rss>").encode("utf-8", "surrogatepass")
    else:
        parts = [f"<title type=\"html\">{_x(title, False)}</title>"]
        for t, s, link, guid, date, raw in items:
            parts.append(f"<entry><id>{_x(guid or link, raw)}</id><title type=\"html\">{_x(t, raw)}</title>"
                         f"<link href=\"{_attr(link)}\"/>"
                         + (f"<updated>{_x(date, raw)}</updated>" if date is not None else "")
                         + f"<content type=\"html\">{_x(s, raw)}</content></entry>")
        body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">' + "".join(parts)
                + "</feed>").encode("utf-8", "surrogatepass")
    encoding = draw(st.sampled_from(["keep", "utf-16", "cp1252-mislabelled", "truncate"]))
    if encoding == "utf-16":
        body = body.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
    elif encoding == "cp1252-mislabelled":
        body = body.decode("utf-8", "surrogatepass").encode("cp1252", "replace")
    elif encoding == "truncate":
        body = body[:draw(st.integers(0, len(body)))]
    ctype = draw(st.sampled_from(["application/rss+xml", "text/html", "application/json", "text/xml; charset=latin1",
                                  "application/octet-stream"]))
    return body, {"content-type": ctype}


# -- what must hold --------------------------------------------------------------------------


class Audit(HTMLParser):
    """Everything in rendered HTML that could run code, load something or leave the page."""

    BANNED = {"script", "iframe", "frame", "object", "embed", "form", "input", "meta", "base", "link", "svg", "math",
              "style"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BANNED and not (tag == "meta" and _harmless_meta(attrs)):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if name in ("href", "src", "action", "formaction", "background", "poster", "srcset", "xlink:href"):
                if not (value or "").strip().lower().startswith(("http://", "https://")):
                    self.problems.append(f"{tag} {name}={value!r}")
            if name == "style" and ("expression" in (value or "") or "url(" in (value or "")):
                self.problems.append(f"{tag} style={value!r}")


def _harmless_meta(attrs: list[tuple[str, str | None]]) -> bool:
    names = {k for k, _ in attrs}
    return "http-equiv" not in names or dict(attrs).get("http-equiv", "").lower() == "content-type"


def assert_clean_text(value: object, where: str) -> None:
    if isinstance(value, str):
        assert "\x00" not in value, where
        value.encode("utf-8")  # no lone surrogates: raises UnicodeEncodeError


def assert_stored_clean(store: Store) -> None:
    for table in ("entries", "feeds", "clusters", "memberships", "topic_matches", "digests"):
        for row in store.db.execute(f"SELECT * FROM {table}"):
            for value in row:
                assert_clean_text(value, table)


def assert_safe_message(message: email.message.EmailMessage) -> None:
    data = message.as_bytes()
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert set(parsed.keys()) <= HEADERS, parsed.keys()
    for name, value in message.items():
        assert "\r" not in str(value) and "\n" not in str(value), (name, value)
    html = parsed.get_body(("html",)).get_content()
    audit = Audit()
    audit.feed(html)
    audit.close()
    assert not audit.problems, (audit.problems, html[:2000])
    assert "<script" not in html.lower()
    parsed.get_body(("plain",)).get_content().encode("utf-8")


def outline(url: str, title: str) -> FeedSource:
    """The feed as `feeds import` would add it from an OPML outline with this (hostile) title."""
    doc = (f'<?xml version="1.0" encoding="utf-8"?><opml version="2.0"><body><outline text="{_attr(title)}" '
           f'xmlUrl="{url}"/></body></opml>').encode("utf-8", "surrogatepass")
    try:
        [source] = parse_opml(doc).sources
    except OpmlError:  # the whole file refused, with a reason: the feed is added by URL alone
        return FeedSource(url=url)
    return source


def run_documents(docs: list[tuple[bytes, dict[str, str]]], outlet: str) -> int:
    """The cycle's stages in-process, one feed per document; returns digest items rendered."""
    store = Store(":memory:")
    try:
        mon = Monitor(SETTINGS, store, clock=lambda: NOW)
        policy_ = PollPolicy()
        for n, (body, headers) in enumerate(docs):
            url = f"https://feeds.example/{n}.xml"
            store.upsert_feeds([outline(url, outlet) if n % 2 else FeedSource(url=url)], NOW)
            feed = store.feed_by_url(url)
            result = FetchResult(url=url, status=200, body=body, headers=headers, etag=f'"{n}"')
            try:
                parsed = parse_feed(body, headers, NOW, base_url=url)
            except ParseError as exc:  # the feed boundary: recorded as the feed's error
                store.apply_poll(feed, after_fetch(feed, result, NOW, policy_, parse_error=exc.reason), (), NOW)
                continue
            update = after_fetch(feed, result, NOW, policy_, warning=parsed.warning, channel_title=parsed.title,
                                 site_url=parsed.link)
            store.apply_poll(feed, update, parsed.entries, NOW)
        touched = mon.cluster_pending()
        topics.match_clusters(store, SETTINGS.topics, touched, NOW)
        assert_stored_clean(store)
        draft = outbox.draft(store, SETTINGS, TOPIC, NOW)
        if draft is None:
            return 0
        assert_safe_message(draft.message)
        return len(draft.plan.items)
    finally:
        store.close()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])
@given(st.lists(documents(), min_size=1, max_size=4), TEXT)
def test_hostile_documents_never_escape_the_feed_boundary_or_the_escaping(docs, outlet):
    run_documents(docs, outlet)


def test_the_harness_reaches_the_digest():
    """The invariants are checked on rendered digests, not vacuously: hostile items do get there."""
    body = ("<rss version=\"2.0\"><channel><title>&lt;script&gt;x&lt;/script&gt;\r\nBcc: a@b</title>"
            + "".join(f"<item><title>Telegram ban {escape(a)}</title><link>javascript:alert(1)</link>"
                      f"<guid>g{i}</guid><description>{escape(a)}</description></item>"
                      for i, a in enumerate(ATTACKS[:20])) + "</channel></rss>").encode("utf-8", "surrogatepass")
    assert run_documents([(body, {"content-type": "application/rss+xml"})], "Out\r\nlet <i>") >= 1


# -- the same through the real processes -------------------------------------------------------


def hostile_feed(rng: random.Random, n: int) -> bytes:
    items = []
    for i in range(rng.randint(1, 6)):
        title = " ".join(rng.choice(ATTACKS) for _ in range(3)) + (" Telegram banned" if rng.random() < 0.7 else "")
        summary = " ".join(rng.choice(ATTACKS) for _ in range(4))
        link = rng.choice(["javascript:alert(1)", f"https://o{n}.example/{i}", "data:x", " java\tscript:x"])
        raw = rng.random() < 0.3
        items.append(f"<item><title>{_x(title, raw)}</title><link>{_x(link, raw)}</link><guid>h{n}-{i}</guid>"
                     f"<description>{_x(summary, raw)}</description></item>")
    channel = escape(rng.choice(ATTACKS) + " outlet\r\nBcc: victim@example.org")
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{channel}</title>'
            + "".join(items) + "</channel></rss>").encode("utf-8", "surrogatepass")


def test_a_cycle_of_hostile_feeds_through_the_real_commands(tmp_path):
    rng = random.Random(int(os.environ.get("MONITOR_FUZZ_SEED", "5")))
    server, mail = LoopbackServer(), Mailbox()
    try:
        for n in range(60):
            server.routes[f"/{n}.xml"] = feed_route(hostile_feed(rng, n))
        db = tmp_path / "monitor.db"
        config = write_config(tmp_path / "monitor.toml", server.port, smtp_port=mail.port, topics=False,
                              extra=f"[[topics]]\nname = \"fuzz\"\ntitle = {json.dumps(TOPIC.title)}\n"
                                    "query = 'telegram AND ban*'\nrecipients = [\"desk@example.org\"]\n"
                                    "schedule = \"immediate\"\n")
        opml = "".join(f'<outline text="{_attr(rng.choice(ATTACKS[:20]))}" '
                       f'xmlUrl="{server.url(f"/{n}.xml")}"/>' for n in range(60))
        (tmp_path / "feeds.opml").write_text(f'<opml version="2.0"><body>{opml}</body></opml>')
        monitor(db, config, "feeds", "import", str(tmp_path / "feeds.opml"))
        poll = monitor(db, config, "poll", "--json")
        assert json.loads(poll.stdout)["feeds"] == 60 and "Traceback" not in poll.stderr
        sent = monitor(db, config, "digest", "send")
        assert "sent 1" in sent.stdout, sent.stdout
        for args in (("clusters", "list", "--since", "all", "--json"), ("search", "telegram", "--json"),
                     ("status", "--json"), ("feeds", "list", "--json")):
            json.loads(monitor(db, config, *args).stdout)
        conn = sqlite3.connect(db)
        try:
            conn.text_factory = bytes  # read raw: invalid UTF-8 must not be hidden by decoding
            for table in ("entries", "feeds", "clusters", "digests"):
                for row in conn.execute(f"SELECT * FROM {table}"):
                    for value in row:
                        if isinstance(value, bytes) and table != "digests":
                            assert b"\x00" not in value
                            value.decode("utf-8")
            assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] > 100
        finally:
            conn.close()
        [(_, _, data)] = mail.handler.messages
        assert_safe_message(email.message_from_bytes(data, policy=policy.default))
    finally:
        server.close()
        mail.stop()
