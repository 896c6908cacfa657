"""Clustering's compiled twins against their Python ones: the window index and the candidate
search (monitor.events.scan), reading a sentence's tokens (monitor.events.reading) and an
entry's tf-idf vector (monitor.events.similarity).

What must hold: the compiled twins return exactly what the Python ones return, float for
float, string for string and in the same order, after any sequence of entries added and
removed, so that no decision depends on whether the extensions were built; clustering a
stream decides the same with either; wrong input is refused with an error, not a crash. A
test install builds the extensions (it needs a C compiler): where they were not built these
tests skip, and a skip fails the run under CI.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.events import clusterer, reading, scan
from monitor.events import similarity as sim
from monitor.events import textfeatures as tf
from monitor.events.clusterer import Clusterer
from monitor.types import ClusterDoc
from tests.support.corpus import DOCS

if not (scan.COMPILED and reading.COMPILED):
    pytest.skip("monitor.events._scan or _reading was not built (no C compiler at install)",
                allow_module_level=True)

from monitor.events import _reading, _scan  # only importable where they were built

DAY = 86400.0
WORDS = [f"w{i:02d}" for i in range(30)]
NAMES = [f"n{i}" for i in range(8)]


def _both() -> tuple[scan.Index, scan.Index]:
    return _scan.WindowIndex(), scan.WindowIndexPy()


def _hexed(found: list) -> list:
    """The floats' exact bits, not only their printed digits."""
    return [(u.hex(), eid, d.hex(), p.hex()) for u, eid, d, p in found]


def _random_window(rng: random.Random) -> tuple[list, dict, dict]:
    """Entries added and removed in a random order (as a window moves), some removed again
    right after they came, and weights that repeat, so that a term's highest weight leaves."""
    entries, specific, added = [], {}, {}
    compiled, python = _both()
    for _ in range(rng.randint(0, 80)):
        eid = rng.randrange(1, 2**62)
        terms = rng.sample(WORDS, rng.randint(1, 12))
        vec = {t: rng.choice([0.25, 0.5, rng.uniform(0.01, 0.7)]) for t in terms}
        ts = rng.uniform(0, 20 * DAY)
        for index in (compiled, python):
            index.add(eid, ts, vec)
        added[eid] = vec
        specific[eid] = frozenset(rng.sample(NAMES, rng.randint(0, 3)))
        entries.append(eid)
        if added and rng.random() < 0.35:  # the oldest usually, any other sometimes
            gone = entries.pop(0 if rng.random() < 0.7 else rng.randrange(len(entries)))
            for index in (compiled, python):
                index.remove(gone, added[gone])
            del added[gone]
    return [compiled, python], added, specific


@pytest.mark.parametrize("seed", range(200))
def test_the_compiled_index_finds_what_the_python_index_finds(seed: int) -> None:
    rng = random.Random(seed)
    (compiled, python), added, specific = _random_window(rng)
    assert len(compiled) == len(python) == len(added)
    for t in WORDS:
        assert list(compiled.postings(t).items()) == list(python.postings(t).items())
    for _ in range(5):
        vec = {t: rng.uniform(0.01, 0.6) for t in rng.sample(WORDS, rng.randint(0, 15))}
        scale = rng.choice([24, 96, 240]) * 3600.0
        args = (vec, rng.choice([1, 3, 50, 4.5]), rng.choice([0.15, 0.3]), 0.3, 0.5, rng.uniform(0, 20 * DAY),
                7 * DAY, 0.5 / (scale * scale), frozenset(rng.sample(NAMES, rng.randint(0, 3))), specific)
        (found_c, skipped_c), (found_py, skipped_py) = compiled.search(*args), python.search(*args)
        assert _hexed(found_c) == _hexed(found_py)
        assert skipped_c == skipped_py


def test_a_sliding_window_keeps_the_same_postings_in_both_indexes() -> None:
    """As the window moves, entries leave oldest first while new ones come: the compiled index
    moves the start of each term's postings, and reuses the room before it or grows and shrinks
    its arrays. Through thousands of such steps, and some removals from the middle, its
    postings and searches stay the Python index's, entry for entry."""
    rng = random.Random(11)
    compiled, python = _both()
    live: list[tuple[int, dict[str, float]]] = []
    for step in range(3000):
        width = 40 + int(400 * abs(math.sin(step / 300)))  # the window widens and narrows
        vec = {t: rng.choice([0.25, 0.5, rng.uniform(0.01, 0.7)]) for t in rng.sample(WORDS[:6], rng.randint(1, 4))}
        for index in (compiled, python):
            index.add(step + 1, step * 60.0, vec)
        live.append((step + 1, vec))
        while len(live) > width:
            eid, gone = live.pop(0 if rng.random() < 0.95 else rng.randrange(len(live)))
            for index in (compiled, python):
                index.remove(eid, gone)
        if step % 97 == 0:
            for t in WORDS[:6]:
                assert list(compiled.postings(t).items()) == list(python.postings(t).items())
            query = {t: 0.3 for t in WORDS[:3]}
            names = {eid: frozenset() for eid, _ in live}
            args = (query, 1000, 0.15, 0.3, 0.5, step * 60.0, 7 * DAY, 1e-10, frozenset(), names)
            assert _hexed(compiled.search(*args)[0]) == _hexed(python.search(*args)[0])
    assert len(compiled) == len(python) == len(live)


