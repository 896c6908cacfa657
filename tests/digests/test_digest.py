"""Digest decisions and rendering, pure: schedules, what goes in, and the parsed e-mail that comes out."""
from __future__ import annotations

import email
import os
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import policy
from zoneinfo import ZoneInfo

import pytest

from monitor.config import TopicSettings
from monitor.digests.digest import (
    Candidate,
    PriorSend,
    Report,
    bars,
    make_message_id,
    render,
    select_items,
    sparkline,
    spread,
    subject,
    with_leads,
)
from monitor.digests.schedule import due_topics, is_due, next_fire, parse_schedule
from tests.support import DATA

NOW = datetime(2016, 11, 18, 7, 0, tzinfo=timezone.utc)
T0 = datetime(2016, 11, 16, 9, 10, tzinfo=timezone.utc)
SENDER = "Monitor <monitor@example.org>"
TOPIC = TopicSettings(name="platform-regulation", query="telegram", title="Platform regulation",
                      recipients=("desk@example.org", "chief@example.org"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# -- schedules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule, last, now, due", [
    ("immediate", utc(2016, 11, 18, 6, 59), NOW, True),
    ("hourly", utc(2016, 11, 18, 6, 0), utc(2016, 11, 18, 6, 59), False),
    ("hourly", utc(2016, 11, 18, 6, 0), utc(2016, 11, 18, 7, 0), True),
    ("hourly", None, NOW, True),
    ("daily 07:00", utc(2016, 11, 17, 7, 0), utc(2016, 11, 18, 6, 59), False),
    ("daily 07:00", utc(2016, 11, 17, 7, 0), utc(2016, 11, 18, 7, 0), True),
    ("daily 07:00", utc(2016, 11, 18, 7, 0, 30), utc(2016, 11, 18, 7, 15), False),  # not again at 07:15
    ("daily 07:00", utc(2016, 11, 10, 7, 0), NOW, True),  # missed days: one digest, not seven
    ("*/15 * * * *", utc(2016, 11, 18, 6, 50), utc(2016, 11, 18, 6, 59), False),
    ("*/15 * * * *", utc(2016, 11, 18, 6, 50), utc(2016, 11, 18, 7, 0), True),
    ("0 9 * * 0", utc(2016, 11, 19, 12, 0), utc(2016, 11, 20, 9, 0), True),  # 20 Nov 2016 is a Sunday: 0
    ("0 9 * * 7", utc(2016, 11, 19, 12, 0), utc(2016, 11, 20, 9, 0), True),  # and 7
    ("0 9 * * sun", utc(2016, 11, 19, 12, 0), utc(2016, 11, 20, 9, 0), True),
    ("0 9 * * 1-5", utc(2016, 11, 19, 12, 0), utc(2016, 11, 20, 23, 0), False),  # weekend
    ("0 9 * * 1-5", utc(2016, 11, 19, 12, 0), utc(2016, 11, 21, 9, 0), True),
    ("0 9 1 * 1", utc(2016, 11, 19, 12, 0), utc(2016, 11, 21, 9, 0), True),  # both restricted: either matches
    ("30 8 * dec *", utc(2016, 11, 19, 12, 0), utc(2016, 11, 30, 9, 0), False),
    ("30 8 * dec *", utc(2016, 11, 19, 12, 0), utc(2016, 12, 1, 9, 0), True),
])
def test_is_due(schedule, last, now, due):
    assert is_due(parse_schedule(schedule), last, now, timezone.utc) is due


def test_daily_follows_the_configured_time_zone_across_dst():
    berlin = ZoneInfo("Europe/Berlin")
    s = parse_schedule("daily 07:00")
    assert next_fire(s, utc(2016, 10, 29, 12, 0), berlin) == utc(2016, 10, 30, 6, 0)  # CEST ends that night
    assert next_fire(s, utc(2016, 10, 30, 6, 0), berlin) == utc(2016, 10, 31, 6, 0)
    assert next_fire(s, utc(2016, 7, 1, 12, 0), berlin) == utc(2016, 7, 2, 5, 0)


