"""Tracked topics: which event clusters a topic's FTS5 query matches, and through which words.

A topic query is SQLite FTS5 syntax over entry title and text, so users get a documented
boolean language (AND/OR/NOT, "phrases", prefix*, NEAR) and we write no parser. A cluster
matches when any of its member entries matches. Matching runs only over the clusters a
cycle touched (`rowid IN (their members)`), which keeps it proportional to what is new.

The index matches words as written (no stemming: analysts list the forms they want, or
write a prefix, `arrest*`). The matched terms come from FTS5's own `highlight()`, so what
the digest says matched is exactly what the index matched (`ban*` shows as "banned").

This module owns the decisions: how a query is rewritten for FTS5, which clusters match and
through which words, when a query is refused. The queries run in monitor.storage.search
(full text) and monitor.storage.matches (clusters and the topic_matches table).
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.config import TopicSettings
from monitor.digests.schedule import parse_schedule
from monitor.errors import ConfigError
from monitor.storage import matches as matches_db
from monitor.storage import outbox as outbox_db
from monitor.storage import search as search_db
from monitor.storage.database import Store, survivors

# Control characters never survive normalize.clean_text, so they cannot occur in stored
# text and are safe as highlight markers.
_OPEN, _CLOSE = "\x02", "\x03"
_HIGHLIGHT = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.S)
_SPACE = re.compile(r"\s+")
MAX_TERMS = 20  # terms kept per match: enough to explain it, bounded for a cluster of hundreds
MAX_TERM_LEN = 60


@dataclass(frozen=True)
class TopicMatch:
    """A cluster that a topic matches, with the member entries and the words that matched."""

    topic: str
    cluster_id: int
    entry_ids: tuple[int, ...]  # members whose title or text matched the query
    terms: tuple[str, ...]  # matched words and phrases as they appear, lower-cased, first seen first
    outlets: tuple[str, ...]  # distinct outlets of the whole cluster
    headline: str = ""
    last_activity: datetime | None = None


# A query as FTS5's lexer sees it: quoted strings ("" escapes a quote; an unterminated one is
# left for FTS5 to reject), its punctuation, and everything else as candidate barewords.
_QUERY_TOKEN = re.compile(
    r'(?P<string>"(?:[^"]|"")*"?)|(?P<punct>[()*:^+,{}])|(?P<space>\s+)|(?P<word>[^\s()"*:^+,{}]+)')
_POSSESSIVE = re.compile(r"(?:['\u2019]s|['\u2019])$", re.I)


def _is_bareword(word: str) -> bool:
    """FTS5 barewords: ASCII letters, digits and '_', plus any non-ASCII character."""
    return all(not c.isascii() or c.isalnum() or c in "_\x1a" for c in word)


def fts_query(query: str) -> str:
    """The topic query as given, with the words FTS5 would refuse or mis-read turned into what a reader means.

    - Users write names as they appear in the news: `Telegram's`, `al-Mahdi`, `U.S.`. FTS5
      rejects an ASCII apostrophe, hyphen or dot outside quotes, so such a word becomes a
      quoted phrase (`"al-Mahdi"` matches "al-Mahdi" and "al Mahdi", which the tokenizer
      splits alike), and a trailing possessive is dropped (`Telegram's` matches
      "Telegram", "Telegram's" and "Telegram’s").
    - `a AND NOT b` becomes FTS5's `a NOT b` (its NOT is binary and refuses the AND).
    Everything else, operators, phrases, NEAR groups and column filters, is left byte for
    byte, so the documented syntax keeps its meaning and real errors still surface.
    """
    tokens = [(m.lastgroup, m.group()) for m in _QUERY_TOKEN.finditer(query)]
    solid = [(i, t) for i, (k, t) in enumerate(tokens) if k != "space"]
    after = {i: solid[n + 1][1] if n + 1 < len(solid) else "" for n, (i, _) in enumerate(solid)}
    out: list[str] = []
    for i, (kind, text) in enumerate(tokens):
        if ((kind == "word" and text == "AND" and after[i] == "NOT" and out)
                or (kind == "space" and out and out[-1].isspace())):
            continue
        if kind == "word" and any(c.isalnum() for c in text) and after[i] != ":":  # `title:` names a column
            stripped = _POSSESSIVE.sub("", text) if len(text) > 2 else text
            if _is_bareword(stripped) and stripped:
                text = stripped
            elif not _is_bareword(text):
                text = '"' + text + '"'
        out.append(text)
    return "".join(out)


def validate_query(store_or_conn: Store | sqlite3.Connection, topic: TopicSettings) -> None:
    """Reject a query FTS5 cannot run, naming the topic and FTS5's own reason.

    A lower-case `or`, `and` or `not` is refused too: FTS5 would search for the word (the
    query `telegram or whatsapp` needs all three words), which is never what was meant.
    Quote it (`"or"`) to search for the word.
    """
    for kind, text in ((m.lastgroup, m.group()) for m in _QUERY_TOKEN.finditer(topic.query)):
        if kind == "word" and text.upper() in ("AND", "OR", "NOT") and text != text.upper():
            raise ConfigError(f"topics.{topic.name}.query: {text!r} would be searched as a word; write "
                              f"{text.upper()} for the operator, or \"{text}\" for the word"
                              f" (query: {topic.query})")
    reason = search_db.query_error(store_or_conn, fts_query(topic.query))
    if reason is not None:
        raise ConfigError(f"topics.{topic.name}.query: {reason} (query: {topic.query})")


def validate_topics(store: Store, topics: Iterable[TopicSettings]) -> None:
    """Check every topic's query and schedule at start-up, before any cycle depends on them."""
    for topic in topics:
        validate_query(store, topic)
        try:
            parse_schedule(topic.schedule)
        except ValueError as exc:
            raise ConfigError(f"topics.{topic.name}.schedule: {exc}") from None


