"""Full-text queries on their own: words as written, highlights limited to given entries, query checks."""
from __future__ import annotations


from monitor.storage import search as search_db


def test_the_index_holds_words_as_written_with_case_and_diacritics_folded(world):
    a = world.entry("Trend", "Regulators ban Telegram", "Officials in Tehrán said the news was old.")
    found = search_db.highlighted_matches(world.store, "regulators AND tehran AND news", [a], "[", "]")
    assert found == {a: ("[Regulators] ban Telegram", "Officials in [Tehrán] said the [news] was old.")}
    for query in ("regulator", "regul", "bans", "new"):  # what porter would have matched
        assert search_db.highlighted_matches(world.store, query, [a], "[", "]") == {}, query
    assert a in search_db.highlighted_matches(world.store, "regulat*", [a], "[", "]")


def test_highlights_cover_only_the_given_entries(world):
    a = world.entry("Trend", "Telegram blocked", "The app was banned.")
    b = world.entry("Trend", "Oil prices", "Telegram channels report it.")
    c = world.entry("Trend", "Telegram fined", "")
    found = search_db.highlighted_matches(world.store, "telegram OR ban*", [a, b], "[", "]")
    assert found == {a: ("[Telegram] blocked", "The app was [banned]."),
                     b: ("Oil prices", "[Telegram] channels report it.")}
    assert c not in search_db.highlighted_matches(world.store, "telegram", [a, b], "[", "]")


def test_a_query_is_checked_against_the_index_with_fts5s_own_reason(world):
    assert search_db.query_error(world.store, "telegram AND ban*") is None
    assert search_db.query_error(world.store.db.conn, "nosuch:telegram") == "no such column: nosuch"
    assert search_db.query_error(world.store, "telegram AND") == 'syntax error near ""'