def test_due_topics_keeps_config_order_and_reads_last_runs():
    topics = [TopicSettings(name=n, query="x", schedule=s) for n, s in
              (("a", "daily 07:00"), ("b", "immediate"), ("c", "hourly"))]
    last = {"a": utc(2016, 11, 18, 7, 0), "c": utc(2016, 11, 18, 6, 0)}
    assert [t.name for t in due_topics(topics, last, utc(2016, 11, 18, 7, 30), "UTC")] == ["b", "c"]
    # Tehran is UTC+3:30: its hours start at half past in UTC, its 07:00 is 03:30 UTC
    assert [t.name for t in due_topics(topics, last, utc(2016, 11, 18, 6, 29), "Asia/Tehran")] == ["b"]
    assert [t.name for t in due_topics(topics, last, utc(2016, 11, 18, 6, 30), "Asia/Tehran")] == ["b", "c"]
    assert [t.name for t in due_topics(topics, last, utc(2016, 11, 19, 3, 30), "Asia/Tehran")] == ["a", "b", "c"]


@pytest.mark.parametrize("bad", ["61 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
                                 "5-1 * * * *", "daily 7pm", "weekly", "* * * *", "x * * * *"])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError):
        parse_schedule(bad)


def test_a_schedule_that_never_fires_is_never_due():
    assert next_fire(parse_schedule("0 0 30 2 *"), NOW, timezone.utc) is None
    assert is_due(parse_schedule("0 0 30 2 *"), NOW - timedelta(days=400), NOW, timezone.utc) is False


# -- selection -----------------------------------------------------------------------------------


def reports(*outlets: str, start: datetime = T0, step: timedelta = timedelta(hours=1),
            link: str = "https://news.example/{i}") -> tuple[Report, ...]:
    return tuple(Report(outlet=o, link=link.format(i=i), title=f"report {i}", published=start + i * step)
                 for i, o in enumerate(outlets))


def cand(cid: int, *outlets: str, prior: PriorSend | None = None, headline: str = "", **kw) -> Candidate:
    return Candidate(cluster_id=cid, headline=headline or f"Event {cid}", reports=reports(*outlets, **kw),
                     terms=("telegram", "blocked"), prior=prior)


def test_new_and_grown_clusters_go_in_and_the_rest_stays_out():
    plan = select_items(TOPIC, [
        cand(1, "Trend", "Tehran Times"),
        cand(2, "Trend", "Tehran Times", prior=PriorSend(2, ("Trend", "Tehran Times"))),  # sent, not grown
        cand(3, "Trend", "Tehran Times", "Gulf Ledger", "Trend", prior=PriorSend(2, ("Trend", "Tehran Times"))),
        cand(4, "Trend", "Trend", prior=PriorSend(1, ("Trend",))),  # more reports, same outlet: not grown
    ], NOW)
    assert [(i.cluster_id, i.kind) for i in plan.items] == [(3, "updated"), (1, "new")]
    assert plan.items[0].new_outlets == ("Gulf Ledger",)
    assert (plan.new, plan.updated) == (1, 1)


def test_max_age_skips_clusters_whose_newest_report_is_older():
    old = cand(1, "Trend", start=NOW - timedelta(days=20))
    fresh = cand(2, "Trend", start=NOW - timedelta(days=2))
    plan = select_items(TOPIC, [old, fresh], NOW, max_age=7 * 86400)
    assert [i.cluster_id for i in plan.items] == [2]
    assert len(select_items(TOPIC, [old, fresh], NOW).items) == 2  # no max_age: backfills are news too


def test_min_outlets_applies_again_at_digest_time():
    topic = TopicSettings(name="t", query="x", min_outlets=3, recipients=("a@example.org",))
    plan = select_items(topic, [cand(1, "A", "B"), cand(2, "A", "B", "C")], NOW)
    assert [i.cluster_id for i in plan.items] == [2]


def test_an_empty_plan_is_false():
    assert not select_items(TOPIC, [], NOW)