def test_search_keeps_what_the_rules_say() -> None:
    """Worked by hand. "c" is in 4 entries, more than the common limit of 3: it opens no
    candidates and only bounds what it can add, q's 0.2 x its highest weight 0.5 = 0.1."""
    scale = 96 * 3600.0
    for index in _both():
        index.add(1, 0.0, {"a": 0.4, "c": 0.5})
        index.add(2, 3 * DAY, {"a": 0.2, "b": 0.4, "c": 0.1})
        index.add(3, 0.0, {"b": 0.2, "c": 0.3})
        index.add(4, 9 * DAY, {"a": 0.9, "c": 0.05})
        names = {1: frozenset(), 2: frozenset({"smith"}), 3: frozenset(), 4: frozenset()}
        found, skipped = index.search({"a": 0.6, "b": 0.5, "c": 0.2}, 3, 0.15, 0.3, 0.5, 0.0, 7 * DAY,
                                      0.5 / scale**2, frozenset({"smith"}), names)
        assert skipped == [("c", 0.2)]
        # The floor is 0.15 - 0.1 = 0.05 and the bound of "b" alone (0.5 x 0.4) reaches it, so
        # both "a" and "b" open candidates. Partial cosines, and with the bound 0.1 added:
        # entry 1: 0.24 -> 0.34 at no gap, above 0.3: kept;
        # entry 2: 0.12 + 0.2 = 0.32 -> 0.42 x decay(3 days) 0.75 = 0.317, above 0.3: kept;
        # entry 3: 0.1 -> 0.2, under 0.3, and it names no one q names: dropped;
        # entry 4: 0.54 -> 0.64 would be a copy's bound, but it is 9 days away: dropped.
        assert [eid for _, eid, _, _ in found] == [1, 2]
        (u1, _, d1, p1), (u2, _, d2, p2) = found
        assert (p1, u1, d1) == (pytest.approx(0.24), pytest.approx(0.34), 1.0)
        assert (p2, u2) == (pytest.approx(0.32), pytest.approx(0.42))
        assert d2 == pytest.approx(math.exp(-0.5 * (72 / 96) ** 2))
        index.remove(1, {"a": 0.4, "c": 0.5})
        assert index.postings("a") == {2: 0.2, 4: 0.9} and len(index) == 3
        # "c" left with its highest weight: its bound is now 0.2 x 0.3 = 0.06 (not 0.1). Entry 3:
        # 0.5 x 0.2 = 0.1 -> 0.16, under 0.3 but it names "x" as q does: kept; entry 2: 0.2 ->
        # 0.26 x 0.75 = 0.196, names no one: dropped.
        found, skipped = index.search({"b": 0.5, "c": 0.2}, 2, 0.15, 0.3, 0.5, 0.0, 7 * DAY, 0.5 / scale**2,
                                      frozenset({"x"}), {2: frozenset(), 3: frozenset({"x"}), 4: frozenset()})
        assert skipped == [("c", 0.2)]
        assert [(eid, round(u, 9), p) for u, eid, _, p in found] == [(3, 0.16, 0.1)]


@pytest.mark.parametrize("seed", range(100))
def test_compiled_dot_products_return_what_the_python_ones_return(seed: int) -> None:
    rng = random.Random(seed)
    a = {t: rng.random() for t in rng.sample(WORDS, rng.randint(0, 25))}
    b = {t: rng.random() for t in rng.sample(WORDS, rng.randint(0, 25))}
    lead = frozenset(rng.sample(WORDS, rng.randint(0, 30)))
    assert _scan.lead_cosine(a, lead, b).hex() == scan.lead_cosine_py(a, lead, b).hex()
    pairs = list(a.items())
    assert _scan.dot(pairs, b).hex() == scan.dot_py(pairs, b).hex()


