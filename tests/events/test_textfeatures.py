"""Tokenising: the shortcuts `raw_tokens` takes give the tokenising expression's tokens."""
from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events.textfeatures import raw_tokens

# The tokens a reading is made of, as the module documents them: numbers (with inner . , :)
# and words (with inner apostrophes), in any script.
TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)*")

# Sentences of news text in ASCII: words, numbers, times, amounts, punctuation, symbols.
_PIECES = st.sampled_from(["Police", "said", "the", "shooting", "O'Brien", "9", "95", "2016", "9:30",
                           "3.5", "1,200", "$40", "U.S.", "a.m.", "no.1", "A1", "x2y", "_", "'",
                           "-", "(", ")", "%", "#7", "'90s", "rock'n'roll", "e-mail"])
ASCII_NEWS = st.lists(st.one_of(_PIECES, st.text(string.printable, max_size=6)), max_size=30).map(
    lambda parts: "".join(p + (" " if i % 3 else "") for i, p in enumerate(parts)))


@settings(max_examples=400, deadline=None)
@given(ASCII_NEWS.filter(lambda s: any(c.isdigit() for c in s)))
def test_ascii_text_with_digits_gives_the_expressions_tokens(text):
    assert raw_tokens(text) == TOKEN.findall(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_text_outside_ascii_gives_the_expressions_tokens(text):
    if not text.isascii():
        assert raw_tokens(text) == TOKEN.findall(text)


def test_numbers_times_and_amounts_stay_whole():
    assert raw_tokens("At 9:30 a.m. police found 1,200 rounds and $40.50 in Room 12B.") == [
        "At", "9:30", "a", "m", "police", "found", "1,200", "rounds", "and", "40.50", "in", "Room", "12", "B"]