def test_items_rank_by_outlets_then_recency_and_cap_with_more():
    cands = [cand(i, *[f"O{k}" for k in range(1 + i % 4)], start=T0 + timedelta(minutes=i)) for i in range(5000)]
    plan = select_items(TOPIC, cands, NOW, max_items=50)
    assert len(plan.items) == 50 and len(plan.unlisted) == 4950
    assert all(len(i.outlets) == 4 for i in plan.items)
    assert plan.items[0].cluster_id == 4999  # most outlets, most recent
    msg = render(plan, sender=SENDER, recipients=TOPIC.recipients, message_id="<x@example.org>", now=NOW)
    text, html = parts(msg)
    assert "+4950 more events" in text and "+4950 more events" in html
    assert text.count("\n1. ") == 1 and "\n50. " in text and "\n51. " not in text
    assert msg["Subject"] == "Platform regulation: 5000 new events"
    assert len(html.encode()) < 100_000  # Gmail clips an HTML body over 102 KB


# -- the spread of an event -----------------------------------------------------------------------


def test_spread_counts_new_outlets_per_hour_then_per_day():
    rs = reports("A", "B", "A", "C", start=T0, step=timedelta(minutes=40))  # 9:10, 9:50, 10:30, 11:10
    s = spread(rs)
    assert s.unit == "hour" and s.start == utc(2016, 11, 16, 9) and s.counts == (2, 0, 1)
    long = spread(reports("A", "B", "C", start=T0, step=timedelta(days=2)))
    assert long.unit == "day" and long.counts == (1, 0, 1, 0, 1)
    very_long = spread(reports("A", "B", start=T0, step=timedelta(days=100)))
    assert very_long.unit == "5 days" and len(very_long.counts) <= 25


def test_sparkline_and_bars():
    assert sparkline([1, 0, 4, 2]) == "▂·█▄"
    assert sparkline([3]) == "█"
    assert bars([1, 0, 0, 0, 4]) == [(5, 1), (0, 3), (20, 1)]


# -- rendering -----------------------------------------------------------------------------------


def parts(msg) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def parsed(msg):
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_render_multipart_alternative_with_headers():
    plan = select_items(TOPIC, [cand(1, "Trend", "Tehran Times", headline="Iran arrests 100 hackers"),
                                cand(2, "A", "B", "C", prior=PriorSend(1, ("A",)))], NOW)
    mid = make_message_id(TOPIC.name, SENDER, "abc123")
    msg = parsed(render(plan, sender=SENDER, recipients=TOPIC.recipients, message_id=mid, now=NOW))
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Message-ID"] == "<digest-platform-regulation-abc123@example.org>"
    assert msg["List-Id"] == "Platform regulation <platform-regulation.example.org>"
    assert msg["From"] == SENDER and msg["To"] == "desk@example.org, chief@example.org"
    assert msg["Date"] == "Fri, 18 Nov 2016 07:00:00 +0000"
    assert msg["Subject"] == "Platform regulation: 1 new event, 1 updated"
    assert msg["Auto-Submitted"] == "auto-generated"
    text, html = parts(msg)
    for part in (text, html):
        assert "Iran arrests 100 hackers" in part and "Tehran Times" in part and "https://news.example/1" in part
        assert "telegram" in part and "16 Nov 2016 09:10" in part
        assert "new outlets B, C" in part
    assert "Spread: █" in text  # one new outlet per hour: full bars
    assert "<img" not in html and "src=" not in html


def test_message_id_is_made_once_and_kept():
    a = make_message_id("t", "monitor@example.org")
    assert a != make_message_id("t", "monitor@example.org")  # a new digest, a new id
    plan = select_items(TOPIC, [cand(1, "Trend")], NOW)
    one = render(plan, sender=SENDER, recipients=["a@example.org"], message_id=a, now=NOW)
    two = render(plan, sender=SENDER, recipients=["a@example.org"], message_id=a, now=NOW + timedelta(hours=1))
    assert parsed(one)["Message-ID"] == parsed(two)["Message-ID"] == a
    assert make_message_id("t", "no-domain").endswith("@monitor.localhost>")
    assert re.fullmatch(r"<digest-t-1@[a-z0-9.-]+>", make_message_id("t", "x@bad domain\r\n", "1"))
    assert make_message_id("t", "x@exa mple.org\r\nBcc: y@z", "1\r\n").count("\n") == 0


