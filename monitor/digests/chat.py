"""Chat digests, pure: the text of one digest as a chat message, and how a destination is named.

Text in, text out; no I/O, and nothing heavy imported, so the CLI can show a preview and name
destinations without loading Apprise (monitor.digests.notifier sends).

One message per digest: the title is the e-mail subject ("Platform regulation: 3 new events,
1 updated"), the body one line per listed event, most significant first, and "+N more events"
past `max_items`:

    • Iran blocks Telegram nationwide (5 outlets) https://trend.example/a
    • Court upholds the ban (3 outlets, updated) https://gulf.example/b
      ↳ Follow-up, 261 days later: Founder charged in absentia
    +2 more events

Why the text is made inert here and sent as TEXT. Feed text is hostile, and the services read
the same string differently: Mattermost and Discord render Markdown in whatever they are sent and
ping `@channel`, `@here`, `@everyone`, `@all` or `@someone` in it; Matrix pings `@room`; Slack
reads `<!channel>`, `<@U123>` and `<url|text>`; a `[text](url)` link hides where it goes. The
notifier sends with Apprise's body_format TEXT, and Apprise 2.3 then does one of three things
per service (apprise/conversion/format.py and each plugin's dialect_convert):
- passes the text unchanged where TEXT is a native format: JSON, form and XML webhooks, ntfy,
  Matrix, Discord, Mattermost (which still renders Markdown and mentions in it);
- HTML-escapes it where the service takes HTML (Telegram, e-mail), and Slack escapes `& < >`
  itself and sends it as plain_text;
- backslash-escapes CommonMark punctuation where the service takes only Markdown (Teams
  workflows, Rocket.Chat, Google Chat).
So the defence must work on text that arrives verbatim, and must not be an escape that Apprise
escapes again or that a verbatim service shows: a backslash escape would reach the JSON webhook
as a backslash and still show one in Teams, an HTML entity would reach the webhook as `&lt;`.
`plain()` therefore swaps the few characters that carry markup (asterisk, underscore, backtick,
tilde, angle brackets, `||`) for look-alikes that carry none (the table in _LOOKALIKES), breaks
`](` into `] (`, and puts a WORD JOINER (U+2060: invisible, no line break) after an `@` that
starts a word, after a `&` that starts an entity, and before a line-start marker (`#`, `-`, `+`,
`=`, `|`, `1.`). Every service shows the result as the text it was, and no mention or Markdown
syntax matches it: mention parsers want a letter or digit right after the `@`.
Before that it drops control and format characters (Unicode Cc, Cf, Cs, Co: bidi overrides,
zero-width spaces that would hide an `@channel` from a filter) and collapses the text to one
line. Links are ours, not the feed's words: an outlet's http(s) link, percent-encoded where
chat markup could read it (`( ) [ ] < > @ |` and the like) and dropped when it carries a user.

A destination URL holds its secrets (webhook tokens, bot tokens, passwords, ntfy topics), so it
is stored as `destination_key` and shown as `destination_label`, which names the host only for
schemes whose host part is a server (json://, mmost://, matrix:// with a room, https://...);
for the others (slack://, tgram://, discord://, a bare ntfy:// topic) the host part is itself a
token, and the label is the scheme with "…".
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from monitor.digests.digest import MAX_SUBJECT, DigestItem, DigestPlan, follow_up_label, subject
from monitor.feeds.normalize import safe_url

DEFAULT_MAX_ITEMS = 10
MAX_HEADLINE = 200  # characters of a headline in chat: a line, not a paragraph
MAX_LINK = 600  # a longer link is left out rather than let one item fill a 2,000-character message

WORD_JOINER = "\u2060"
BULLET = "\u2022"
FOLLOW_UP = "\u21b3"
ELLIPSIS = "\u2026"

# Characters that carry markup somewhere (CommonMark, Slack mrkdwn, Discord, Mattermost), and
# the look-alike each becomes. Written as escapes: the look-alikes are confusable on purpose.
_LOOKALIKES = str.maketrans({
    "*": "\u2217",  # ASTERISK OPERATOR: bold/italic, list markers
    "_": "\u02cd",  # MODIFIER LETTER LOW MACRON: italic
    "`": "\u02cb",  # MODIFIER LETTER GRAVE ACCENT: code spans and fences
    "~": "\u223c",  # TILDE OPERATOR: strikethrough, Mattermost ~channel links
    "<": "\u2039",  # SINGLE LEFT-POINTING ANGLE QUOTATION MARK: <!channel>, <@U123>, <url|x>, HTML
    ">": "\u203a",  # SINGLE RIGHT-POINTING ANGLE QUOTATION MARK: and block quotes
})
_SPOILER = "\u2016"  # DOUBLE VERTICAL LINE for Discord's ||spoiler||
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co"})
_MENTION = re.compile(r"@(?=\w)")  # @channel, @here, @everyone, @all, @room, @someone
_ENTITY = re.compile(r"&(?=#?\w{1,32};)")  # &lt; &#64; would be decoded by Markdown renderers
_LINK_TEXT_END = re.compile(r"\]\(")  # CommonMark: link text, then "(" right after it
_LINE_START_MARK = re.compile(r"[#+=|-]|\d{1,9}[.)]")  # heading, list, setext rule, table, numbered list
_LINK_SAFE = ":/?#&=+$,;%!'*"  # kept as is (quote() also keeps letters, digits and "_.-~")
_NETLOC = re.compile(r"[A-Za-z0-9.\-_:%]+")
_MORE = re.compile(r"\+(\d+) more events?")


@dataclass(frozen=True)
class ChatMessage:
    title: str  # one line: the e-mail subject, "<topic title>: 3 new events, 1 updated"
    body: str  # plain text, lines separated by "\n"


def plain(text: str, limit: int = 300) -> str:
    """Feed text as one line of plain text that no chat service formats or turns into a ping.

    At most `limit` characters of the text are kept (then "…"); the word joiners put in are
    not counted. See the module docstring for why these substitutions and not escapes.
    """
    text = " ".join(text.split())  # every whitespace run, line and paragraph separators too
    if not text.isprintable():  # after split(), only categories C* are left unprintable
        text = "".join(c for c in text if unicodedata.category(c) not in _DROPPED)
        text = " ".join(text.split())  # a dropped character may have stood between two spaces
    if len(text) > limit:
        text = text[:max(0, limit - 1)].rstrip() + ELLIPSIS
    text = text.translate(_LOOKALIKES).replace("||", _SPOILER)
    text = _LINK_TEXT_END.sub("] (", text)
    text = _MENTION.sub("@" + WORD_JOINER, text)
    text = _ENTITY.sub("&" + WORD_JOINER, text)
    if _LINE_START_MARK.match(text):
        text = WORD_JOINER + text
    return text


def _link(url: str | None) -> str | None:
    """An http(s) link that chat markup cannot read into: percent-encoded past the host."""
    url = safe_url(url)
    if url is None or len(url) > MAX_LINK:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not _NETLOC.fullmatch(parts.netloc):  # a user part ("@"), IPv6 brackets, anything odd
        return None
    rest = url[len(parts.scheme) + 3 + len(parts.netloc):]
    return f"{parts.scheme.lower()}://{parts.netloc}{quote(rest, safe=_LINK_SAFE)}"


def describe(item: DigestItem) -> str:
    """One event: `• Headline (5 outlets, updated) https://link`, and a follow-up on a second line."""
    count = len(item.outlets)
    notes = [f"{count} outlet{'' if count == 1 else 's'}"]
    if item.kind == "updated":
        notes.append("updated")
    line = f"{BULLET} {plain(item.headline, MAX_HEADLINE) or '(no title)'} ({', '.join(notes)})"
    link = next((x for x in (_link(o.link) for o in item.outlets) if x), None)
    if link:
        line += f" {link}"
    if item.follow_up is not None:
        line += (f"\n  {FOLLOW_UP} {follow_up_label(item.follow_up.days)}: "
                 f"{plain(item.follow_up.headline, MAX_HEADLINE) or '(no title)'}")
    return line


def _more(count: int) -> str:
    return f"+{count} more event{'' if count == 1 else 's'}"


def render_chat(plan: DigestPlan, *, max_items: int = DEFAULT_MAX_ITEMS) -> ChatMessage:
    """The digest as one chat message; items past `max_items` join the unlisted in "+N more"."""
    shown = plan.items[:max(1, max_items)]
    more = len(plan.items) - len(shown) + len(plan.unlisted)
    lines = [describe(i) for i in shown]
    if more:
        lines.append(_more(more))
    return ChatMessage(title=plain(subject(plan), MAX_SUBJECT), body="\n".join(lines) or "(no events)")


def fit(body: str, limit: int) -> str:
    """A rendered body cut to at most `limit` characters by leaving out whole events from the end.

    The events left out join the "+N more events" count, so a service with a small message limit
    (Discord 2,000 characters, Teams workflows 1,000) shows fewer events rather than refusing the
    message or cutting one in half. Only one event that alone is too long is cut in its middle.
    """
    if len(body) <= limit:
        return body
    lines = body.split("\n")
    more = 0
    if lines and (m := _MORE.fullmatch(lines[-1])):
        more = int(m.group(1))
        lines.pop()
    events: list[list[str]] = []
    for line in lines:
        if events and not line.startswith(BULLET):
            events[-1].append(line)  # a follow-up line belongs to the event above it
        else:
            events.append([line])

    def joined() -> str:
        text = "\n".join("\n".join(e) for e in events)
        return f"{text}\n{_more(more)}" if more else text

    while len(events) > 1 and len(joined()) > limit:
        events.pop()
        more += 1
    text = joined()
    return text if len(text) <= limit else text[:max(0, limit - 1)] + ELLIPSIS


def destination_key(url: str) -> str:
    """`chat:` and the first 16 hex digits of the URL's SHA-256 (surrounding blanks stripped): the
    stable name stored in the database instead of the URL, which holds secrets."""
    return "chat:" + hashlib.sha256(url.strip().encode("utf-8", "surrogatepass")).hexdigest()[:16]


# Schemes whose host part is the server's name, as Apprise's URL templates for them say ("{host}"
# and nothing else in that place; tests/digests/test_chat.py compares the label with the host
# Apprise parses). For every other scheme the host part may be a token: slack://, tgram://,
# discord://, pover://, pbul:// ...
_HOST_SCHEMES = frozenset("""
    http https json jsons form forms xml xmls mmost mmosts rocket rockets gotify gotifys nctalk nctalks
    ncloud nclouds synology synologys mastodon mastodons toot toots misskey misskeys apprise apprises
    workflow workflows signal signals hassio hassios xmpp xmpps irc ircs mailto mailtos humhub humhubs
