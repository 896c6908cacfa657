"""The lead of a digest item, from tables: what a report's text gives, and what it must never give.

The documented bound (README, "Topics and digests"): one or two sentences, at most 300
characters, cut at a sentence end, else at a word with "…"; no markup, no page furniture; a
report with no text gives no lead.
"""
from __future__ import annotations

import pytest

from monitor.digests.lead import FeedFurniture, best_first, make_lead, sentence_key

MAX = 300  # README: "at most 300 characters"
TITLE = "Man shot dead outside Copper Kettle bar in Alderbrook"
FIRST = "Jacob Melendez, 27, was shot outside a bar on Wrenfield Avenue late on Sunday."
SECOND = "Police said the suspect fled in a grey pickup."
STORY = f"{FIRST} {SECOND}"


# -- page furniture ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    pytest.param(f"Share this:\nFacebook\nTwitter\n{STORY}", id="share buttons"),
    pytest.param(f"Click here to subscribe to our newsletter.\n{STORY}", id="click here to subscribe"),
    pytest.param(f"Sign up for breaking news alerts\n{STORY}", id="sign up"),
    pytest.param(f"Copyright 2016 The Valley Press. All rights reserved. {STORY}", id="copyright line"),
    pytest.param(f"© 2016 Valley News 8, a station of the valley's own broadcasting company\n{STORY}",
                 id="copyright sign"),
    pytest.param(f"Photo: Jane Roe / Valley News 8\n{STORY}", id="photo credit"),
    pytest.param(f"Photo: officers stand outside the bar on Monday morning.\n{STORY}", id="photo caption"),
    pytest.param(f"ALDERBROOK, Ore. (Valley News) —\n{STORY}", id="dateline alone on its line"),
    pytest.param(f"Posted 3 hours ago\n{STORY}", id="posted ago"),
    pytest.param(f"Updated at 10:30 on 21 November 2016 by the web team\n{STORY}", id="updated at"),
    pytest.param(f"By Jane Roe and John Doe, Valley News 8\n{STORY}", id="byline"),
    pytest.param(f"{TITLE}\n{STORY}", id="title repeated as the first sentence"),
    pytest.param(f"{TITLE}. {STORY}", id="title repeated with a full stop"),
    pytest.param(f"{TITLE} {STORY}", id="title glued to the first sentence"),
    pytest.param(f"https://news.example/2016/11/21/shooting?utm_source=rss\n{STORY}", id="URL-only line"),
    pytest.param(f"You must enter the characters shown in the image to comment.\n{STORY}",
                 id="captcha prompt"),
    pytest.param(f"We use cookies to give you the best experience on our site.\n{STORY}", id="cookie notice"),
    pytest.param(f"Read more: all Alderbrook shootings this year\n{STORY}", id="read more link first"),
    pytest.param(f"(Adds the suspect's age) {STORY}", id="editor's note before the story"),
    pytest.param(f"Advertisement\n{STORY}", id="advertisement"),
    pytest.param(f"• {STORY}", id="bullet"),
])
def test_furniture_is_left_out(text):
    assert make_lead(text, (TITLE,)) == STORY


def test_a_footer_after_the_first_sentence_is_left_out():
    text = f"{FIRST}\nThe post {TITLE} appeared first on Valley News 8.\nShare this:"
    assert make_lead(text, (TITLE,)) == FIRST


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param(" \n\t\n ", id="white space"),
    pytest.param(" " * 5000, id="more white space than is read"),
    pytest.param("Share this:\nFacebook\nTwitter\nEmail", id="only share buttons"),
    pytest.param("Posted 3 hours ago", id="only a time stamp"),
    pytest.param("Copyright 2016 The Valley Press. All rights reserved.", id="only a copyright line"),
    pytest.param("https://news.example/a\nhttps://news.example/b", id="only URLs"),
    pytest.param(TITLE, id="only the title"),
    pytest.param("Photo: Jane Roe / Valley News 8", id="only a credit"),
    pytest.param("<script>alert('x')</script><img src='https://pixel.example/t.gif' width=1 height=1>",
                 id="only a script and a pixel"),
    pytest.param("Continue reading…", id="only a teaser mark"),
])
def test_no_text_gives_no_lead(text):
    assert make_lead(text, (TITLE,)) is None


# -- what the feed repeats ----------------------------------------------------------------------------

STANDING = "Valley News 8 is the station the whole valley trusts for local news and weather."
OTHERS = [  # the same feed's other stories, each ending with the station's standing sentence
    ("Council approves money for road repairs", f"The council voted 5-2 to repair the roads. {STANDING}"),
    ("School board delays vote on calendar", f"Parents asked for a longer winter break. {STANDING}"),
    ("Warehouse fire injures two firefighters", f"Two firefighters were hurt in a fire. {STANDING}"),
]