@pytest.mark.parametrize("seed", range(100))
def test_compiled_centroid_sums_are_the_python_ones(seed: int) -> None:
    """Fixed-point vectors (rounded as round() does, ties to even) and centroid sums: the same
    integers, the same terms in the same order (a term that reaches zero leaves), the same change
    of the squared length, however large; sums past 128 bits are left to the Python twin."""
    rng = random.Random(seed)
    scale = 1 << 24
    ties = [k / 2 / scale for k in (1, 3, 5, -1, -3)]  # x.5 in fixed point
    vec = {t: rng.choice([rng.random(), rng.uniform(-1, 1), *ties]) for t in rng.sample(WORDS, rng.randint(0, 25))}
    assert list(_scan.fixed(vec, scale).items()) == list(scan.fixed_py(vec, scale).items())
    for magnitude in (24, 40, 62, 70):  # members' sums, up to past what 64 bits hold
        centroid = {t: rng.randint(-(1 << magnitude), 1 << magnitude) for t in rng.sample(WORDS, rng.randint(0, 20))}
        fixed = {t: rng.randint(-(1 << 24), 1 << 24) for t in rng.sample(WORDS, rng.randint(0, 25))}
        fixed.update({t: centroid[t] for t in list(centroid)[: rng.randint(0, 3)]})  # terms taken away to zero
        for sign in (1, -1):
            python, compiled = dict(centroid), dict(centroid)
            assert scan.add_to_centroid(compiled, fixed, sign) == scan.add_to_centroid_py(python, fixed, sign)
            assert list(compiled.items()) == list(python.items())


def test_centroid_sums_it_cannot_make_exactly_change_nothing() -> None:
    centroid = {"a": 5, "b": 1 << 60}
    with pytest.raises(OverflowError):
        _scan.add_to_centroid(centroid, {"a": 1, "b": 1}, 1)
    assert centroid == {"a": 5, "b": 1 << 60}
    assert scan.add_to_centroid(centroid, {"a": 1, "b": 1}, 1) == 11 + 2 * (1 << 60) + 1  # the Python twin's
    assert centroid == {"a": 6, "b": (1 << 60) + 1}


def test_wrong_input_is_refused_with_an_error() -> None:
    index = _scan.WindowIndex()
    with pytest.raises(TypeError):
        index.add(1, 0.0, {"a": "heavy"})
    with pytest.raises(TypeError):
        index.add(1, 0.0, [("a", 0.5)])
    with pytest.raises(OverflowError):
        index.add(2**70, 0.0, {"a": 0.5})
    with pytest.raises(TypeError):
        _scan.WindowIndex(5)
    index.add(1, 0.0, {"a": 0.2})
    with pytest.raises(KeyError):  # an entry it does not hold
        index.remove(2, {"a": 0.2})
    with pytest.raises(KeyError):  # a term it does not hold
        index.remove(1, {"b": 0.2})
    with pytest.raises(KeyError):  # 0.5 x 0.2 reaches the bar 0.1 but not 0.3: the names are needed
        index.search({"a": 0.5}, 50, 0.1, 0.3, 0.5, 0.0, DAY, 1e-10, frozenset(), {})
    with pytest.raises(TypeError):
        _scan.dot([("a",)], {})
    with pytest.raises(ValueError):
        _scan.add_to_centroid({}, {"a": 1}, 0)
    with pytest.raises(TypeError):
        _scan.add_to_centroid({"a": 1.5}, {"a": 1}, 1)
    with pytest.raises(TypeError):
        _scan.fixed({"a": "heavy"}, 2.0)
    assert index.postings("a") == {1: 0.2} and len(index) == 1  # nothing was half done


