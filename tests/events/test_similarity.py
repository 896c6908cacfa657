"""Pure text features, pairwise scoring and name keys for event clustering (monitor.events: textfeatures,
similarity, weighing)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from monitor.events import similarity as sim
from monitor.events import textfeatures as tf
from monitor.events import weighing
from monitor.types import ClusterDoc


def doc(entry_id: int, title: str, text: str, feed_id: int = 1, outlet: str = "Some Outlet",
        when: str = "2016-11-21T10:00:00+00:00") -> ClusterDoc:
    return ClusterDoc(entry_id=entry_id, feed_id=feed_id, outlet=outlet, title=title, text=text,
                      published=datetime.fromisoformat(when).astimezone(timezone.utc))


@pytest.mark.parametrize("raw, folded", [
    ("Montazer-Mahdi\u2019s", "Montazer-Mahdi's"),
    ("Bogotá, Zürich, İstanbul", "Bogota, Zurich, Istanbul"),
    ("\u201cimmoral\u201d \u2013 content", '"immoral" - content'),
])
def test_fold(raw, folded):
    assert tf.fold(raw) == folded


@pytest.mark.parametrize("token, term", [
    ("arrests", "arrest"), ("arrested", "arrest"), ("arresting", "arrest"),
    ("criminalises", "criminaliz"), ("criminalizes", "criminaliz"), ("countries", "country"),
    ("colour", "color"), ("centre", "center"), ("iran's", "iran"), ("5,000", "5000"), ("85.4", "85.4"),
    ("twelve", "12"), ("dozen", "12"), ("cent", "percent"),
    ("the", None), ("said", None), ("monday", None), ("7:40", None),
])
def test_term_of(token, term):
    assert tf.term_of(token) == term


@pytest.mark.parametrize("sentence, joined", [
    ("Saeed Montazer al-Mahdi told ISNA", ["montazeralmahdi", "almahdi"]),
    ("spokesman Saeed Montazer-Mahdi said", ["montazermahdi"]),
    ("Mohammad Reza Farnaghi-Zadeh said", ["farnaghizadeh"]),
    ("the pro-Kurdish party and U.S.-led coalition", []),
])
def test_compound_names(sentence, joined):
    assert tf.compound_names(sentence) == joined


@pytest.mark.parametrize("text, published, expected", [
    # a weekday is the most recent such day (up to 5 days back), or tomorrow
    ("Two strong earthquakes struck on Wednesday evening", date(2016, 10, 26), [date(2016, 10, 26)]),
    ("Internet was cut on the eve of Thursday's election", date(2016, 11, 30), [date(2016, 12, 1)]),
    ("The quake struck on Sunday", date(2016, 10, 31), [date(2016, 10, 30)]),
    ("TEHRAN, Nov 21 (Wire) - police said", date(2016, 11, 21), [date(2016, 11, 21)]),
    ("Modi announced on Nov. 8 that notes", date(2016, 11, 16), [date(2016, 11, 8)]),
    ("The window opens on Jan. 1.", date(2016, 11, 24), []),  # a schedule, not a happening
    ("sold shares in a transaction on Friday, June 21st.", date(2019, 7, 10), [date(2019, 6, 21)]),
    ("You may 5 times over", date(2016, 11, 24), []),
    ("No day is named here", date(2016, 11, 24), []),
])
def test_stated_days(text, published, expected):
    assert sorted(tf.stated_days(text, published)) == [d.toordinal() for d in expected]


def test_day_distance():
    assert tf.day_distance(frozenset({1, 5}), frozenset({7})) == 2
    assert tf.day_distance(frozenset(), frozenset({7})) is None


def test_extract_weights_title_and_lead_over_tail():
    lead = "Volcano erupted near Kelmora village on the island. " * 10  # 90 words
    tail = "Background sentence about the harbour cranes. " * 60
    feats = sim.extract(doc(1, "Kelmora volcano erupts", lead + tail), sim.FeedBoilerplate())
    crane = tf.term_of("cranes")
    assert feats.tf["kelmora"] > feats.tf[crane] * 2  # the tail repeats "cranes" many times
    assert "kelmora" in feats.lead_terms and crane not in feats.lead_terms
    assert feats.content_words <= sim.MAX_WORDS + 20  # text past the cap is not read


def test_extract_drops_outlet_name_and_wire_slug():
    feats = sim.extract(doc(1, "UPDATE 2-Quake hits Norcia - Gulf Ledger",
                            "ROME, Oct 30 (Gulf Ledger) - A quake hit Norcia.", outlet="Gulf Ledger"),
                        sim.FeedBoilerplate())
    assert "gulf" not in feats.tf and "ledger" not in feats.tf and "update" not in feats.tf
    assert {"quak", "norcia"} <= set(feats.tf)


@pytest.mark.parametrize("outlet", ["Gulf Ledger", "The Daily Herald", "KHBR 9 News", "Zeitung Köln",
                                    "Yahoo! News", "News", "Kiwi News", "Kıwı News"])
def test_the_outlet_is_left_out_where_the_expression_finds_it(outlet: str) -> None:
    """without_outlet tries the expression only where the text can hold the name: its last word in
    lower case, and in ASCII text each of its ASCII words. Where it does not, the expression would
    find nothing either: the text is what the expression makes of it, whenever the last word is in."""
    import random

    from monitor.events import reading

    found = reading.outlet_pattern(outlet)
    assert found is not None
    last, expression, _ = found
    rng = random.Random(outlet)
    words = tf.fold(outlet).split()
    # the expression is blind to case as re is: "Kıwı" (dotless i) is "Kiwi" to it
    pool = [*words, *(w.upper() for w in words), *(w.lower() for w in words), "news", "herald", "police",
            "said", "daily", "9", "é", "Köln", "koln", "kiwi", "Kıwı", "-", ",", "(", ")", "'s", "’", "—", "\n"]
    texts = [" ".join(rng.choices(pool, k=rng.randint(1, 12))) for _ in range(3000)]
    texts += [outlet, f"By {outlet} staff", f"({outlet.upper()}) - A fire", tf.fold(outlet) + "'s report"]
    named = 0
    for text in map(tf.fold, texts):
        expected = expression.sub(" ", text) if last in text.lower() else text
        assert reading.without_outlet(text, found) == expected, text
        named += expected != text
    assert named > 20  # texts that name it are left without it


def test_extract_names_from_capitals_not_sentence_starts():
    feats = sim.extract(doc(1, "Iran tells Telegram to remove content",
                            "Police said Deputy minister Mohammad Reza Farnaghi-Zadeh spoke. "
                            "Foreign apps must comply."),
                        sim.FeedBoilerplate())
    assert {"mohammad", "reza", "farnaghizadeh"} <= feats.name_terms
    assert "polic" not in feats.name_terms and "foreign" not in feats.name_terms


def test_boilerplate_learned_per_feed_under_unrelated_headlines():
    bp = sim.FeedBoilerplate()
    footer = " The post {t} appeared first on Gulf Ledger. Sign in to comment on this story."
    stories = [("Quake hits Norcia", "A quake hit Norcia on Sunday."),
               ("Oil prices jump", "Crude rose 6 percent on OPEC hopes."),
               ("Chess title retained", "Carlsen kept the title in tiebreaks.")]
    feats = []
    for i, (title, body) in enumerate(stories):
        f = sim.extract(doc(i, title, body + footer.format(t=title), feed_id=7, outlet="Gulf Ledger"), bp)
        feats.append(f)
        bp.add(7, f.sentence_keys, f.headline)
    appeared = tf.term_of("appeared")
    assert "comment" in feats[0].tf and appeared in feats[0].tf  # first sight: nothing to compare with
    # repeated under an unrelated headline: furniture
    assert "comment" not in feats[1].tf and appeared not in feats[1].tf
    assert tf.term_of("crude") in feats[1].tf
    # another feed has not shown the sentence twice: it is that feed's text
    other = sim.extract(doc(9, "Oil prices jump", "Crude rose." + footer.format(t="x"), feed_id=8), bp)
    assert "comment" in other.tf
    for f in feats:  # the entries leave the window: the feed's record is empty again
        bp.remove(7, f.sentence_keys, f.headline)
    assert not bp.is_boilerplate(7, feats[0].sentence_keys[-1], frozenset({"unrelated"}))


def test_boilerplate_not_learned_from_one_story_updates():
    bp = sim.FeedBoilerplate()
    text = "Iran's cyber police arrested 100 hackers in a month, a spokesman said."
    for i in range(4):  # updates of one story repeat the same sentence under related headlines
        title = f"UPDATE {i}-Iran arrests hackers, groups blocked" if i else "Iran arrests hackers"
        f = sim.extract(doc(i, title, text), bp)
        bp.add(1, f.sentence_keys, f.headline)
    assert "hacker" in f.tf


def test_document_frequencies_prior_and_eviction():
    df = sim.DocumentFrequencies(prior=50)
    df.add({"mosul": 1.0, "iraq": 1.0})
    df.add({"mosul": 1.0})
    assert df.idf("mosul") < df.idf("iraq") < df.idf("unseen")
    assert df.idf("mosul") > 2.0  # two early reports do not make a word common
    df.remove({"mosul": 1.0})
    assert df.df["mosul"] == 1 and df.n == 1


def test_name_variants_map_transliterations():
    names = sim.NameVariants()
    names.add(["farnaghizadeh", "montazeralmahdi", "carlsen"])
    assert names.known_spelling("farnaqizadeh") == "farnaghizadeh"
    assert names.known_spelling("montazermahdi") == "montazeralmahdi"
    assert names.known_spelling("farnaghi") is None  # too different
    assert names.known_spelling("carlson") is None  # short names one letter apart are often two people
    names.remove(["farnaghizadeh"])
    assert names.known_spelling("farnaqizadeh") is None


def _pair(a: ClusterDoc, b: ClusterDoc) -> float:
    df = sim.DocumentFrequencies()
    bp = sim.FeedBoilerplate()
    fa, fb = sim.extract(a, bp), sim.extract(b, bp)
    for f in (fa, fb):
        df.add(f.tf)
    fa.vec = sim.vectorize(fa.tf, df.idf)
    fb.vec = sim.vectorize(fb.tf, df.idf)
    return sim.pair_similarity(fa, fb)


def test_pair_similarity_is_capped_by_the_leads():
    """A background paragraph about another event does not make two reports one event."""
    smog = doc(1, "Tehran shuts schools over smog",
               "Tehran closed primary schools on Sunday as air pollution reached unhealthy levels. "
               "Officials urged residents with heart conditions to stay indoors.")
    lead = ("New Zealand's central bank cut its official cash rate to a record low on Thursday. "
            "Governor Graeme Wheeler signalled further cuts were unlikely. The dollar rose. ") * 4
    background = ("Tehran closed primary schools on Sunday as air pollution reached unhealthy levels. "
                  "Officials urged residents with heart conditions to stay indoors. ") * 3
    rate = doc(2, "Reserve Bank cuts rate to record low", lead + background)
    full = sim.cosine(*(sim.vectorize(sim.extract(d, sim.FeedBoilerplate()).tf, lambda t: 1.0)
                        for d in (smog, rate)))
    assert _pair(smog, rate) < 0.5 * full


def test_syndicated_copy():
    text = ("TEHRAN, Nov 21 (Continental Wire) - Iran's cyber police have arrested at least 100 hackers over "
            "the past month, most of whom were active on the Telegram messaging app, a police spokesman said "
            "on Monday. Saeed Montazer al-Mahdi told the ISNA news agency that about 20 Telegram groups had "
            "also been blocked.")
    bp = sim.FeedBoilerplate()
    a = sim.extract(doc(1, "Iran arrests 100 hackers", text, feed_id=1, outlet="Continental Wire"), bp)
    b = sim.extract(doc(2, "Iran arrests at least 100 hackers", text, feed_id=2, outlet="Harbor City Times"),
                    bp)
    c = sim.extract(doc(3, "Iran arrests hackers", text.replace("100", "200").replace("Monday", "Tuesday")
                        .replace("past month", "past year, police said, in a new statement"), feed_id=3), bp)
    stub = sim.extract(doc(4, "Iran arrests 100 hackers", "Iran arrests 100 hackers."), bp)
    assert sim.is_syndicated_copy(a, b)
    assert sim.is_syndicated_copy(a, c)  # near-exact still counts
    assert not sim.is_syndicated_copy(a, stub)  # too short to judge


def test_shared_terms_are_ordered_by_contribution():
    a = {"telegram": 0.6, "hacker": 0.5, "iran": 0.2}
    b = {"telegram": 0.5, "hacker": 0.7, "iran": 0.1}
    assert sim.shared_terms(a, b) == ("hacker", "telegram", "iran")
    assert sim.vectorize({"b": 1.0, "a": 1.0, "c": 1.0}, lambda t: 1.0, k=2) == pytest.approx(
        {"a": 2 ** -0.5, "b": 2 ** -0.5})


def test_written_case_tells_names_from_capitalised_words():
    """A term the stream writes in lower case too is an ordinary word, however often a sentence
    start, a headline or page furniture capitalises it; a name is only ever capitalised."""
    case = sim.WrittenCase()
    for _ in range(20):  # "Police Chief Mara Quell", "Email Print" above every story
        case.add(["polic", "chief", "mara", "quell", "email", "print"], [])
    assert all(case.is_name(t) for t in ("polic", "email", "mara"))  # nothing says otherwise yet
    lower = [["polic", "chief"], ["email"], ["print", "polic"], ["chief", "email", "print"]] * 5
    for terms in lower:  # "the police chief said", "by email", "the print edition"
        case.add([], terms)
    assert not any(case.is_name(t) for t in ("polic", "chief", "email", "print"))
    assert case.is_name("mara") and case.is_name("quell")
    for terms in lower:  # those entries leave the statistics: what they taught goes with them
        case.remove([], terms)
    assert case.is_name("polic") and case.is_name("email")


def test_name_keys_are_runs_of_names():
    """The names in a run of capitalised words: the parts of two or more names."""
    ordinary = {"harris", "county", "sheriff", "email", "print"}.__contains__
    runs = ["harris county sheriff adrian garcia", "email print", "dario venn", "venn"]
    assert list(weighing.name_keys(runs, lambda t: not ordinary(t))) == ["adrian garcia", "dario venn"]


def test_weighed_entries_carry_name_keys_the_stream_teaches():
    """Page furniture in capitals ("Email Print", "Police Chief") is a name pair until the
    stream writes its words in lower case; the person's name stays one."""
    w = weighing.Weigher(7 * 86400)
    furniture = "Email Print\nPolice Chief Mara Quell said the Lantern Rooms in Kestrow Vale will close."
    first = w.weigh(doc(1, "Bar to close", furniture))
    assert first.name_keys == ("email print", "polic chief mara quell", "lantern room", "kestrow vale")
    assert {"chief", "print", "mara"} <= first.specific
    for i in range(2, 8):
        w.weigh(doc(i, f"Council notes {i}", "The police chief said by email that the print edition "
                    "of the council notes would stop; the chief of police agreed.", feed_id=i))
    later = w.weigh(doc(9, "Bar to close", furniture, feed_id=9))
    assert later.name_keys == ("mara quell", "lantern room", "kestrow vale")
    assert {"mara", "quell", "kestrow"} <= later.specific and not {"chief", "print"} & later.specific
