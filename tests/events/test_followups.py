"""Follow-ups (monitor.events.followups, through the clusterer): a later report joins its incident
past the window when it shares specific names, and only then.

The documented rules: names are terms the stream writes with a capital and (almost) never in
lower case; runs of two or more names are name pairs ("dario venn", "kestrow vale"). Past the
window, or when nothing in the window is close enough, an entry joins the cluster with which it
shares at least 2 name pairs, each held by at most 2 clusters within `follow_up_window` (365
days by default), with the reason "follow-up". The word statistics keep at least 5,000 entries
past the 7-day window. Every text here is made up: people, places and outlets.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitor.events.clusterer import Assignment, ClusterConfig, Clusterer
from monitor.types import ClusterDoc
from tests.support.replay import make_clusterer, restarted

T0 = datetime(2024, 4, 6, 22, tzinfo=timezone.utc)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def doc(entry_id: int, feed_id: int, title: str, text: str, when: datetime) -> ClusterDoc:
    return ClusterDoc(entry_id, feed_id, f"Outlet {feed_id}", title, text, when)


# An incident told by two outlets the same night, and a report of the charge weeks later that
# shares only the victim's full name and the place with it.
VENN = [
    doc(1, 1, "Man shot dead outside bar in Kestrow Vale",
        "Dario Venn, 41, was shot dead outside the Lantern Rooms bar in Kestrow Vale late on Saturday, "
        "police said. Nobody has been arrested.", T0),
    doc(2, 2, "Dario Venn named as Kestrow Vale shooting victim",
        "Police named the man shot dead outside the Lantern Rooms in Kestrow Vale as Dario Venn, a plumber. "
        "Detectives appealed for witnesses who saw a grey van.", T0 + 14 * HOUR),
]
CHARGED = ("A 29-year-old woman was charged with murder on Thursday over the death of Dario Venn, who was "
           "killed in Kestrow Vale in the spring. She will appear in court next week.")


def assign_all(cl: Clusterer, docs: list[ClusterDoc]) -> list[Assignment]:
    return [cl.assign(d) for d in docs]


def test_a_report_weeks_later_with_the_victims_name_and_the_place_joins_as_a_follow_up():
    cl = Clusterer()
    first, second = assign_all(cl, VENN)
    assert second.cluster_id == first.cluster_id
    later = doc(3, 3, "Woman charged with plumber's murder", CHARGED, T0 + 40 * DAY)
    a = cl.assign(later)
    assert cl.compare(3, 2) is None  # the incident left the window long ago
    assert (a.cluster_id, a.is_new, a.reason) == (first.cluster_id, False, "follow-up")
    assert a.shared_terms == ("dario venn", "kestrow vale")  # the shared name pairs, in the report's order
    assert a.matched_entry_id == 2  # the incident's latest member with those names
    assert a.time_gap == later.published - VENN[1].published
    assert a.merged == () and a.also == ()


def test_one_shared_name_pair_never_links():
    """A full name alone is what namesakes share: a later report that has it and another name
    pair of its own starts a new cluster."""
    cl = Clusterer()
    assign_all(cl, VENN)
    a = cl.assign(doc(3, 3, "Bakery opens at Tolland Wharf",
                      "Dario Venn opened a bakery at Tolland Wharf on Monday, selling rye bread and buns.",
                      T0 + 40 * DAY))
    assert set(a.name_keys) == {"dario venn", "tolland wharf"}
    assert a.is_new and a.reason == "new" and a.also == ()


@pytest.mark.parametrize("holders", [2, 3])
def test_a_name_held_by_more_than_two_clusters_is_no_evidence(holders):
    """"Sam Ellery" is named by `holders` unrelated stories; a later report shares it and the
    place with the first. Held by 2 clusters it still counts (the documented bar); held by 3
    it names no one incident, and the place alone is one pair: no link."""
    stories = [
        ("Warehouse fire at Tolland Wharf",
         "Fire crews fought a blaze at a timber warehouse at Tolland Wharf overnight. The owner, Sam Ellery, "
         "said nobody was inside."),
        ("Bakery van stolen",
         "A bakery van was stolen from outside a shop on Tuesday. Its driver, Sam Ellery, had left the "
         "engine running."),
        ("Prize for giant marrow",
         "A grower won first prize at the county show for a giant marrow. Sam Ellery, 70, said the secret "
         "was rain."),
    ]
    cl = Clusterer()
    firsts = [cl.assign(doc(n + 1, n + 1, title, text, T0 + 10 * n * DAY))
              for n, (title, text) in enumerate(stories[:holders])]
    assert len({f.cluster_id for f in firsts}) == holders and all(f.is_new for f in firsts)
    a = cl.assign(doc(9, 9, "Warehouse owner fined", "The owner of a warehouse that burned down at Tolland "
                      "Wharf in April, Sam Ellery, was fined for storing timber too close to the quay.",
                      T0 + 60 * DAY))
    if holders == 2:
        assert (a.cluster_id, a.reason) == (firsts[0].cluster_id, "follow-up")
        assert set(a.shared_terms) == {"sam ellery", "tolland wharf"}
    else:
        assert a.is_new and a.reason == "new"


def lower_case_background(n: int, start: datetime) -> list[ClusterDoc]:
    """Stories that write "police", "chief", "email" and "print" in lower case, as a stream does."""
    texts = ["The police chief told the council by email that the print shop on the corner would close.",
             "A school printed its reports late after an email error, the head told the police liaison.",
             "The chief librarian said readers could renew books by email or at the print desk."]
    return [doc(100 + i, 10 + i % 3, f"Local notes {i}", texts[i % 3], start + i * HOUR) for i in range(n)]


def test_capitalised_words_the_stream_writes_in_lower_case_are_no_names():
    """Page furniture ("Email Print") and a title ("Police Chief") above two unrelated stories
    months apart do not make the later one a follow-up: the stream writes those words in lower
    case, so the only pair the two share is the chief's name, and one pair never links."""
    cl = Clusterer()
    assign_all(cl, lower_case_background(12, T0 - 2 * DAY))
    shooting = cl.assign(doc(1, 1, "Man shot dead at the Lantern Rooms",
                             "Email Print\nPolice Chief Mara Quell said a man was shot dead at the Lantern "
                             "Rooms on Saturday and appealed for witnesses.", T0))
    assert set(shooting.name_keys) == {"mara quell", "lantern room"}
    station = cl.assign(doc(2, 2, "New police station opens",
                            "Email Print\nPolice Chief Mara Quell opened a new station on Dunmore Parade on "
                            "Monday, with room for forty officers.", T0 + 60 * DAY))
    assert "mara quell" in station.name_keys
    assert not any("email" in k or "chief" in k for k in station.name_keys)
    assert station.is_new and station.reason == "new"