def test_a_sentence_the_feed_repeats_under_other_titles_is_left_out():
    furniture = FeedFurniture(OTHERS)
    assert sentence_key(STANDING) in furniture and sentence_key("Parents asked for a longer winter break.") \
        not in furniture
    assert make_lead(f"{STANDING} {STORY}", (TITLE,), furniture) == STORY
    assert make_lead(f"{STANDING} {STORY}", (TITLE,)).startswith(STANDING)  # prose by shape: the feed tells


def test_a_sentence_under_one_other_title_or_one_title_repeated_is_not_furniture():
    """A story's own update, or the same story stored twice, shares sentences: that is not furniture."""
    assert sentence_key(STANDING) not in FeedFurniture(OTHERS[:1])
    assert sentence_key(STANDING) not in FeedFurniture([OTHERS[0], OTHERS[0]])
    assert sentence_key(STANDING) in FeedFurniture(OTHERS[:2])
    assert sentence_key("the station the whole valley trusts") not in FeedFurniture(OTHERS)  # a whole sentence
    assert sentence_key("Posted 3 hours ago.") == sentence_key("posted 5 hours ago")  # digits vary


# -- teasers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, lead", [
    pytest.param(f"{FIRST} Continue reading…", FIRST, id="continue reading"),
    pytest.param(f"{FIRST} Read more", FIRST, id="read more"),
    pytest.param(f"{FIRST}\nRead more »", FIRST, id="read more on its line"),
    pytest.param(f"{FIRST} Read the full story at Valley News 8", FIRST, id="read the full story"),
    pytest.param(f"{FIRST} […] Share this:", FIRST, id="bracketed ellipsis"),
    pytest.param(f"{FIRST} Police said the suspect had [...]", f"{FIRST} Police said the suspect had…",
                 id="excerpt cut mid-sentence"),
    pytest.param(f"{FIRST} Police said the suspect fled (more…)", f"{FIRST} Police said the suspect fled…",
                 id="more in brackets"),
    pytest.param(f"{FIRST} More than 200 people attended a vigil.",
                 f"{FIRST} More than 200 people attended a vigil.", id="a sentence starting with More"),
    pytest.param(f"{FIRST} Children read more than their parents did.",
                 f"{FIRST} Children read more than their parents did.", id="read more inside a sentence"),
])
def test_a_teaser_is_cut_before_its_mark(text, lead):
    assert make_lead(text, (TITLE,)) == lead


# -- markup and entities that survived as text ---------------------------------------------------------


@pytest.mark.parametrize("text", [
    pytest.param(f"&lt;p&gt;{STORY}&lt;/p&gt;&lt;script&gt;alert('x')&lt;/script&gt;", id="escaped markup"),
    pytest.param(f"&amp;lt;b&amp;gt;{FIRST}&amp;lt;/b&amp;gt; {SECOND}", id="markup escaped twice"),
    pytest.param(f"<script>document.write('<b>x</b>')</script>{STORY}", id="script"),
    pytest.param(f"<style>p {{ color: red; }}</style>{STORY}", id="style"),
    pytest.param(f'<img src="https://pixel.example/t.gif?u=1" width="1" height="1">{STORY}',
                 id="tracking pixel"),
    pytest.param(f".story p {{ font-size: 14px; color: #333; }}\n{STORY}", id="CSS as text"),
    pytest.param(f"window.dataLayer = window.dataLayer || [];\n{STORY}", id="JavaScript as text"),
    pytest.param(f"<p>{FIRST}</p>\n<p onclick=\"alert(1)\">{SECOND}</p>", id="markup around each sentence"),
])
def test_markup_never_reaches_the_lead(text):
    lead = make_lead(text, (TITLE,))
    assert lead == STORY
    assert not any(c in lead for c in "<>&{}") and "script" not in lead.lower()


def test_entities_are_decoded_once_and_leftovers_dropped():
    assert make_lead("Melendez&amp;#8217;s family said he was a kind man who loved his job.") == (
        "Melendez’s family said he was a kind man who loved his job.")
    assert make_lead("His family said &#xZZ; he was a kind man &bogus; who loved his job.") == (
        "His family said he was a kind man who loved his job.")


# -- length -------------------------------------------------------------------------------------------