def _stream(n: int) -> list:
    """The dev cases, then copies of them shifted a few hours at a time and reworded a little,
    so that the window holds overlapping events, copies, merges and long postings."""
    rng = random.Random(7)
    out = list(DOCS)
    words = "council police minister report court river fire election bank storm".split()
    while len(out) < n:
        d = rng.choice(DOCS)
        extra = " ".join(rng.sample(words, 3))
        later = d.published + timedelta(hours=len(out) // 40)
        out.append(replace(d, entry_id=len(out) + 1, title=f"{d.title} {extra}", text=f"{d.text} {extra}.",
                           published=later))
    out.sort(key=lambda d: (d.published, d.entry_id))
    return out


def test_clustering_decides_the_same_with_the_python_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _stream(1500)
    cl = Clusterer()
    compiled = [cl.assign(d) for d in docs]
    monkeypatch.setattr(scan, "WindowIndex", scan.WindowIndexPy)
    monkeypatch.setattr(scan, "dot", scan.dot_py)
    monkeypatch.setattr(sim, "lead_cosine", scan.lead_cosine_py)
    monkeypatch.setattr(reading, "sentence_parts", reading.sentence_parts_py)
    monkeypatch.setattr(reading, "sentence_fields", reading.sentence_fields_py)
    monkeypatch.setattr(tf, "ascii_words", tf.ascii_words_py)
    monkeypatch.setattr(tf, "ascii_tokens", tf.ascii_tokens_py)
    monkeypatch.setattr(sim, "count_and_vectorize", sim.count_and_vectorize_py)
    monkeypatch.setattr(sim, "kept_text", sim.kept_text_py)
    monkeypatch.setattr(scan, "fixed", scan.fixed_py)
    monkeypatch.setattr(clusterer, "_add_to_centroid", scan.add_to_centroid_py)
    cl = Clusterer()
    assert isinstance(cl._index, scan.WindowIndexPy)
    python = [cl.assign(d) for d in docs]
    assert python == compiled
    # the stream exercises what the index decides: joins, copies, merges and entries leaving
    assert {a.reason for a in compiled} >= {"new", "similar", "syndicated"}
    assert any(a.merged for a in compiled)
    assert cl.window_entries < len(docs)


# --- reading a sentence's tokens ------------------------------------------------------------------

TRICKY = [
    "",
    "A",
    "Police in Tehran said: the IRGC's CEO, Mr. ÖZIL Ahmed-Zadeh, met John Smith on Monday, June 5 at 10:30.",
    "NEW YORK (AP) - Maria Lopez and Ana de la Cruz of Peregrin Park said Friday, friday and May 5.",
    "Встреча в Анкаре прошла в понедельник, сказал Иван Петров Сидоров.",
    "İSTANBUL: Kılıçdaroğlu met Erdoğan; Erdoğan's aide O'Neill said 5,000 people, 85.4% of them.",  # noqa: RUF001
    "Email Print Share This Story Posted 3 hours ago By Jane Doe Jane Doe",
    "the the THE The tHe 9 99 9a a9 Zz",
]


def _sentences() -> list[str]:
    out = list(TRICKY)
    for d in DOCS:
        r = reading.read(d.title, d.text, d.outlet, whole=True)
        out += [r.title, *(s.text for s in r.sentences)]
    rng = random.Random(3)  # word salad: every mix of capitals, names, days, numbers and stopwords
    pool = ("Tehran tehran Monday june June NATO U.S. the The of Peregrin Park Jacob Melendez melendez "
            "al-Abadi Farnaghi-Zadeh 12 3:40 5,000 O'Brien it's ÉCOLE école Ünal ÇAY Petrov").split()
    out += [" ".join(rng.choices(pool, k=rng.randint(1, 25))) for _ in range(400)]
    return out


@pytest.mark.parametrize("title_words", [frozenset(), frozenset({"police", "said", "maria", "tehran"})])
def test_compiled_sentence_parts_return_what_the_python_ones_return(title_words: frozenset[str]) -> None:
    for sentence in _sentences():
        raw = tf.raw_tokens(sentence)
        compiled = _reading.sentence_parts(raw, tf.TOKENS, title_words, reading._DAY_OR_MONTH)
        python = reading.sentence_parts_py(raw, tf.TOKENS, title_words, reading._DAY_OR_MONTH)
        assert compiled == python, sentence
        assert [type(x) for x in compiled] == [type(x) for x in python], sentence


def test_compiled_ascii_words_are_the_python_ones() -> None:
    rng = random.Random(5)
    # every ASCII character that splits or not (controls, the separators str.split() knows,
    # apostrophes), digits and a letter from outside ASCII
    alphabet = [chr(c) for c in range(128)] + ["'"] * 20 + ["a", "B", " "] * 20 + ["é"]
    salads = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(3000)]
    ascii_only = [t for t in salads if t.isascii() and not any(c.isdigit() for c in t)]
    assert len(ascii_only) > 300  # the compiled path is the one mostly taken
    for text in _sentences() + salads + ["'", "''", "' '", "a'", "'a", "x\x1cy\x1fz", "\x85 \xa0"]:
        assert _reading.ascii_words(text) == tf.ascii_words_py(text), repr(text)
    with pytest.raises(TypeError):
        _reading.ascii_words(b"bytes")