def test_subject_is_capped_and_single_line():
    long = TopicSettings(name="t", query="x", title="Regulation\r\nBcc: evil@example.org " + "x" * 5000,
                         recipients=("a@example.org",))
    plan = select_items(long, [cand(1, "Trend"), cand(2, "B", prior=PriorSend(0, ()))], NOW)
    s = subject(plan)
    assert len(s) <= 150 and "\n" not in s and "\r" not in s and s.endswith("…: 1 new event, 1 updated")
    msg = parsed(render(plan, sender=SENDER, recipients=["a@example.org"], message_id="<m@example.org>", now=NOW))
    assert msg["Bcc"] is None and "Bcc" not in msg.keys()
    assert len(msg["List-Id"]) < 200


CARRIED = T0 + timedelta(hours=3)  # when the digest that last carried the incident below was made
TRIAL = Report("Valley News 8", "https://news.example/t", "Trial opens for Dorian Kessler in Melendez "
               "killing", T0 + timedelta(days=261, hours=2), follow_up=True,
               joined=T0 + timedelta(days=261, hours=3))
CHARGED = Report("Valley News 8", "https://news.example/c", "Dorian Kessler charged in Melendez killing",
                 T0 + timedelta(days=40), follow_up=True, joined=CARRIED - timedelta(days=1))


def incident(*extra: Report, carried: datetime | None = CARRIED) -> Candidate:
    """A station's report of a shooting, carried before, with its later reports."""
    return Candidate(1, "Man shot dead outside Copper Kettle bar", (*reports("Valley News 8"), *extra),
                     ("shot",), PriorSend(1, ("Valley News 8",), carried))


def test_a_follow_up_that_joined_after_the_last_carry_brings_the_cluster_back_once():
    """A same-outlet follow-up adds no outlet and is news: "updated" with its headline, until a digest
    made after it joined has carried it."""
    [item] = select_items(TOPIC, [incident(CHARGED, TRIAL)], NOW).items
    assert (item.cluster_id, item.kind, item.new_outlets) == (1, "updated", ())
    assert item.headline == "Man shot dead outside Copper Kettle bar"  # the cluster's own headline stays
    # the latest follow-up, counted from the report before it: the charge, published on day 40
    assert (item.follow_up.headline, item.follow_up.days) == (TRIAL.title, 221)

    # once a digest made after it joined has carried it, the same follow-up does not bring the cluster back
    after = TRIAL.joined + timedelta(seconds=1)
    assert not select_items(TOPIC, [incident(CHARGED, TRIAL, carried=after)], NOW)
    assert not select_items(TOPIC, [incident(CHARGED, TRIAL, carried=TRIAL.joined)], NOW)  # same second: seen
    assert not select_items(TOPIC, [incident(CHARGED)], NOW)  # joined before the last carry
    assert not select_items(TOPIC, [incident(replace(TRIAL, follow_up=False))], NOW)  # a same-outlet report
    # never carried: a new item, showing its latest follow-up, 261 days after the only report before it
    [new] = select_items(TOPIC, [replace(incident(TRIAL), prior=None)], NOW).items
    assert new.kind == "new" and (new.follow_up.headline, new.follow_up.days) == (TRIAL.title, 261)


def test_a_follow_up_is_shown_under_the_headline_in_both_parts():
    text, html = parts(render(select_items(TOPIC, [incident(TRIAL)], NOW), sender=SENDER,
                              recipients=["a@example.org"], message_id="<m@example.org>", now=NOW))
    lines = text.splitlines()
    assert lines[lines.index("1. Man shot dead outside Copper Kettle bar") + 1] == (
        "   Follow-up, 261 days later: Trial opens for Dorian Kessler in Melendez killing")
    assert "<b>Follow-up, 261 days later:</b> Trial opens for Dorian Kessler in Melendez killing" in html
    assert "Updated: new outlets" not in text and "<b>Updated:</b>" not in html  # no outlet to name


LEAD = ('Jacob Melendez, 27, was shot outside the Copper Kettle bar late on Sunday. Police said the suspect '
        'fled in a "grey" pickup & has not been found.')


