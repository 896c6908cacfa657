"""Chat text, pure: hostile feed text made inert, one digest as one message, destinations named safely."""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import TopicSettings
from monitor.digests.chat import (
    DEFAULT_MAX_ITEMS,
    ChatMessage,
    describe,
    destination_key,
    destination_label,
    fit,
    plain,
    render_chat,
)
from monitor.digests.digest import DigestItem, DigestPlan, FollowUpNote, OutletLink, Spread

WJ = "\u2060"  # WORD JOINER: invisible, what plain() puts after an "@" that starts a word
T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
TOPIC = TopicSettings(name="platform-regulation", query="telegram", title="Platform regulation")

# What the services read as a ping or as markup, written from their documentation, not from chat.py:
PINGS = [
    re.compile(r"@(?:channel|here|everyone|all|room)\b", re.I),  # Slack, Mattermost, Discord, Matrix...
    re.compile(r"@[A-Za-z0-9]"),  # Mattermost and Telegram @username, Matrix @user:server
    re.compile(r"<[!@#&]"),  # Slack <!channel> <@U123> <#C1>, Discord <@123> <@&role> <#chan>
]
MARKUP = [
    re.compile(r"[*_`~<>]"),  # emphasis, code, strikethrough, autolinks, HTML, quotes
    re.compile(r"\]\("),  # [text](url): "a link text followed immediately by a left parenthesis" (CommonMark)
    re.compile(r"\|\|"),  # Discord spoilers
    re.compile(r"&#?\w+;"),  # entities a Markdown renderer decodes
]
HOSTILE = [
    "Breaking: <b>bold</b> <script>alert(1)</script> <a href='http://evil.example'>x</a>",
    "@channel @here @everyone @all @room please read",
    "<!everyone> <!channel> <!here|here> <@U123ABC> <#C0123|general> <@&987> <t:1700000000>",
    "*bold* **strong** _italic_ __under__ `code` ```fence``` ~~struck~~ ~struck~ ||spoiler||",
    "[harmless text](http://phish.example) and ![img](http://x.example/p.png) <http://auto.example>",
    "# heading", "## heading", "> quoted", "- list item", "1. numbered", "-# subtext", "=== rule",
    "line one\nline two\r\nline three\u2028four\u2029five\x85six\x0bseven",
    "null\x00bell\x07esc\x1b[31mred\x1b[0m del\x7f c1\x9b",
    "rtl \u202eevil\u202c zero\u200bwidth @\u200bchannel @\ufeffhere soft\u00adhyphen \u2066iso\u2069",
    "&lt;!channel&gt; &#64;everyone &amp; AT&T",
    "private \ue000 use and a lone \ud800 surrogate",
]


def item(cid: int, headline: str, outlets: int = 2, kind: str = "new", links: bool = True,
         follow_up: FollowUpNote | None = None, lead: str | None = None) -> DigestItem:
    names = ["Wire Service", "Gulf Ledger", "Tehran Times", "Trend", "Harbour Post", "Daily Lamp"][:outlets]
    return DigestItem(
        cluster_id=cid, kind=kind, headline=headline,
        outlets=tuple(OutletLink(n, f"https://{n.split()[0].lower()}.example/{cid}" if links else None)
                      for n in names),
        new_outlets=(names[-1],) if kind == "updated" else (), reports=outlets, first_seen=T0,
        last_seen=T0 + timedelta(hours=outlets), terms=("telegram",),
        spread=Spread(T0, timedelta(hours=1), (1,) * outlets), follow_up=follow_up, lead=lead)


def plan_of(*items: DigestItem, unlisted: int = 0) -> DigestPlan:
    hidden = tuple(item(100 + i, f"Unlisted event {i}") for i in range(unlisted))
    return DigestPlan(topic=TOPIC, items=items, unlisted=hidden)


def visible(text: str) -> str:
    return text.replace(WJ, "")


# -- plain() -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_leaves_nothing_that_pings_or_formats(text):
    out = plain(text)
    assert "\n" not in out and "\r" not in out
    assert [p.pattern for p in PINGS if p.search(out)] == []
    assert [p.pattern for p in MARKUP if p.search(out)] == []
    assert [c for c in out if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c != WJ] == []
    assert not re.match(r"\s*(?:#|>|[-+*]\s|\d+[.)]\s|-#|=+)", out)  # no block syntax at a line start


