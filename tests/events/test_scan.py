"""The candidate search's inner loops, compiled and in Python (monitor.events.scan).

What must hold: the compiled functions return exactly what their Python twins return, float
for float and in the same order, so that no decision depends on whether the extension was
built; clustering a stream decides the same with either; wrong input is refused with an
error, not a crash. A test install builds the extension (it needs a C compiler): where it was
not built, these tests skip, and a skip fails the run under CI.
"""
from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.events import scan
from monitor.events import similarity as sim
from monitor.events.clusterer import Clusterer
from tests.support.corpus import DOCS

if not scan.COMPILED:
    pytest.skip("monitor.events._scan was not built (no C compiler at install)", allow_module_level=True)

from monitor.events import _scan  # only importable where it was built


def _random_scan_args(rng: random.Random) -> tuple:
    """A query's terms over a random window: postings that overlap, minor terms before and after
    the others, entries that only minor terms reach, stamps near and far, names shared or not."""
    entries = rng.sample(range(1, 10**9), rng.randint(0, 60))
    stamps = {e: rng.uniform(0, 20 * 86400) for e in entries}
    pool = [f"n{i}" for i in range(8)]
    specific = {e: frozenset(rng.sample(pool, rng.randint(0, 3))) for e in entries}
    terms = []
    for _ in range(rng.randint(0, 12)):
        members = rng.sample(entries, rng.randint(0, len(entries))) if entries else []
        postings = {e: rng.uniform(0.01, 0.6) for e in members}
        terms.append((rng.uniform(0.01, 0.6), postings, rng.random() < 0.3))
    window = 7 * 86400.0
    scale = rng.choice([24, 96, 240]) * 3600.0
    return (terms, rng.uniform(-0.2, 0.3), rng.uniform(0.0, 0.3), stamps, rng.uniform(0, 20 * 86400), window,
            0.5 / (scale * scale), 0.15, 0.3, 0.5, frozenset(rng.sample(pool, rng.randint(0, 3))), specific)


@pytest.mark.parametrize("seed", range(300))
def test_compiled_scan_returns_what_the_python_scan_returns(seed: int) -> None:
    args = _random_scan_args(random.Random(seed))
    compiled, python = _scan.scan(*args), scan.scan_py(*args)
    assert compiled == python
    # and the floats are the same bits, not only equal to the printed digits
    assert [tuple(map(float.hex, (u, d, p))) for u, _, d, p in compiled] == \
           [tuple(map(float.hex, (u, d, p))) for u, _, d, p in python]


def test_scan_keeps_what_the_rules_say() -> None:
    """Worked by hand: two terms open entries 1-3, a minor term adds to 2 and would open 4."""
    day = 86400.0
    terms = [(0.5, {1: 0.4, 2: 0.2}, False), (0.25, {2: 0.4, 4: 0.9}, True), (0.5, {3: 0.2, 2: 0.2}, False)]
    stamps = {1: 0.0, 2: 3 * day, 3: 0.0, 4: 0.0}
    specific = {1: frozenset(), 2: frozenset({"smith"}), 3: frozenset(), 4: frozenset()}
    scale = 96 * 3600.0
    for fn in (_scan.scan, scan.scan_py):
        found = fn(terms, 0.05, 0.0, stamps, 0.0, 7 * day, 0.5 / scale**2, 0.15, 0.3, 0.5,
                   frozenset({"smith"}), specific)
        # entry 1: 0.5 x 0.4 = 0.2 (no gap, >= 0.15 but < 0.3, names no one q names: dropped);
        # entry 2: 0.1 + 0.1 + 0.1 = 0.3, decayed by 3 days (0.3 x 0.75 = 0.23), shares "smith": kept;
        # entry 3: 0.1 < 0.15: dropped; entry 4: only the minor term reaches it: never scanned
        assert [eid for _, eid, _, _ in found] == [2]
        upper, _, decay, partial = found[0]
        assert partial == pytest.approx(0.3) and upper == partial
        assert decay == pytest.approx(math.exp(-0.5 * (72 / 96) ** 2))


@pytest.mark.parametrize("seed", range(100))
def test_compiled_dot_products_return_what_the_python_ones_return(seed: int) -> None:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)]
    a = {t: rng.random() for t in rng.sample(words, rng.randint(0, 30))}
    b = {t: rng.random() for t in rng.sample(words, rng.randint(0, 30))}
    lead = frozenset(rng.sample(words, rng.randint(0, 40)))
    assert _scan.lead_cosine(a, lead, b).hex() == scan.lead_cosine_py(a, lead, b).hex()
    pairs = list(a.items())
    assert _scan.dot(pairs, b).hex() == scan.dot_py(pairs, b).hex()


def test_wrong_input_is_refused_with_an_error() -> None:
    ok = ([(0.5, {1: 0.5}, False)], 0.0, 0.0, {1: 0.0}, 0.0, 1.0, 1.0, 0.1, 0.3, 0.5, frozenset(),
          {1: frozenset()})
    with pytest.raises(TypeError):
        _scan.scan([(0.5, {1: "x"}, False)], *ok[1:])
    with pytest.raises(TypeError):
        _scan.scan([(0.5, {1: 0.5})], *ok[1:])
    with pytest.raises(KeyError):
        _scan.scan(ok[0], *ok[1:3], {}, *ok[4:])
    with pytest.raises(OverflowError):
        _scan.scan([(0.5, {2**70: 0.5}, False)], *ok[1:])
    with pytest.raises(TypeError):
        _scan.dot([("a",)], {})
    assert _scan.scan(*ok) == scan.scan_py(*ok)


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


def test_clustering_decides_the_same_with_the_python_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _stream(1500)
    cl = Clusterer()
    compiled = [cl.assign(d) for d in docs]
    monkeypatch.setattr(scan, "scan", scan.scan_py)
    monkeypatch.setattr(scan, "dot", scan.dot_py)
    monkeypatch.setattr(sim, "lead_cosine", scan.lead_cosine_py)
    cl = Clusterer()
    python = [cl.assign(d) for d in docs]
    assert python == compiled
    # the stream exercises what the loops decide: joins, copies and merges
    assert {a.reason for a in compiled} >= {"new", "similar", "syndicated"}
    assert any(a.merged for a in compiled)
