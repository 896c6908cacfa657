"""Headlines for people (monitor/events/headlines.py): a feed's furniture learned from its own titles and
stripped for display, cut headlines told apart, the cluster's headline chosen, stored terms shown as words.

Every title here is written for these tests (invented outlets, places and people).
"""
from __future__ import annotations

import pytest

from monitor.events.headlines import (
    choose_headline,
    cut_word,
    is_incomplete,
    learn_affixes,
    shared_words,
    shown_headline,
    strip_affixes,
)

HEADLINES = ["Bridge reopens after repairs", "Council approves new budget", "Fire destroys old mill",
             "Harbour festival draws crowds", "School bus crash injures driver",
             "Storm cuts power to 300 homes"]
FURNITURE = "Harbor 9 - KHBR - Portvale, ST News On Your Side"


def titles(template: str, headlines: list[str] = HEADLINES) -> list[str]:
    return [template.format(h) for h in headlines]


@pytest.mark.parametrize("template", [
    "{} - " + FURNITURE,  # a station's long tail, itself cut by " - "
    "{} :: KHBR.com",
    "{} | Portvale Star",
    "{} — Portvale Star",
    "{} · Östra Dagbladet",  # non-ASCII separator and name
])
def test_a_suffix_the_feed_repeats_is_stripped(template):
    learned = learn_affixes(titles(template))
    assert [strip_affixes(t, learned) for t in titles(template)] == HEADLINES
    # a new title of the feed loses it too, and a title of another shape keeps what it has
    assert strip_affixes(template.format("Ferry service resumes"), learned) == "Ferry service resumes"
    other = "Ferry service resumes - Other Outlet"
    assert strip_affixes(other, learned) == other


@pytest.mark.parametrize("template", ["KHBR 9 - {}", "Portvale News: {}", "Новости Портвейла | {}"])
def test_a_prefix_the_feed_repeats_is_stripped(template):
    learned = learn_affixes(titles(template))
    assert [strip_affixes(t, learned) for t in titles(template)] == HEADLINES


def test_only_what_a_clear_majority_of_titles_carry_is_furniture():
    """A label 3 of 8 titles carry ("Police: ...") is headline text; a suffix on 5 of 8 is furniture."""
    feed = (["Police: " + h for h in ("Man held after chase", "Two cars stolen", "Shop owner robbed")]
            + [h + " - Portvale Star" for h in HEADLINES[1:]])
    learned = learn_affixes(feed)
    assert learned.prefixes == frozenset() and learned.suffixes == {"Portvale Star"}
    assert strip_affixes("Police: Man held after chase - Portvale Star", learned) == (
        "Police: Man held after chase")


def test_a_feed_with_one_or_two_entries_learns_nothing():
    for feed in (titles("{} - Portvale Star", HEADLINES[:1]), titles("{} - Portvale Star", HEADLINES[:2])):
        learned = learn_affixes(feed)
        assert learned.prefixes == learned.suffixes == frozenset()
        assert strip_affixes(feed[0], learned) == feed[0]


@pytest.mark.parametrize("title", ["News", "Update", "Update - Portvale Star", "Portvale Star: Update"])
def test_a_feed_whose_every_title_is_the_same_never_loses_its_title(title):
    """Furniture is what stays while the headline changes: 50 copies of one title teach nothing."""
    learned = learn_affixes([title] * 50)
    assert learned.prefixes == learned.suffixes == frozenset()
    assert strip_affixes(title, learned) == title


def test_a_title_that_is_only_the_furniture_stays_as_it_is():
    learned = learn_affixes(titles("KHBR 9 - {} - Portvale Star"))
    assert {"KHBR 9"} <= learned.prefixes and {"Portvale Star"} <= learned.suffixes
    for title in ("Portvale Star", "KHBR 9", "KHBR 9 - Portvale Star", " - Portvale Star"):
        assert strip_affixes(title, learned) == title


def test_a_copy_of_the_furniture_cut_by_the_feeds_length_limit_goes_too():
    learned = learn_affixes(titles("{} - " + FURNITURE))
    assert strip_affixes("Ferry service resumes - Harbor 9 - KHBR - Portvale, ST Ne", learned) == (
        "Ferry service resumes")
    # but not a short segment that merely starts like it
    assert strip_affixes("Ferry service resumes - Harbor", learned) == "Ferry service resumes - Harbor"


def test_a_segment_starting_with_the_feeds_own_name_goes_without_learning():
    """One title is enough when the furniture names the feed (its title, channel title or site)."""
    learned = learn_affixes(["Ferry service resumes - KHBR.com-Portvale, ST | Local News"],
                            names=["khbr.com", None, "https://www.khbr.com/"])
    assert strip_affixes("Ferry service resumes - KHBR.com-Portvale, ST | Local News", learned) == (
        "Ferry service resumes")
    assert strip_affixes("KHBR: Ferry service resumes", learned) == "Ferry service resumes"
    # after ": " a headline may name the outlet: only learned furniture goes there
    assert strip_affixes("Sheriff: KHBR crew threatened at scene", learned) == (
        "Sheriff: KHBR crew threatened at scene")