def test_plain_keeps_the_words_readable():
    """Look-alikes for the markup characters, a space in `](`, an invisible joiner after `@`:
    a reader sees the same words, a webhook gets no entity or backslash escapes."""
    assert plain("Iran blocks Telegram, again (5th time) - 12% drop?") == \
        "Iran blocks Telegram, again (5th time) - 12% drop?"
    assert plain("@channel *bold* _x_ `code` ~~s~~ <!everyone>") == (
        f"@{WJ}channel \u2217bold\u2217 \u02cdx\u02cd \u02cbcode\u02cb "
        "\u223c\u223cs\u223c\u223c \u2039!everyone\u203a")
    assert plain("[text](http://x.example) A&B ||s||") == "[text] (http://x.example) A&B \u2016s\u2016"
    assert visible(plain("# Heading")) == "# Heading"
    assert plain("line\none\t\ttwo\x00three") == "line one twothree"
    assert plain("Ümlaut café Тегеран 東京 🚀 Mañana") == "Ümlaut café Тегеран 東京 🚀 Mañana"


def test_plain_cuts_long_text_at_the_limit_with_an_ellipsis():
    out = plain("word " * 200, limit=50)
    assert len(out) == 50 and out.endswith("\u2026")
    assert plain("short", limit=50) == "short"
    assert len(visible(plain("@everyone " * 100, limit=30))) == 30


SYNTAX = [*"@<>!*_`~[]()#|&;:=-+ \n\t\u2060\u200b\u202e", "channel", "here", "everyone", "lt", "1."]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(SYNTAX + list("ab\u00e9")), max_size=40).map("".join),
                 st.text(max_size=120)))
def test_plain_never_leaves_a_ping_or_markup_whatever_the_text(text):
    out = plain(text)
    assert "\n" not in out
    assert not any(p.search(out) for p in PINGS + MARKUP)


# -- the message ---------------------------------------------------------------------------------


def test_a_digest_is_one_message_with_a_line_per_event_and_the_rest_counted():
    plan = plan_of(
        item(1, "Regulator fines two platforms over data transfers", outlets=5),
        item(2, "Court upholds messaging app ban", outlets=3, kind="updated",
             follow_up=FollowUpNote("Founder charged in absentia", 261)),
        item(3, "Operators report outages after new rules", outlets=1, lead="Not shown in chat."),
        unlisted=2)
    message = render_chat(plan)
    assert message == ChatMessage(
        title="Platform regulation: 4 new events, 1 updated",
        body="\u2022 Regulator fines two platforms over data transfers (5 outlets) https://wire.example/1\n"
             "\u2022 Court upholds messaging app ban (3 outlets, updated) https://wire.example/2\n"
             "  \u21b3 Follow-up, 261 days later: Founder charged in absentia\n"
             "\u2022 Operators report outages after new rules (1 outlet) https://wire.example/3\n"
             "+2 more events")


def test_items_past_max_items_join_the_unlisted_in_the_count():
    plan = plan_of(*(item(i, f"Event {i}") for i in range(1, 13)), unlisted=3)
    body = render_chat(plan).body.split("\n")
    assert len(body) == 11 and body[-1] == "+5 more events"  # 12 listed, 10 shown (the default), 3 unlisted
    assert body[0].startswith("\u2022 Event 1 ") and body[9].startswith("\u2022 Event 10 ")
    assert DEFAULT_MAX_ITEMS == 10
    assert render_chat(plan, max_items=2).body.split("\n")[-1] == "+13 more events"
    assert render_chat(plan_of(item(1, "One"), item(2, "Two")), max_items=1).body.endswith("\n+1 more event")


def test_hostile_headlines_and_outlet_text_arrive_inert_in_the_message():
    plan = plan_of(*(item(i, text) for i, text in enumerate(HOSTILE, 1)),
                   item(99, "Quiet", follow_up=FollowUpNote("@here <!channel> *now*", 0)))
    message = render_chat(plan, max_items=50)
    for text in (message.title, message.body):
        assert not any(p.search(text) for p in PINGS + MARKUP), text
    lines = message.body.split("\n")
    assert len(lines) == len(HOSTILE) + 2  # one line per event, the follow-up on its own
    assert all(line.startswith(("\u2022 ", "  \u21b3 ")) for line in lines)


def test_the_link_is_the_first_outlet_link_made_inert_for_markdown():
    linked = item(1, "Headline")
    linked = DigestItem(**{**linked.__dict__, "outlets": (
        OutletLink("No Link", None),
        OutletLink("Wire", "https://wire.example/a_(b)/@channel?q=[1]&r=<x>|y"),
        OutletLink("Other", "https://other.example/"))})
    line = describe(linked)
    assert line == ("\u2022 Headline (3 outlets) "
                    "https://wire.example/a_%28b%29/%40channel?q=%5B1%5D&r=%3Cx%3E%7Cy")
    assert describe(item(2, "No links", links=False)) == "\u2022 No links (2 outlets)"
    with_user = DigestItem(**{**linked.__dict__, "outlets": (OutletLink("W", "https://u:p@wire.example/"),)})
    assert describe(with_user) == "\u2022 Headline (1 outlet)"