# A shooting and a stabbing in the same week, each told once.
BRASK = doc(3, 3, "Teenager stabbed at Brask ferry terminal",
            "Bram Hollis, 19, was stabbed at the Tolland Wharf ferry terminal in Brask on Tuesday. He was "
            "treated in hospital and released.", T0 + 3 * DAY)
TRIAL = ("A man went on trial on Monday accused of killing Dario Venn outside the Lantern Rooms in "
         "Kestrow Vale and of stabbing Bram Hollis at Tolland Wharf a few days later.")


def test_a_follow_up_that_names_two_incidents_joins_one_and_lists_the_other():
    cl = Clusterer()
    venn, _ = assign_all(cl, VENN)
    hollis = cl.assign(BRASK)
    assert hollis.is_new
    a = cl.assign(doc(4, 4, "Trial opens over Kestrow Vale and Brask attacks", TRIAL, T0 + 120 * DAY))
    # three pairs with the shooting (name, bar, town), two with the stabbing (name, wharf)
    assert (a.cluster_id, a.reason) == (venn.cluster_id, "follow-up")
    assert a.also == (hollis.cluster_id,)
    assert a.merged == ()
    assert cl.resolve(hollis.cluster_id) == hollis.cluster_id != venn.cluster_id


def test_a_report_naming_two_incidents_does_not_take_the_other_ones_later_follow_ups():
    """After the trial report (which joins the shooting), the sentencing in the stabbing alone
    belongs to the stabbing: it shares the same two pairs with the trial's cluster and the
    stabbing's, and the stabbing named them first."""
    cl = Clusterer()
    assign_all(cl, VENN)
    hollis = cl.assign(BRASK)
    cl.assign(doc(4, 4, "Trial opens over Kestrow Vale and Brask attacks", TRIAL, T0 + 120 * DAY))
    a = cl.assign(doc(5, 5, "Ferry terminal attacker jailed",
                      "A man was jailed for six years on Friday for stabbing Bram Hollis at Tolland Wharf.",
                      T0 + 150 * DAY))
    assert a.cluster_id == hollis.cluster_id