@pytest.mark.parametrize(("title", "context", "cut"), [
    ("Crowds gather at Lakeside Park shooti", ["The shooting at Lakeside Park left two hurt."], "shooti"),
    # inside another word it is neither the word nor its start
    ("Crowds gather at Lakeside Park shooti", ["Staff of the Kashooti kiosk saw the shooting."], "shooti"),
    ("Two hurt in Lakeview shooting that injure", ["Two people were injured."], "injure"),
    ("Ferry resumes service to Brackenmo", ["", "Ferry back in Brackenmoor\nOther title"], "Brackenmo"),
    # a whole word somewhere: not cut
    ("Ferry resumes service to Brackenmoor", ["Ferries run to Brackenmoor again."], None),
    ("Storm floods homes along the Bay", ["Bayside homes flooded when the Bay rose."], None),
    ("Teen hurt in hunting accident", ["The accidental shot hit his leg. It was an accident."], None),
    # only other forms of a complete word: not cut
    ("Two hurt in Lakeview shooting", ["Shootings rose this year."], None),
    ("Teen hurt in hunting accident", ["The shot was accidental, police said."], None),
    # an abbreviation is written whole
    ("Three hurt in Lakeview, ST", ["Lakeview, State of Portvale, police said."], None),
    # nothing says so
    ("Ferry resumes service", [], None),
    ("Ferry resumes service to 4", ["40 passengers"], None),
])
def test_a_title_cut_in_a_word(title, context, cut):
    assert cut_word(title, context) == cut
    assert is_incomplete(title, context) is (cut is not None)


def test_another_title_cut_at_the_same_word_does_not_vouch_for_it():
    others = "Jury hears evidence in shooting tha\nOfficers charged in shooting that killed boy"
    assert cut_word("Officer testifies about shooting tha", ["", others]) == "tha"


@pytest.mark.parametrize(("title", "incomplete"), [
    ("Council approves budget after long...", True),
    ("Council approves budget after long…", True),
    ("PRESS NOTICE 12 June... - Portvale Police", True),
    ("Crews head to Millbrook... just in case", False),
])
def test_a_title_cut_with_an_ellipsis(title, incomplete):
    assert is_incomplete(title, []) is incomplete


def test_the_headline_is_complete_then_most_matched_then_earliest():
    asked: list[int] = []

    def complete(i: int) -> bool:
        asked.append(i)
        return i != 2

    # member 2 is matched most but cut: member 1 (matched next most) heads the cluster
    assert choose_headline([0, 1, 3, 1], complete) == 1
    assert asked == [2, 1]  # best candidates first, and no further than needed
    assert choose_headline([0, 1, 1, 0], lambda i: True) == 1  # ties: the earliest
    assert choose_headline([0, 0, 0], lambda i: True) == 0
    assert choose_headline([0, 2, 0], lambda i: False) == 1  # none complete: the most matched


def test_a_chosen_title_cut_in_a_word_says_so():
    assert shown_headline("Crowds gather at Lakeside Park shooti", ["the shooting"]) == (
        "Crowds gather at Lakeside Park shooti…")
    assert shown_headline("Crowds gather at Lakeside Park", ["the shooting"]) == (
        "Crowds gather at Lakeside Park")


def test_stored_terms_are_shown_as_the_words_of_the_text():
    """The issue's examples: `activ`, `polic`, `almahdi` read `active`, `police`, `al-Mahdi`."""
    texts = ["Police Hold 40 Hackers Active on Chat App",
             "Cyber police said the hackers were active for months. Montazer al-Mahdi, a spokesman, said"
             " 5,000 accounts in Farnaghi–Zadeh’s network were closed, José Ortega’s among them."]
    assert shared_words(["activ", "polic", "almahdi", "montazeralmahdi", "5000", "jose", "ortega",
                         "farnaghizadeh", "hacker"], texts) == (
        "active", "police", "al-Mahdi", "Montazer al-Mahdi", "5,000", "José", "Ortega", "Farnaghi–Zadeh",
        "hackers")


def test_a_name_of_several_words_maps_word_by_word_and_an_unknown_term_stays():
    texts = ["Yahya Jammeh spoke at Alder Creek", "He said little."]
    assert shared_words(["yahya jammeh", "alder creek", "zanzibar"], texts) == (
        "Yahya Jammeh", "Alder Creek", "zanzibar")
    # the matched member's text is searched after the member's own
    assert shared_words(["farnaqizadeh"], ["Farnaghizadeh spoke", "Farnaqizadeh spoke"]) == ("Farnaqizadeh",)