def test_a_long_first_sentence_is_cut_at_a_word_with_an_ellipsis():
    roads = ", ".join(f"Wrenfield Avenue {i}" for i in range(60))
    sentence = f"The council said that {roads} would be repaired."
    lead = make_lead(f"{sentence} {SECOND}")
    assert len(sentence) > MAX and len(lead) <= MAX and lead.endswith("…")
    kept = lead[:-1]
    assert sentence.startswith(kept) and sentence[len(kept)] in " ,"  # ends at a word, no dangling comma
    assert not kept.endswith((",", " "))


def test_two_sentences_when_both_fit_else_one():
    assert make_lead(STORY) == STORY
    long_second = "Police said " + " and ".join(["the suspect fled in a grey pickup"] * 8) + "."
    assert len(FIRST) + 1 + len(long_second) > MAX
    assert make_lead(f"{FIRST} {long_second}") == FIRST  # cut at a sentence end


def test_a_lead_is_one_line():
    assert make_lead(f"{FIRST}\n\n{SECOND}\n") == STORY


@pytest.mark.parametrize("text, lead", [
    pytest.param("Police in St. Louis said on Nov. 8 that U.S. Marshals had joined the search. He was found.",
                 "Police in St. Louis said on Nov. 8 that U.S. Marshals had joined the search.",
                 id="abbreviations do not end a sentence"),  # "He was found." is too short to be prose
    pytest.param("Asked whether he would resign, the mayor said no. He spoke to reporters on Monday.",
                 "Asked whether he would resign, the mayor said no. He spoke to reporters on Monday.",
                 id="said no. ends one"),
    pytest.param('"We heard three shots," a neighbour said. "Then the pickup drove off."',
                 '"We heard three shots," a neighbour said. "Then the pickup drove off."', id="quotes"),
])
def test_sentence_ends(text, lead):
    assert make_lead(text) == lead


# -- other languages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    pytest.param("Die Polizei hat am Sonntagabend einen 31 Jahre alten Mann festgenommen. Er soll vor einer "
                 "Bar auf einen Gast geschossen haben.", id="German"),
    pytest.param("Полиция задержала подозреваемого в воскресенье вечером. По словам следователей, он скрылся "
                 "на сером пикапе.", id="Russian"),
    pytest.param("La police a arrêté dimanche soir un homme de 31 ans. « Il a pris la fuite », a déclaré un "
                 "témoin.", id="French"),
    pytest.param("警方周日晚间在一家酒吧外逮捕了一名三十一岁的男子。此案仍在调查之中\uff0c警方呼吁目击者提供线索。",
                 id="Chinese"),
    pytest.param("警察は日曜日の夜、三十一歳の男を逮捕した。事件の捜査は続いている。", id="Japanese"),
    pytest.param("اعتقلت الشرطة مساء الأحد رجلا يبلغ من العمر واحدا وثلاثين عاما. ولا يزال التحقيق جاريا في "
                 "الحادث.", id="Arabic"),
])
def test_other_languages_give_their_first_two_sentences(text):
    assert make_lead(text) == text


def test_a_long_sentence_without_spaces_is_cut_at_a_character():
    sentence = "警方表示" + "此案仍在调查之中" * 60 + "。"
    lead = make_lead(sentence)
    assert len(lead) == MAX and lead.endswith("…") and sentence.startswith(lead[:-1])


@pytest.mark.parametrize("sentence", [
    "Tap water in the east of the city was declared safe to drink again on Monday.",
    "Share prices fell by a third after the company warned on its profits.",
    "Advertisement spending by the city council rose for the third year in a row.",
    "Sources said the suspect had been questioned twice before his arrest.",
    "Published on Monday, the report found that most of the city's roads needed urgent repairs.",
    "Users who subscribe to the service pay five dollars a month for it.",
])
def test_prose_that_starts_like_furniture_is_kept(sentence):
    assert make_lead(sentence) == sentence


def test_a_headline_in_upper_case_is_not_prose_but_a_sentence_in_lower_case_is():
    assert make_lead(f"POLICE HUNT GUNMAN AFTER BAR SHOOTING\n{STORY}") == STORY
    lower = "the suspect fled in a grey pickup, police said."
    assert make_lead(lower) == lower


# -- which report ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("members, matched, order", [
    pytest.param([1, 2, 3, 4], [None, 1, 3, 3], [3, 1, 2, 4], id="most matched first, then in order"),
    pytest.param([1, 2, 3], [None, None, None], [1, 2, 3], id="nobody matched: the earliest first"),
    pytest.param([1, 2, 3, 4], [None, 1, 2, None], [1, 2, 3, 4], id="tie: the earliest wins"),
    pytest.param([5, 6], [9, 9], [5, 6], id="matches of entries outside the cluster count for none"),
])
def test_best_first(members, matched, order):
    assert best_first(members, matched) == order