# Three shootings of one weekend, each with its own names, told once each.
WEEKEND = [
    ("Two men shot outside Brask bar",
     "Two men were shot outside the Copper Kettle bar on Fennick Road in Brask late on Saturday. Police "
     "said both were taken to Saint Ilse Hospital with wounds that were not life-threatening."),
    ("Teenager shot at Ostwick house party",
     "A teenager was shot in the leg at a house party on Moravy Lane in Ostwick early on Sunday. Officers "
     "found Ansel Pry, 17, in the garden and took him to hospital, police said."),
    ("Two women wounded in Harlow Mills bus station shooting",
     "Two women were wounded by gunfire at the Harlow Mills bus station on Sunday afternoon. Police said a "
     "man opened fire after an argument and fled on foot towards Quarry Gate."),
]


def test_a_round_up_joins_at_most_one_incident_and_merges_none():
    """"Weekend violence: 5 shot in 3 incidents", that weekend and again in a month's review:
    each joins one incident at most and never merges the incidents it lists, which go on
    taking their own reports."""
    cl = Clusterer()
    incidents = [cl.assign(doc(n + 1, n + 1, title, text, T0 + 5 * n * HOUR))
                 for n, (title, text) in enumerate(WEEKEND)]
    ids = [a.cluster_id for a in incidents]
    assert len(set(ids)) == 3
    every_text = " ".join(text for _, text in WEEKEND)
    weekend = cl.assign(doc(4, 4, "Weekend violence: 5 shot in 3 incidents",
                            "Five people were shot in three separate incidents over the weekend. "
                            + every_text, T0 + 20 * HOUR))
    assert weekend.merged == () and (weekend.is_new or weekend.cluster_id in ids)
    own_reports = [
        ("Brask bar shooting: two men named",
         "Police named the two men shot outside the Copper Kettle bar on Fennick Road in Brask as brothers "
         "Lio and Teo Marrant."),
        ("Ostwick party shooting: boy, 16, arrested",
         "A 16-year-old boy was arrested over the shooting of Ansel Pry at a house party on Moravy Lane in "
         "Ostwick."),
        ("Harlow Mills bus station gunman sought",
         "Detectives released images of a man they want to trace after two women were wounded at the "
         "Harlow Mills bus station."),
    ]
    updates = [cl.assign(doc(5 + n, n + 1, title, text, T0 + (26 + n) * HOUR))
               for n, (title, text) in enumerate(own_reports)]
    assert [u.cluster_id for u in updates] == ids and all(u.merged == () for u in updates)
    review = cl.assign(doc(9, 4, "A month of violence: the shootings of May",
                           "Weeks after a weekend in which five people were shot, no one has been charged. "
                           + every_text, T0 + 30 * DAY))
    assert review.merged == () and (review.is_new or review.cluster_id in ids)
    if not review.is_new:  # a follow-up of one, the others named as also matched
        assert review.reason == "follow-up" and set(review.also) <= set(ids) - {review.cluster_id}
    assert len({cl.resolve(i) for i in ids}) == 3


@pytest.mark.parametrize("title", ["Venn", "Kestrow", "Shooting"])
def test_a_one_word_title_without_text_does_not_join_on_a_weak_match(title):
    cl = Clusterer()
    assign_all(cl, VENN)
    stub = cl.assign(doc(3, 3, title, "", T0 + 15 * HOUR))
    assert stub.is_new and stub.reason == "new"
    # a match it would clear by score alone: one word is no evidence
    assert max(cl.compare(3, 1).score, cl.compare(3, 2).score) >= cl.config.join


