"""Full-text queries on their own: the index's stems, highlights limited to given entries, query checks."""
from __future__ import annotations

import pytest

from monitor.storage import search as search_db
from tests.support.world import World


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path / "m.db")
    yield w
    w.store.close()


def test_index_stems_are_the_porter_stems_in_the_order_given():
    # Porter indexes all three forms as "regul", which is why `regulat*` alone misses them.
    assert search_db.index_stems(["regulation", "regulator", "regulate", "running"]) == [
        ("regulation", "regul"), ("regulator", "regul"), ("regulate", "regul"), ("running", "run")]


def test_highlights_cover_only_the_given_entries(world):
    a = world.entry("Trend", "Telegram blocked", "The app was banned.")
    b = world.entry("Trend", "Oil prices", "Telegram channels report it.")
    c = world.entry("Trend", "Telegram fined", "")
    found = search_db.highlighted_matches(world.store, "telegram OR ban", [a, b], "[", "]")
    assert found == {a: ("[Telegram] blocked", "The app was [banned]."),
                     b: ("Oil prices", "[Telegram] channels report it.")}
    assert c not in search_db.highlighted_matches(world.store, "telegram", [a, b], "[", "]")


def test_a_query_is_checked_against_the_index_with_fts5s_own_reason(world):
    assert search_db.query_error(world.store, "telegram AND ban*") is None
    assert search_db.query_error(world.store.db.conn, "nosuch:telegram") == "no such column: nosuch"
    assert search_db.query_error(world.store, "telegram AND") == 'syntax error near ""'