def test_compiled_ascii_tokens_are_the_python_ones_and_the_expressions() -> None:
    rng = random.Random(7)
    # digits and the separators that join them, letters and apostrophes, the characters
    # that end a token, every other ASCII character, and one from outside ASCII
    alphabet = ([chr(c) for c in range(128)] + list("0123456789") * 8 + list(".,:'") * 10
                + ["a", "Z", " "] * 15 + ["é"])
    salads = ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(4000)]
    numbered = [t for t in salads if t.isascii() and any(c.isdigit() for c in t)]
    assert len(numbered) > 1000  # the texts the compiled path is for
    for text in _sentences() + salads + ["5", "5.", ".5", "5..5", "5.,5", "a'", "'a", "a''b", "1:2:3"]:
        expected = tf.ascii_tokens_py(text)
        assert _reading.ascii_tokens(text) == expected, repr(text)
        if expected is not None:
            assert expected == tf._TOKEN.findall(text), repr(text)
    with pytest.raises(TypeError):
        _reading.ascii_tokens(b"bytes")


def test_compiled_sentence_spans_are_the_expressions_matches() -> None:
    """Where sentences end in ASCII text: an end mark, closing quotes or brackets, white space (every
    ASCII character str.isspace() knows, \x1c-\x1f too); or a line break. Other text is left to
    the expression (None)."""
    rng = random.Random(13)
    spaces = [chr(c) for c in (9, 10, 11, 12, 13, 28, 29, 30, 31, 32)]
    alphabet = (list(".!?") * 6 + list("'\")]") * 4 + spaces * 4 + [chr(c) for c in range(128)]
                + ["a", "B"] * 10 + ["\x85", "\xa0", "é"])
    salads = ["".join(rng.choices(alphabet, k=rng.randint(0, 60))) for _ in range(4000)]
    assert sum(1 for t in salads if t.isascii() and tf._SENTENCE_END.search(t)) > 1000
    for text in _sentences() + salads + ["", ".", ". ", "a.\x1cb", "a!') b", "a.)x b", "\n\n \n", "a?\x85b"]:
        expected = tf.sentence_spans_py(text)
        assert _reading.sentence_spans(text) == expected, repr(text)
        if expected is not None:
            assert expected == [m.span() for m in tf._SENTENCE_END.finditer(text)], repr(text)
            assert tf.sentences(text) == [s for s in tf._SENTENCE_END.split(text) if s.strip()], repr(text)
    with pytest.raises(TypeError):
        _reading.sentence_spans(b"bytes")


def test_a_long_text_is_read_from_its_start_as_its_whole_text_would_be() -> None:
    """_body_sentences takes the sentences before the last end of sentence that lies where the
    start and the whole text agree: the sentences the expression splits that part into."""
    rng = random.Random(17)
    words = ["Police", "said", "the", "fire", "Tehran", "O'Brien", "5,000", "état", "“quoted”"]
    ends = [". ", "! ", "? ", ".) ", "\n", "\n\n", ".\x1c", ". \xa0", " "]
    for _ in range(300):
        text = "".join(rng.choice(words) + rng.choice(ends) for _ in range(rng.randint(600, 1200)))
        outlet = reading.outlet_pattern(rng.choice(["Tehran Times", "The Fire", "Daily"]))
        got, complete = reading._body_sentences(text, outlet)
        cut = reading._CUT.search(text, reading.BODY_CHARS)
        if cut is None or complete:
            continue
        start = reading.without_outlet(tf.fold(text[: cut.start()]), outlet)
        common = len(start) - (len(outlet[1].pattern) + 1 if outlet else 1)
        end = 0
        for sep in tf._SENTENCE_END.finditer(start):
            if sep.end() >= common - 1:
                break
            end = sep.end()
        assert got == [s for s in tf._SENTENCE_END.split(start[:end]) if s.strip()]
        assert got


def test_sentence_parts_hold_their_tokens_while_the_cache_empties() -> None:
    """The token cache empties itself when it is full, in the middle of a sentence: what was
    looked up before must stay valid. Here it empties on every miss."""

    class Forgetful(dict):
        def __missing__(self, token: str) -> tf.TokenInfo:
            self.clear()
            low = token.lower()
            info = tf.TokenInfo(low, tf.term_of(low), token[0].isupper(), token[0].islower())
            self[token] = info
            return info

    for sentence in _sentences()[:200]:
        raw = tf.raw_tokens(sentence)
        expected = reading.sentence_parts_py(raw, tf.TOKENS, frozenset(), reading._DAY_OR_MONTH)
        assert _reading.sentence_parts(raw, Forgetful(), frozenset(), reading._DAY_OR_MONTH) == expected