# The vocabulary of one kind of incident, repeated across a quiet stream's stories.
KIND = ["A man was shot and wounded late on Friday, police said, and was taken to hospital with injuries "
        "that were not life-threatening.",
        "Police said officers found a woman with a gunshot wound after reports of shots fired; she was taken "
        "to hospital.",
        "A teenager was shot in the leg on Friday night and taken to hospital; police have made no arrests.",
        "The council voted to repair the roof of the library and the swimming pool before the winter.",
        "The school reopened after the holidays with new teachers and a new lunch menu, the head said."]


def test_a_quiet_stream_keeps_enough_entries_to_know_its_common_words():
    """A stream of 56 entries a week, then ten days without any: the word statistics still hold
    at least 5,000 entries (the documented sample), so two shootings that share only the words
    of their kind stay apart. Built from this week alone, "shot", "police" and "hospital" would
    look as rare as a name and join them."""
    cl = Clusterer()
    n = 5100
    for i in range(n):
        cl.assign(doc(i + 1, 1 + i % 5, f"Report number {i}", KIND[i % 5], T0 + 3 * i * HOUR))
    after_gap = T0 + 3 * n * HOUR + 10 * DAY
    a = cl.assign(doc(90_001, 1, "Man shot outside Tolland Wharf pub",
                      "A man was shot and wounded outside a pub at Tolland Wharf late on Friday, police "
                      "said. He was taken to hospital with injuries that were not life-threatening.",
                      after_gap))
    b = cl.assign(doc(90_002, 2, "Woman shot in Brask car park",
                      "A woman was shot and wounded in a Brask car park late on Friday, police said. She "
                      "was taken to hospital with injuries that were not life-threatening.",
                      after_gap + 3 * HOUR))
    assert cl.window_entries == 2  # the window itself holds only the two
    assert 5_000 <= cl.weigher.entries < n  # a sample of the stream, the oldest entries gone
    assert a.is_new and b.is_new


# A quiet local stream's stories: two reports each (one outlet, then another), one story a day.
STORIES = [
    ("{n} hurt in {place} {thing} fire",
     "Fire crews fought a blaze at a {thing} in {place} overnight and took {n} people to hospital.",
     "Fire at {place} {thing}",
     "A fire at a {thing} in {place} injured {n} people, the fire service said; the cause is not known."),
    ("Burglars raid {place} {thing}",
     "Burglars broke into a {thing} in {place} and took cash and tools worth {n},000 crowns.",
     "Police appeal after {place} break-in",
     "Police appealed for witnesses after a {thing} in {place} was burgled; thieves took {n},000 crowns."),
    ("{place} {thing} to close",
     "The {thing} in {place} will close next month after {n} decades, its owners said.",
     "End of an era for {place} {thing}",
     "After {n} decades the {place} {thing} is closing; regulars said they would miss it."),
    ("Flooding shuts {place} {thing}",
     "Heavy rain flooded a {thing} in {place}, and {n} families were moved to a church hall.",
     "{place} {thing} under water",
     "Water rose a metre inside the {thing} in {place}; {n} families spent the night in a church hall."),
    ("{place} {thing} wins award",
     "A {thing} in {place} won the regional award for small firms, beating {n} rivals.",
     "Award for {place} {thing}",
     "Judges praised the {place} {thing}, which beat {n} other firms to the regional prize."),
    ("Lorry crash blocks road near {place} {thing}",
     "A lorry overturned outside a {thing} in {place}, spilling {n} tonnes of gravel.",
     "{place} road closed after lorry spill",
     "The road past the {thing} in {place} was closed after a lorry shed {n} tonnes of gravel."),
]
TOWNS = [a + b for a in ("Bren", "Kel", "Ost", "Mar", "Tal", "Fen", "Dun", "Lis")
         for b in ("wick", "mere", "by", "ford", "holm", "stead", "ton", "gate")]