def test_the_lead_is_under_the_headline_and_an_update_still_says_what_is_new():
    """Headline, then the event's lead, then what is new (the follow-up's headline, the new outlets), in
    both parts; an item without a lead has no line for it."""
    wire = Report("Continental Wire", "https://news.example/w", "One dead in Alderbrook bar shooting",
                  T0 + timedelta(hours=1))
    plan = select_items(TOPIC, [incident(TRIAL, wire), cand(2, "Trend", "Tehran Times")], NOW)
    assert [(i.cluster_id, i.kind) for i in plan.items] == [(1, "updated"), (2, "new")]
    text, html = parts(render(with_leads(plan, {1: LEAD, 2: None}), sender=SENDER,
                              recipients=["a@example.org"], message_id="<m@example.org>", now=NOW))
    lines = text.splitlines()
    at = lines.index("2. Man shot dead outside Copper Kettle bar")
    assert lines[at + 1:at + 4] == [
        f"   {LEAD}",
        "   Follow-up, 261 days later: Trial opens for Dorian Kessler in Melendez killing",
        "   Updated: new outlets Continental Wire"]
    other = lines.index("1. Event 2")
    assert lines[other + 1].startswith("   2 outlets, 2 reports")  # no lead: no line, no "None"
    assert "None" not in text and "None" not in html

    escaped = ("Jacob Melendez, 27, was shot outside the Copper Kettle bar late on Sunday. Police said the "
               "suspect fled in a &#34;grey&#34; pickup &amp; has not been found.")
    assert html.count(escaped) == 1 and '"grey"' not in html
    headline = html.index("2. Man shot dead outside Copper Kettle bar</div>")
    lead = html.index(escaped)
    follow_up = html.index("<b>Follow-up, 261 days later:</b> Trial opens for Dorian Kessler in Melendez")
    assert headline < lead < follow_up < html.index("<b>Updated:</b> new outlets Continental Wire")
    assert html[headline:lead].count("<div") == 1  # the lead's own block, right under the headline


HOSTILE = [
    Report("Evil\r\nBcc: victim@example.org", "javascript:alert(1)", "t", T0),
    Report("Tab <b>Outlet</b>", "jav\tascript:alert(2)", "t", T0 + timedelta(minutes=1)),
    Report("Entity", "jav&#x09;ascript:alert(3)", "t", T0 + timedelta(minutes=2)),
    Report("Data", "data:text/html;base64,PHNjcmlwdD4=", "t", T0 + timedelta(minutes=3)),
    Report("Quote", 'https://ok.example/a"onmouseover="alert(4)', "t", T0 + timedelta(minutes=4)),
    Report("Fine", "https://fine.example/story?a=1&b=2", "t", T0 + timedelta(minutes=5)),
]


def test_feed_text_is_escaped_and_only_http_links_survive():
    c = Candidate(cluster_id=7, headline='<script>alert("x")</script><img src=x onerror=alert(1)>\r\nBcc: a@b.c',
                  reports=tuple(HOSTILE), terms=("<b>ban</b>",))
    lead = '<script>alert("lead")</script> & <b>lead</b>\r\nBcc: lead@b.c'
    msg = parsed(render(with_leads(select_items(TOPIC, [c], NOW), {7: lead}), sender=SENDER,
                        recipients=["a@example.org"], message_id="<m@example.org>", now=NOW))
    assert msg["Bcc"] is None
    text, html = parts(msg)
    assert "<script" not in html and "<img" not in html and "<b>ban" not in html and "<b>Outlet" not in html
    assert "&lt;b&gt;ban&lt;/b&gt;" in html and "Tab &lt;b&gt;Outlet&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html and "onerror=alert(1)&gt;" in html  # shown as text, inert
    assert "&lt;script&gt;alert(&#34;lead&#34;)&lt;/script&gt; &amp; &lt;b&gt;lead&lt;/b&gt; Bcc: lead@b.c" \
        in html  # the lead too
    assert "javascript" not in html.lower() and "data:" not in html
    assert 'href="https://fine.example/story?a=1&amp;b=2"' in html
    assert 'href="https://ok.example/a&#34;onmouseover=&#34;alert(4)"' in html  # the quote cannot end the attribute
    hrefs = [h.split('"')[0] for h in html.split('href="')[1:]]
    assert all(h.startswith("https://") for h in hrefs) and len(hrefs) == 2
    assert "javascript" not in text.lower() and "data:text" not in text
    assert '   <script>alert("lead")</script> & <b>lead</b> Bcc: lead@b.c\n' in text  # one line: no header
    assert "- Evil Bcc: victim@example.org\n" in text  # a title's line break becomes a space


