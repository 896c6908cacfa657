"""Topics: FTS5 queries validated with FTS5's own reasons, matches recorded with entries and terms."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from monitor.config import TopicSettings
from monitor.digests.topics import (
    fts_query,
    match_clusters,
    test_topic,
    topic_summaries,
    validate_query,
    validate_topics,
)
from monitor.errors import ConfigError
from monitor.storage.database import iso
from tests.support.world import NOW


def topic(query: str, **kw) -> TopicSettings:
    return TopicSettings(name=kw.pop("name", "platform-regulation"), query=query, title="Platform regulation", **kw)


@pytest.mark.parametrize("query, reason", [
    ("(telegram OR whatsapp", "syntax error"),
    ("AND", 'syntax error near "AND"'),
    ("telegram AND", "syntax error"),
    ("foo:bar", "no such column: foo"),
    ('"unterminated phrase', "unterminated string"),
])
def test_bad_queries_are_rejected_with_topic_name_and_fts5_reason(world, query, reason):
    # An empty index must still parse the query: LIMIT 0 would accept all of these.
    with pytest.raises(ConfigError) as err:
        validate_query(world.store, topic(query))
    assert str(err.value).startswith("topics.platform-regulation.query: ")
    assert reason in str(err.value)


@pytest.mark.parametrize("query", ["telegram or whatsapp", "telegram And ban", "telegram not sport"])
def test_lower_case_operators_are_refused_with_a_hint(world, query):
    with pytest.raises(ConfigError, match=r"would be searched as a word; write (OR|AND|NOT) for the operator"):
        validate_query(world.store, topic(query))


@pytest.mark.parametrize("query", [
    'telegram', '"or" AND telegram', 'ban*', '"social media"', 'NEAR(telegram ban, 5)', 'title:telegram', '-title:ban',
    '(telegram OR whatsapp) AND NOT sport', "Telegram's", "al-Mahdi", "U.S. AND ban",
])
def test_good_queries_pass(world, query):
    validate_query(world.store, topic(query))
    validate_query(world.store.db.conn, topic(query))  # a bare connection works too


def test_validate_topics_checks_schedules(world):
    with pytest.raises(ConfigError, match=r"topics.t.schedule: .*61"):
        validate_topics(world.store, [topic("telegram", name="t", schedule="61 * * * *")])


@pytest.mark.parametrize("query, expected", [
    ("Telegram's ban", "Telegram ban"),
    ("Telegram\u2019s", "Telegram"),
    ("al-Mahdi OR Montazeralmahdi", '"al-Mahdi" OR Montazeralmahdi'),
    ("e-mail*", '"e-mail"*'),
    ('"social media" AND ban*', '"social media" AND ban*'),
    ("NEAR(telegram ban, 5)", "NEAR(telegram ban, 5)"),
    ("-title:ban", "-title:ban"),
    ("(telegram", "(telegram"),
    ("x - y", "x - y"),
    ("(telegram OR whatsapp) AND NOT sport", "(telegram OR whatsapp) NOT sport"),
    # the index holds words as written, so a prefix needs no help
    ("regulat* AND telegram", "regulat* AND telegram"),
    ("title:regulat*", "title:regulat*"),
    ("NEAR(regulat* telegram, 5)", "NEAR(regulat* telegram, 5)"),
])
def test_fts_query_rewrites_only_what_fts5_would_refuse(query, expected):
    assert fts_query(query) == expected


def test_a_match_records_matching_entries_and_terms(world):
    a = world.entry("Trend", "Iran arrests 100 hackers on Telegram", "Police arrested admins of channels.")
    b = world.entry("Tehran Times", "Cyber police detain group admins", "Dozens were banned from the messaging app.")
    c = world.entry("Gulf Ledger", "Weather in Tehran", "Sunny.")
    cid = world.cluster(a, b, c)
    t = topic("(telegram OR \"messaging app\") AND (arrest* OR ban*)")
    [m] = match_clusters(world.store, [t], [cid], NOW)
    assert m.cluster_id == cid and m.entry_ids == (a, b)
    assert set(m.terms) == {"telegram", "arrests", "arrested", "messaging app", "banned"}
    assert m.terms == tuple(dict.fromkeys(m.terms))  # de-duplicated
    assert m.outlets == ("Trend", "Tehran Times", "Gulf Ledger")
    row = world.store.query("SELECT * FROM topic_matches")[0]
    assert row["topic"] == "platform-regulation" and json.loads(row["entry_ids"]) == [a, b]
    assert row["first_matched"] == row["last_matched"] == iso(NOW)

    # A later cycle: first_matched stays, last_matched moves, entries and terms accumulate.
    d = world.entry("Trend", "Telegram channel admins fined", "A court fined them.")
    world.join(cid, d)
    later = NOW + timedelta(hours=1)
    match_clusters(world.store, [topic("telegram AND (fine* OR arrest*)")], [cid], later)
    row = world.store.query("SELECT * FROM topic_matches")[0]
    assert row["first_matched"] == iso(NOW) and row["last_matched"] == iso(later)
    assert json.loads(row["entry_ids"]) == [a, b, d]
    assert "fined" in json.loads(row["terms"]) and "banned" in json.loads(row["terms"])


def test_clusters_without_a_matching_entry_are_not_recorded(world):
    cid = world.cluster(world.entry("Trend", "Oil prices jump", "OPEC talks."))
    assert match_clusters(world.store, [topic("telegram")], [cid], NOW) == []
    assert world.store.scalar("SELECT count(*) FROM topic_matches") == 0


def test_min_outlets_counts_distinct_outlets_of_the_whole_cluster(world):
    t = topic("telegram", min_outlets=2)
    a = world.entry("Trend", "Telegram blocked", "")
    b = world.entry("Trend", "UPDATE 1-Telegram blocked", "")  # same outlet: still one
    cid = world.cluster(a, b)
    assert match_clusters(world.store, [t], [cid], NOW) == []
    world.join(cid, world.entry("Tehran Times", "Access restored", "No mention of the app."))
    [m] = match_clusters(world.store, [t], [cid], NOW)
    assert m.entry_ids == (a, b) and len(m.outlets) == 2


@pytest.mark.parametrize("query, title, text, hit", [
    ("regulat*", "New regulations for apps", "", True),
    ("regulat*", "Regulators meet", "", True),
    ("regulat*", "", "The regulatory body", True),
    ("regulat*", "Regular season", "", False),  # "regular" does not begin with "regulat"
    ("title:regulat*", "Regulation ahead", "", True),
    ("block*", "Blockade of the port", "", True),
    ("block*", "The EU bloc", "", False),
    ('"social media"', "Social media curbs", "", True),
    ('"social media"', "Media and social life", "", False),
    ("NEAR(telegram blocked, 3)", "Telegram is now blocked", "", True),
    ("NEAR(telegram blocked, 3)", "Telegram grows in Iran while many other apps are blocked", "", False),
    # words as written: the forms a query lists, or a prefix, and nothing a stemmer adds
    ("ban", "Court bans the app", "", False),
    ("ban OR bans", "Court bans the app", "", True),
    ("ban*", "", "The banning of messaging apps", True),
    ("arrest", "Admins arrested", "", False),
    ("arrest*", "Admins arrested", "", True),
    ("remove OR removal", "Twitter removed the accounts", "", False),
    ("new", "News of the day", "", False),  # porter indexed both as "new"
    ("organ", "The organization said", "", False),  # and these as "organ"
    ("Telegram", "TELEGRAM blocked", "", True),  # case folded
    ("telegram", "Telegram's founder speaks", "", True),  # unicode61 splits at the apostrophe
    ("telegram", "Telegram\u2019s founder speaks", "", True),
    ("Telegram's", "Telegram founder speaks", "", True),  # rewritten: the possessive goes
    ("al-Mahdi", "Spokesman Montazer al-Mahdi said", "", True),
    ("tehran", "", "In Tehrán, officials said", True),  # remove_diacritics
    ("title:telegram", "", "telegram in the text only", False),
    ("telegram NOT sport", "Telegram sport channel", "", False),
])
def test_fts5_semantics(world, query, title, text, hit):
    cid = world.cluster(world.entry("Trend", title or "untitled", text))
    assert bool(match_clusters(world.store, [topic(query)], [cid], NOW)) is hit


def test_terms_show_the_words_as_written(world):
    cid = world.cluster(world.entry("Trend", "Court BANNED the app", "Blocking continues."))
    [m] = match_clusters(world.store, [topic("ban* OR block*")], [cid], NOW)
    assert m.terms == ("banned", "blocking")


def test_merged_away_clusters_count_as_their_survivor(world):
    a = world.cluster(world.entry("Trend", "Telegram blocked", ""))
    b = world.cluster(world.entry("Tehran Times", "Another report", ""))
    world.merge(a, into=b)
    [m] = match_clusters(world.store, [topic("telegram")], [a], NOW)
    assert m.cluster_id == b
    assert [r["cluster_id"] for r in world.store.query("SELECT cluster_id FROM topic_matches")] == [b]


def test_several_topics_in_one_pass(world):
    cid = world.cluster(world.entry("Trend", "Telegram blocked after hack", ""))
    ms = match_clusters(world.store, [topic("telegram", name="a"), topic("hack*", name="b"), topic("oil", name="c")],
                        [cid], NOW)
    assert sorted(m.topic for m in ms) == ["a", "b"]


def test_many_clusters_are_matched_in_chunks(world):
    ids = []
    for i in range(1200):
        ids.append(world.cluster(world.entry(f"O{i % 7}", f"Telegram story {i}" if i % 3 == 0 else f"Story {i}", "")))
    ms = match_clusters(world.store, [topic("telegram")], ids, NOW)
    assert len(ms) == 400


def test_topic_test_previews_recent_live_clusters_without_writing(world):
    old = world.cluster(world.entry("Trend", "Telegram blocked", ""), activity=NOW - timedelta(days=30))
    new = world.cluster(world.entry("Trend", "Telegram unblocked", ""), activity=NOW - timedelta(hours=2))
    newer = world.cluster(world.entry("Tehran Times", "Telegram fined", ""), activity=NOW - timedelta(hours=1))
    gone = world.cluster(world.entry("Trend", "Telegram merged", ""), activity=NOW)
    world.merge(gone, into=new)
    hits = test_topic(world.store, topic("telegram"), timedelta(days=7), NOW)
    assert [h.cluster_id for h in hits] == [newer, new]
    assert hits[1].terms == ("telegram",) and len(hits[1].entry_ids) == 2
    assert {h.cluster_id for h in test_topic(world.store, topic("telegram"), None, NOW)} == {old, new, newer}
    assert world.store.scalar("SELECT count(*) FROM topic_matches") == 0
    with pytest.raises(ConfigError, match="topics.platform-regulation.query"):
        test_topic(world.store, topic("AND"), None, NOW)


def test_topic_summaries(world):
    a, b = topic("telegram", name="a"), topic("oil", name="b")
    cid = world.cluster(world.entry("Trend", "Telegram blocked", ""))
    match_clusters(world.store, [a, b], [cid], NOW)
    first, second = topic_summaries(world.store, [a, b])
    assert (first.topic.name, first.matches, first.last_matched, first.last_digest) == ("a", 1, NOW, None)
    assert (second.topic.name, second.matches, second.pending) == ("b", 0, 0)