THINGS = ["timber yard", "bakery", "bus depot", "school gym", "boat shed", "laundry", "garage"]
# each outlet's own furniture, which its statistics learn to leave out
FOOTER = " Read more local news on the {o} website, and sign up for the {o} morning newsletter."


def quiet_stream() -> list[ClusterDoc]:
    """Two months of a quiet local stream: the Venn shooting, then one story a day told twice,
    and the charge in the shooting twenty entries before the end."""
    docs = list(VENN)
    for i in range(62):
        title1, text1, title2, text2 = STORIES[i % len(STORIES)]
        facts = {"place": TOWNS[i], "thing": THINGS[i % len(THINGS)], "n": 3 + i % 5}
        for j, (title, text) in enumerate([(title1, text1), (title2, text2)]):
            feed = 3 + (i + j) % 4
            docs.append(doc(10 + 2 * i + j, feed, title.format(**facts),
                            text.format(**facts) + FOOTER.format(o=f"Outlet {feed}"),
                            T0 + (i + 1) * DAY + 6 * j * HOUR))
    docs.insert(len(docs) - 20, doc(500, 9, "Woman charged with plumber's murder", CHARGED,
                                    docs[-21].published + HOUR))
    return docs


@pytest.mark.parametrize("split", [90, 105])
def test_a_restart_decides_as_an_uninterrupted_clusterer_including_a_follow_up(split):
    """A restart rebuilt from the store (the last `warm_span` or `warm_entries` of entries weighed
    again and kept, older members' name pairs recalled) decides the next entries exactly as the
    clusterer that never stopped, the charge in a shooting older than that history included.

    The statistics keep a small sample here (40 entries past the window) to keep the stream
    small; the stream is quiet for it: two windows hold fewer entries than the statistics
    keep, so the history reaches further back by count."""
    docs = quiet_stream()
    sample = 40
    full = make_clusterer(sample=sample)
    decisions = [full.assign(d) for d in docs]
    charge = next(a for a in decisions if a.entry_id == 500)
    assert (charge.reason, charge.cluster_id) == ("follow-up", decisions[0].cluster_id)
    assert len({a.cluster_id for a in decisions}) == 63  # the shooting and 62 stories, each whole
    first = docs[split].published
    restart = restarted(docs[:split], decisions[:split], first, sample=sample)
    assert [restart.assign(d) for d in docs[split:]] == decisions[split:]
    assert sum(first - restart.warm_span <= d.published for d in docs[:split]) < sample  # quiet
    # the history weighed again starts before two windows, after the shooting
    history_start = docs[split - restart.warm_entries].published
    assert VENN[-1].published < history_start < first - restart.warm_span


@pytest.mark.parametrize("later, joins", [(364 * DAY, True), (366 * DAY, False)])
def test_follow_ups_reach_back_a_year_by_default(later, joins):
    cl = Clusterer()
    venn, _ = assign_all(cl, VENN)
    a = cl.assign(doc(3, 3, "Woman charged with plumber's murder", CHARGED, VENN[1].published + later))
    assert (a.cluster_id == venn.cluster_id and a.reason == "follow-up") is joins


def test_no_follow_ups_when_the_follow_up_window_is_zero():
    cl = Clusterer(ClusterConfig(follow_up_window=timedelta(0)))
    assign_all(cl, VENN)
    assert cl.assign(doc(3, 3, "Woman charged with plumber's murder", CHARGED, T0 + 40 * DAY)).is_new


def test_a_recalled_cluster_merged_later_takes_its_follow_ups_under_the_survivor():
    """After a restart, name pairs recalled under a cluster id that a stored merge absorbed
    lead to the surviving cluster."""
    cl = Clusterer(next_cluster_id=10)
    for d in VENN:
        cl.recall(d.entry_id, 3, d.published.timestamp(), ("dario venn", "kestrow vale", "lantern room"))
    cl.merged(3, 7)
    a = cl.assign(doc(3, 3, "Woman charged with plumber's murder", CHARGED, T0 + 40 * DAY))
    assert (a.cluster_id, a.reason, a.matched_entry_id) == (7, "follow-up", 2)