def test_compiled_sentences_follow_the_token_cache_they_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCII tokens are looked up by their bytes in a table filled from the token cache: another
    cache (or other day words) is read as given, a cache that empties itself on every miss
    gives what the usual one gives, and so do tokens too many for the table (they take each
    other's places) and tokens too long for it."""
    args = (frozenset({"said"}), reading._DAY_OR_MONTH, reading._compounds, reading._sentence,
            reading.Sentence)
    sentences = [*_sentences()[:300], "An extraordinarilylongwordthatneverends Monday said.",
                 "NATO and the U.S. met on June 5 in Tehran."]
    expected = reading.sentence_fields_py(list(sentences), tf.TOKENS, *args)
    assert _reading.sentence_fields(sentences, tf.TOKENS, *args) == expected

    class Shouted(dict):  # every token read as the same term, written in capitals
        def __missing__(self, token: str) -> tf.TokenInfo:
            info = tf.TokenInfo(token.lower(), "shout", True, False)
            self[token] = info
            return info

    ascii_only = [s for s in sentences if s.isascii()]  # the others are read by the Python reading
    with monkeypatch.context() as patched:  # which reads tf.TOKENS
        patched.setattr(tf, "TOKENS", Shouted())
        shouted = reading.sentence_fields_py(ascii_only, tf.TOKENS, *args)
    assert _reading.sentence_fields(ascii_only, Shouted(), *args) == shouted
    assert all(s.terms == ("shout",) * s.words for s in shouted) and sum(s.words for s in shouted) > 1000
    assert _reading.sentence_fields(ascii_only, tf.TOKENS, *args) != shouted
    no_days = (args[0], frozenset(), *args[2:])
    with monkeypatch.context() as patched:  # and reading._DAY_OR_MONTH
        patched.setattr(reading, "_DAY_OR_MONTH", frozenset())
        undated = reading.sentence_fields_py(ascii_only, tf.TOKENS, *no_days)
    assert _reading.sentence_fields(ascii_only, tf.TOKENS, *no_days) == undated
    assert not any(s.day_words for s in undated) and any(s.day_words for s in expected)
    assert _reading.sentence_fields(sentences, tf.TOKENS, *args) == expected

    class Forgetful(dict):
        def __missing__(self, token: str) -> tf.TokenInfo:
            self.clear()
            return tf.TOKENS[token]

    assert _reading.sentence_fields(sentences, Forgetful(), *args) == expected
    rng = random.Random(19)  # more distinct words than the table has places
    many = [" ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyzABC", k=rng.randint(2, 9)))
                     for _ in range(20)) + "." for _ in range(5000)]
    assert len({w for s in many for w in s.split()}) > 70_000
    expected = reading.sentence_fields_py(many, tf.TOKENS, *args)
    assert _reading.sentence_fields(many, tf.TOKENS, *args) == expected


def test_day_words_that_can_change_are_read_as_they_are_now() -> None:
    """The table keeps what cannot change: day words in a set (not a frozenset) are asked each time."""
    args = (reading._compounds, reading._sentence, reading.Sentence)
    sentences = ["Police said on Monday that the fire began on Sunday."]
    days = set(reading._DAY_OR_MONTH)
    before = _reading.sentence_fields(sentences, tf.TOKENS, frozenset(), days, *args)
    days.discard("monday")
    after = _reading.sentence_fields(sentences, tf.TOKENS, frozenset(), days, *args)
    assert before[0].day_words == ("monday", "sunday") and after[0].day_words == ("sunday",)
    assert after == _reading.sentence_fields(sentences, tf.TOKENS, frozenset(), frozenset(days), *args)


def test_a_token_record_that_fails_to_be_read_is_an_error_not_a_crash() -> None:
    class Unreadable(str):
        def __bool__(self) -> bool:
            raise ValueError("no truth in this term")

    class Cache(dict):
        def __missing__(self, token: str) -> tf.TokenInfo:
            return tf.TokenInfo(token.lower(), Unreadable("x"), True, False)

    for call in (lambda: _reading.sentence_parts(["Police", "said"], Cache(), frozenset(), reading._DAY_OR_MONTH),
                 lambda: _reading.sentence_fields(["Police said."], Cache(), frozenset(), reading._DAY_OR_MONTH,
                                                  reading._compounds, reading._sentence, reading.Sentence)):
        with pytest.raises(ValueError, match="no truth"):
            call()


def test_reading_is_the_same_with_the_python_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = [reading.read(d.title, d.text, d.outlet, whole=w) for d in DOCS for w in (False, True)]
    monkeypatch.setattr(reading, "sentence_parts", reading.sentence_parts_py)
    monkeypatch.setattr(reading, "sentence_fields", reading.sentence_fields_py)
    monkeypatch.setattr(tf, "ascii_words", tf.ascii_words_py)
    monkeypatch.setattr(tf, "ascii_tokens", tf.ascii_tokens_py)
    monkeypatch.setattr(tf, "sentence_spans", tf.sentence_spans_py)
    assert [reading.read(d.title, d.text, d.outlet, whole=w) for d in DOCS for w in (False, True)] == readings
    assert any(s.pairs for r in readings for s in r.sentences)  # names were read
    assert any(s.day_words for r in readings for s in r.sentences)