""".split())
# Schemes whose host part is a server only when a path follows: ntfy://topic and matrix://token
# (t2bot) put a secret there, ntfy://host/topic and matrix://user:pass@host/#room a server.
_HOST_IF_PATH_SCHEMES = frozenset({"ntfy", "ntfys", "matrix", "matrixs"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://(.*)\Z", re.DOTALL)
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\]")  # names, IPv4, [IPv6]


def url_scheme(url: str) -> str | None:
    """A URL's scheme, lower-cased; None when the URL is not of the form `scheme://...`."""
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else None


def destination_label(url: str) -> str:
    """What may be shown and logged of a destination: `scheme://host[:port]`, nothing more.

    No user, password, token, path or query. `scheme://…` when the scheme's host part may be a
    token; `scheme://?` (or `?://?`) when the URL cannot be read. Never raises.
    """
    try:
        match = _SCHEME.match(url.strip())
        if match is None:
            return "?://?"
        scheme, rest = match.group(1).lower(), match.group(2)
        if scheme not in _HOST_SCHEMES and scheme not in _HOST_IF_PATH_SCHEMES:
            return f"{scheme}://{ELLIPSIS}"
        # Apprise reads "#" as part of the path (matrix://user:pass@host/#room), not a fragment.
        authority, _, path = rest.partition("?")[0].partition("/")
        if "@" in path and "@" not in authority:  # json://user:pa/ss@host: a "/" in a password
            return f"{scheme}://?"
        if scheme in _HOST_IF_PATH_SCHEMES and not path.strip("/"):
            return f"{scheme}://{ELLIPSIS}"
        hostport = authority.rpartition("@")[2]
        if hostport.startswith("["):
            host, _, port = hostport.partition("]")
            host += "]"
            port = port[1:] if port.startswith(":") else ("?" if port else "")
        else:
            host, _, port = hostport.partition(":")
        if len(host) > 253 or not _HOSTNAME.fullmatch(host):
            return f"{scheme}://?"
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            return f"{scheme}://?"
        return f"{scheme}://{host.lower()}" + (f":{int(port)}" if port else "")
    except Exception:  # a label is shown in error paths: it must never be one
        return "?://?"