def test_the_title_is_the_subject_made_plain():
    topic = TopicSettings(name="t", query="x", title="# @here *Desk*")
    message = render_chat(DigestPlan(topic=topic, items=(item(1, "A"),), unlisted=()))
    assert visible(message.title) == "# @here \u2217Desk\u2217: 1 new event"
    assert not any(p.search(message.title) for p in PINGS + MARKUP)


def test_fit_drops_whole_events_from_the_end_into_the_count():
    body = render_chat(plan_of(*(item(i, f"Event number {i} " + "x" * 60) for i in range(1, 11)),
                               unlisted=4)).body
    assert fit(body, len(body)) == body
    cut = fit(body, 500)
    assert len(cut) <= 500
    lines = cut.split("\n")
    shown = len(lines) - 1
    assert lines[-1] == f"+{10 - shown + 4} more events"
    assert lines[:-1] == body.split("\n")[:shown]  # whole lines, in order
    assert len(fit("\u2022 " + "y" * 900, 100)) == 100  # one event alone too long: cut in the middle


# -- destinations --------------------------------------------------------------------------------


@pytest.mark.parametrize("url, label", [
    ("json://user:s3cret@127.0.0.1:8080/hook/p4th?-token=t0ken&token=t0ken", "json://127.0.0.1:8080"),
    ("jsons://hooks.example.org/incoming/s3cret", "jsons://hooks.example.org"),
    ("form://127.0.0.1/x", "form://127.0.0.1"),
    ("mmost://Chat.Example.ORG:8065/s3crettoken", "mmost://chat.example.org:8065"),
    ("mmosts://bot@chat.example.org/path/s3crettoken", "mmosts://chat.example.org"),
    ("matrix://user:s3cret@matrix.example.org/#newsroom", "matrix://matrix.example.org"),
    ("matrixs://s3crettoken", "matrixs://\u2026"),  # t2bot mode: the host part is the token
    ("ntfy://ntfy.example.org/s3crettopic", "ntfy://ntfy.example.org"),
    ("ntfy://s3crettopic", "ntfy://\u2026"),  # ntfy.sh: the topic is the secret
    ("https://hooks.slack.com/services/T000/B000/s3cret", "https://hooks.slack.com"),
    ("slack://T1JJ3T3L2/A1BRTD4JD/s3cretTokenC/#general", "slack://\u2026"),
    ("tgram://123456789:s3cretBotToken/-100123", "tgram://\u2026"),
    ("discord://1234567/s3cretwebhooktoken", "discord://\u2026"),
    ("pbul://o.s3cretaccesstoken", "pbul://\u2026"),
    ("json://[::1]:9000/hook", "json://[::1]:9000"),
    ("json://user:pa/ss@host.example/p", "json://?"),  # a "/" in a password: no telling the host
    ("json://host.example:notaport/x", "json://?"),
    ("json://host.example:99999/x", "json://?"),
    ("json://%73ecret@/x", "json://?"),
    ("not a url s3cret", "?://?"),
    ("", "?://?"),
])
def test_destination_label_shows_scheme_and_server_and_nothing_else(url, label):
    assert destination_label(url) == label
    assert not re.search(r"s3cret|t0ken|p4th|user|bot@", destination_label(url))


def test_destination_label_never_raises():
    for url in ["\x00://", "json://" + "a" * 10_000, "json://[", "json://[zz]:1/", "a" * 40 + "://x", "\ud800://x",
                "json://host.example:abc/x", "json://host.example:\u0661\u0662/x", "json://host:0/", "json://h:-1/"]:
        assert isinstance(destination_label(url), str)


@pytest.mark.parametrize("url", [
    "json://user:pw@hooks.example.org:8080/p", "mmost://chat.example.org/token", "form://127.0.0.1:9/x",
    "matrix://user:pw@matrix.example.org/#room", "ntfy://ntfy.example.org/topic",
    "rocket://user:pw@rocket.example.org/#general", "gotify://gotify.example.org/token",
    "mailto://user:pw@mail.example.org", "workflow://prod-01.westus.logic.azure.com:443/abc/sig",
])
def test_the_host_a_label_shows_is_the_server_apprise_connects_to(url):
    """The label's host is Apprise's own reading of the URL's server, not a token in its place."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    assert plugin is not None
    shown = destination_label(url).split("://", 1)[1]
    assert shown.split(":")[0] == plugin.host.lower()


def test_destination_key_is_a_stable_digest_of_the_url():
    url = "json://user:s3cret@127.0.0.1:8080/hook"
    key = destination_key(url)
    assert key == "chat:" + hashlib.sha256(url.encode()).hexdigest()[:16]
    assert re.fullmatch(r"chat:[0-9a-f]{16}", key) and "s3cret" not in key
    assert destination_key(url) == key and destination_key(url + "2") != key


def test_the_chat_module_does_not_load_apprise():
    """The CLI renders previews and labels without paying for Apprise's import."""
    code = ("import sys, monitor.digests.chat, monitor.digests.notifier; "
            "sys.exit('apprise' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