@pytest.mark.parametrize("title_words", [frozenset(), frozenset({"police", "said", "maria", "tehran"})])
def test_compiled_sentences_are_the_python_ones(title_words: frozenset[str]) -> None:
    """Each sentence read whole in C (ASCII ones) or by the Python reading (the others),
    field for field, as the same kind of tuple."""
    sentences = _sentences()
    assert any(not s.isascii() for s in sentences) and any("-" in s and s.isascii() for s in sentences)
    args = (tf.TOKENS, title_words, reading._DAY_OR_MONTH, reading._compounds, reading._sentence,
            reading.Sentence)
    compiled = _reading.sentence_fields(sentences, *args)
    python = reading.sentence_fields_py(sentences, *args)
    assert compiled == python
    assert all(type(c) is reading.Sentence for c in compiled)
    for c, p in zip(compiled, python, strict=True):
        assert [type(x) for x in c] == [type(x) for x in p], c.text
        assert hash(c) == hash(p), c.text  # built as any tuple subclass is built


def test_compiled_sentences_hold_their_list_while_a_callback_changes_it() -> None:
    """The Python reading of a sentence outside ASCII is called back in the middle of the list:
    the list it came from may change meanwhile, and what was read is what was there."""
    sentences = ["Police said on Monday.", "La police a dit lundi à Paris.", "Ahmed-Zadeh said more."]
    expected = reading.sentence_fields_py(list(sentences), tf.TOKENS, frozenset(), reading._DAY_OR_MONTH,
                                          reading._compounds, reading._sentence, reading.Sentence)

    def emptying(sent: str, title_words: frozenset[str]) -> reading.Sentence:
        sentences.clear()
        return reading._sentence(sent, title_words)

    assert _reading.sentence_fields(sentences, tf.TOKENS, frozenset(), reading._DAY_OR_MONTH, reading._compounds,
                                    emptying, reading.Sentence) == expected
    assert sentences == []


def test_compiled_sentence_keys_are_blake2b_of_the_kept_words() -> None:
    """The compiled key is hashlib's BLAKE2b with an 8-byte digest, across block boundaries
    (128 bytes) and for the empty text, read as a little-endian signed integer."""
    rng = random.Random(11)
    texts = ["", "a", "police\x1fsaid"]
    texts += ["".join(rng.choices("abcxyz\x1f ", k=n)) for n in [*range(0, 300), 383, 384, 385, 1000]]
    for text in texts:
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        assert _reading.sentence_key_of(text) == int.from_bytes(digest, "little", signed=True), len(text)
        assert _reading.sentence_key_of(text) == reading._key(text)
    assert _reading.sentence_key_of(None) is None
    with pytest.raises(TypeError):
        _reading.sentence_key_of("école")  # the compiled reading hashes ASCII text only
    with pytest.raises(TypeError):
        _reading.sentence_key_of(b"bytes")


def _kept_cases() -> list[tuple[ClusterDoc, reading.Reading, sim.FeedBoilerplate]]:
    """Readings of the dev cases and of a long page (their text's start and all of it), with a
    feed's boilerplate that leaves a third of their sentences out, and with none."""
    rng = random.Random(13)
    vocabulary = [a + b for a in ("kar", "mol", "ten", "vis", "pra") for b in ("ad", "eb", "ic", "od", "un")]
    page = " ".join(" ".join(rng.sample(vocabulary, 8)).capitalize() + "." for _ in range(120))
    docs = [*DOCS, replace(DOCS[0], entry_id=99_999, text=page)]
    cases = []
    for d in docs:
        for whole in (False, True):
            r = reading.read(d.title, d.text, d.outlet, whole=whole)
            keys = [s[1] for s in r.sentences if s[1] is not None]
            furniture = sim.FeedBoilerplate()
            furniture.add(d.feed_id, keys[::3], frozenset({"unrelated"}))
            furniture.add(d.feed_id, keys[::3], frozenset({"other"}))
            cases += [(d, r, furniture), (d, r, sim.FeedBoilerplate())]
    return cases