def test_huge_titles_are_capped():
    c = cand(1, "Trend", headline="Telegram " + "x" * 5000)
    text, html = parts(render(select_items(TOPIC, [c], NOW), sender=SENDER, recipients=["a@example.org"],
                              message_id="<m@example.org>", now=NOW))
    assert "x" * 300 not in text and "x" * 280 in text and "x" * 300 not in html


def test_times_are_shown_in_the_digest_time_zone():
    plan = select_items(TOPIC, [cand(1, "Trend")], NOW)
    text, _ = parts(render(plan, sender=SENDER, recipients=["a@example.org"], message_id="<m@example.org>",
                           now=NOW, tz="Asia/Tehran"))
    assert "16 Nov 2016 12:40" in text and "Times are Asia/Tehran" in text


# -- golden files: the layout an analyst sees ------------------------------------------------------

GOLDEN = DATA


def golden_plan():
    outlets = ["Continental Wire", "Trend", "Tehran Times", "Gulf Ledger", "Levant Post", "Northern Tribune",
               "Quickread", "Silk Road Times", "Caspian Daily"]
    iran = Candidate(
        1, "Iran arrests at least 100 hackers in a month, most active on Telegram",
        tuple(Report(o, f"https://{o.split()[0].lower()}.example/a/{k}", "t", T0 + timedelta(minutes=47 * k))
              for k, o in enumerate(outlets)),
        ("arrests", "telegram", "blocked", "messaging app"))
    linkedin = Candidate(
        2, "Moscow court upholds ruling against LinkedIn over data law",
        (Report("Continental Wire", "https://continentalwire.example/x", "t", T0 - timedelta(days=3)),
         Report("Trend", None, "t", T0 - timedelta(days=1)),
         Report("Northern Tribune", "https://northerntribune.example/y", "t", T0)),
        ("court", "linkedin", "law"), PriorSend(1, ("Continental Wire",)))
    return with_leads(select_items(TOPIC, [iran, linkedin], NOW), {
        1: "Police in Tehran say they held about a hundred people accused of hacking over four weeks, most of "
           "them on Telegram. Twenty chat groups were closed as well.",
        2: "A Moscow court has upheld a ruling that LinkedIn broke a law requiring that data on Russian users be "
           "kept in Russia."})


@pytest.mark.parametrize("kind", ["plain", "html"])
def test_golden_digest(kind):
    """The rendered digest is byte for byte the reviewed file.

    After an intended layout change, MONITOR_UPDATE_GOLDEN=1 rewrites a file that differs, and the
    test still fails for that run: the new file must be reviewed (git diff) and the test run again
    without the variable. Rewriting never turns a run green, so setting the variable in CI cannot
    hide a change."""
    msg = render(golden_plan(), sender=SENDER, recipients=["desk@example.org"], message_id="<golden@example.org>",
                 now=NOW, tz="Europe/London")
    got = msg.get_body((kind,)).get_content()
    path = GOLDEN / f"digest_golden.{'txt' if kind == 'plain' else 'html'}"
    expected = path.read_text(encoding="utf-8") if path.exists() else None
    if got != expected and os.environ.get("MONITOR_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
        pytest.fail(f"{path} rewritten from the current output: review it (git diff), then run again without "
                    "MONITOR_UPDATE_GOLDEN", pytrace=False)
    assert expected is not None, f"{path} is missing: run once with MONITOR_UPDATE_GOLDEN=1 and review it"
    assert got == expected


def test_big_clusters_list_the_first_outlets_with_links_and_name_the_rest():
    c = cand(1, *[f"Outlet {k:02d}" for k in range(20)])
    text, html = parts(render(select_items(TOPIC, [c], NOW), sender=SENDER, recipients=["a@example.org"],
                              message_id="<m@example.org>", now=NOW))
    assert "- Outlet 14: https://news.example/14" in text and "https://news.example/15" not in text
    assert "and 5 more: Outlet 15, Outlet 16, Outlet 17, Outlet 18, Outlet 19" in text
    assert html.count("<a href=") == 15 and "and 5 more: Outlet 15" in html