def validate_destinations(topics: Iterable[TopicSettings]) -> None:
    """Check that Apprise can load every topic's chat destinations. A destination is named by what
    may be shown of it (destination_label): its URL holds a token.

    Run by the commands that deliver or show chat digests (the daemon before READY, `digest send`,
    `digest preview`), not by every command: loading Apprise's plugins costs about 0.3 s."""
    from monitor.digests.chat import destination_label  # with the chat renderer: not for every command
    from monitor.digests.notifier import check_url

    for topic in topics:
        for url in topic.notify:
            reason = check_url(url)
            if reason is not None:
                raise ConfigError(f"topics.{topic.name}.notify: {destination_label(url)}: {reason}")


def extract_terms(*highlighted: str | None) -> list[str]:
    """The marked spans of highlight() output, lower-cased with whitespace collapsed, in order."""
    terms: list[str] = []
    for text in highlighted:
        for span in _HIGHLIGHT.findall(text or ""):
            term = _SPACE.sub(" ", span).strip().lower()[:MAX_TERM_LEN]
            if term and term not in terms:
                terms.append(term)
    return terms


def _survivors(store: Store, cluster_ids: Iterable[int]) -> list[int]:
    """The live clusters for `cluster_ids`: a merged-away cluster stands for the one that absorbed it."""
    return sorted(set(survivors(store, cluster_ids).values()))


def find_matches(store: Store, topic: TopicSettings, cluster_ids: Iterable[int]) -> list[TopicMatch]:
    """Matches of one topic among `cluster_ids` (merged-away ids count as their survivor). Reads only."""
    live = _survivors(store, cluster_ids)
    info = matches_db.cluster_outlines(store, live)
    owner = {eid: cid for cid, ci in info.items() for eid in ci.members}
    hits = {eid: extract_terms(title, text) for eid, (title, text) in search_db.highlighted_matches(
        store, fts_query(topic.query), list(owner), _OPEN, _CLOSE).items()}
    per_cluster: dict[int, list[int]] = {}
    for eid in sorted(hits):
        per_cluster.setdefault(owner[eid], []).append(eid)
    matches = []
    for cid, eids in sorted(per_cluster.items()):
        ci = info[cid]
        if len(ci.outlets) < topic.min_outlets:
            continue
        terms: list[str] = []
        for eid in eids:
            terms.extend(t for t in hits[eid] if t not in terms)
        matches.append(TopicMatch(topic=topic.name, cluster_id=cid, entry_ids=tuple(eids),
                                  terms=tuple(terms[:MAX_TERMS]), outlets=ci.outlets, headline=ci.headline,
                                  last_activity=ci.last_activity))
    return matches