def test_compiled_kept_text_is_the_python_one() -> None:
    """Keys, lead texts, weights (bit for bit, in order), counts, names, days, words, body and
    the terms of all the text kept; None for the same readings."""
    nones = left_out = 0
    for d, r, furniture in _kept_cases():
        seen = furniture.sentences_of(d.feed_id)
        python = sim.kept_text_py(r, seen, furniture.is_boilerplate, d.feed_id)
        compiled = sim.kept_text(r, seen, furniture.is_boilerplate, d.feed_id)
        if python is None:
            assert compiled is None
            nones += 1
            continue
        assert compiled is not None
        assert [(t, w.hex()) for t, w in compiled[2].items()] == [(t, w.hex()) for t, w in python[2].items()]
        assert list(compiled[3].items()) == list(python[3].items())
        assert compiled == python
        everything = sim.kept_text_py(r, {}, furniture.is_boilerplate, d.feed_id)
        assert everything is not None
        left_out += python[6] < everything[6]
    assert nones and left_out  # a long page cut short, and sentences left out as boilerplate


def test_kept_text_refuses_what_is_not_a_reading() -> None:
    args = ({}, lambda *_: False, 1, 2, 80, 400, 120, 0.25)
    with pytest.raises(TypeError):
        _reading.kept_text(("not", "a", "reading"), *args)
    r = reading.read("A title", "Some text here. And more of it.", "Outlet")
    with pytest.raises(TypeError):  # a sentence that is not one
        _reading.kept_text(r._replace(sentences=(("short",),)), *args)
    with pytest.raises(TypeError):
        _reading.kept_text(r._replace(sentences=((*r.sentences[0][:9], 5, ()),)), *args)
    with pytest.raises(ZeroDivisionError):  # what is_boilerplate raises comes through
        key = next(s[1] for s in r.sentences if s[1] is not None)
        _reading.kept_text(r, {key: 1}, lambda *_: 1 / 0, 1, 2, 80, 400, 120, 0.25)


def test_reading_refuses_wrong_tokens_with_an_error() -> None:
    with pytest.raises(TypeError):
        _reading.sentence_parts(["fine", 7], tf.TOKENS, frozenset(), reading._DAY_OR_MONTH)
    with pytest.raises(TypeError):  # a cache that does not hold (low, term, capital, lower)
        _reading.sentence_parts(["word"], {"word": "word"}, frozenset(), reading._DAY_OR_MONTH)
    with pytest.raises(KeyError):
        _reading.sentence_parts(["word"], {}, frozenset(), reading._DAY_OR_MONTH)
    with pytest.raises(TypeError):
        _reading.sentence_parts(("a", "tuple"), tf.TOKENS, frozenset(), reading._DAY_OR_MONTH)


# --- an entry's tf-idf vector ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(150))
def test_compiled_vectors_and_counts_are_the_python_ones(seed: int) -> None:
    """Counts, weights, order and ties: equal weights on terms with equal counts score the
    same, and the term decides which of them make the top k."""
    rng = random.Random(seed)
    counts = {t: rng.randint(1, 40) for t in rng.sample(WORDS, rng.randint(0, 30))}
    terms = rng.sample(WORDS, rng.randint(0, 30))
    weights = {t: rng.choice([1.0, 1.25, 2.0, rng.uniform(0.1, 3.0)]) for t in terms}
    total, k = rng.uniform(60, 5000), rng.choice([1, 5, 12, 48])
    df_c, df_py = Counter(counts), Counter(counts)
    compiled = _reading.count_and_vectorize(df_c, weights, total, k)
    python = sim.count_and_vectorize_py(df_py, weights, total, k)
    assert [(t, w.hex()) for t, w in compiled.items()] == [(t, w.hex()) for t, w in python.items()]
    assert df_c == df_py and list(df_c.items()) == list(df_py.items())
    assert len(compiled) == min(k, len(weights))


def test_vectors_rank_by_weight_then_term() -> None:
    """Worked by hand: with equal counts the idf is the same, so the tf weights rank the terms;
    "b" and "c" tie, and "b" comes first. The vector has unit length."""
    df: Counter[str] = Counter({"a": 3, "b": 3, "c": 3, "d": 3})
    vec = _reading.count_and_vectorize(df, {"d": 1.0, "c": 2.0, "b": 2.0, "a": 3.0}, 100.5, 3)
    assert list(vec) == ["a", "b", "c"]
    assert vec["a"] / vec["b"] == pytest.approx(1.5)
    assert sum(w * w for w in vec.values()) == pytest.approx(1.0)
    assert df == {"a": 4, "b": 4, "c": 4, "d": 4}
    with pytest.raises(TypeError):
        _reading.count_and_vectorize(df, {"a": "heavy"}, 100.5, 3)
    with pytest.raises(TypeError):
        _reading.count_and_vectorize(Counter({"a": "many"}), {"a": 1.0}, 100.5, 3)