def record_matches(store: Store, matches: Iterable[TopicMatch], now: datetime) -> None:
    """Upsert topic_matches: first_matched is kept, last_matched moves, entries and terms accumulate."""
    with store.write():
        for m in matches:
            matches_db.record_match(store, m.topic, m.cluster_id, m.entry_ids, m.terms, now, MAX_TERMS)


def match_clusters(store: Store, topics: Sequence[TopicSettings], cluster_ids: Iterable[int],
                   now: datetime) -> list[TopicMatch]:
    """The poll cycle's step: match every topic against the clusters this cycle touched, and record it.

    Reads happen before the write transaction, so the write lock is held only for the upserts.
    A topic whose query fails at run time (the config changed under a running daemon) is
    reported as a ConfigError rather than silently matching nothing.
    """
    ids = list(cluster_ids)
    if not ids or not topics:
        return []
    matches: list[TopicMatch] = []
    for topic in topics:
        try:
            matches.extend(find_matches(store, topic, ids))
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"topics.{topic.name}.query: {search_db.fts_reason(exc)}") from None
    record_matches(store, matches, now)
    return matches


def test_topic(store: Store, topic: TopicSettings, since: timedelta | None,
               now: datetime) -> list[TopicMatch]:
    """`monitor topics test NAME --since 7d`: clusters active within `since` that would match. Writes nothing.

    Newest activity first, like `clusters list`. `since=None` looks at every cluster.
    """
    validate_query(store, topic)
    ids = matches_db.live_cluster_ids(store, None if since is None else now - since)
    with store.read():
        matches = find_matches(store, topic, ids)
    return sorted(matches, key=lambda m: (m.last_activity or now, m.cluster_id), reverse=True)


@dataclass(frozen=True)
class Delivery:
    """One way a topic's digests go out (mail, or one chat destination) and how it has fared."""

    channel: str  # "mail" or "chat"
    destination: str  # "3 recipients", or the chat destination's scheme and host (its URL holds a token)
    last_sent: datetime | None
    sent: int
    pending: int
    failed: int
    last_error: str | None  # of its latest digest that failed or waits for a retry


@dataclass(frozen=True)
class TopicSummary:
    """One configured topic with its activity, for `monitor topics list`."""

    topic: TopicSettings
    matches: int  # clusters it has matched (merged-away ones count for their survivor)
    last_matched: datetime | None
    last_digest: datetime | None  # when its last digest was created (any status)
    pending: int  # its digests waiting in the outbox
    deliveries: tuple[Delivery, ...] = ()  # mail (when it has recipients), then each chat destination


def topic_summaries(store: Store, topics: Iterable[TopicSettings]) -> list[TopicSummary]:
    """Configured topics, in config order, with what the database knows about each."""
    from monitor.digests.chat import destination_key, destination_label

    activity = matches_db.topic_activity(store)
    channels = outbox_db.channel_activity(store)
    idle = matches_db.TopicActivity(matches=0, last_matched=None, last_digest=None, pending=0)
    none = outbox_db.ChannelActivity(last_sent=None, sent=0, pending=0, failed=0, last_error=None)
    result = []
    for t in topics:
        a = activity.get(t.name, idle)
        n = len(t.recipients)
        ways = [("mail", outbox_db.MAIL, f"{n} recipient{'' if n == 1 else 's'}")] if n else []
        ways += [("chat", destination_key(url), destination_label(url)) for url in dict.fromkeys(t.notify)]
        deliveries = []
        for kind, channel, shown in ways:
            c = channels.get((t.name, channel), none)
            deliveries.append(Delivery(kind, shown, c.last_sent, c.sent, c.pending, c.failed, c.last_error))
        result.append(TopicSummary(topic=t, matches=a.matches, last_matched=a.last_matched,
                                   last_digest=a.last_digest, pending=a.pending,
                                   deliveries=tuple(deliveries)))
    return result


test_topic.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
