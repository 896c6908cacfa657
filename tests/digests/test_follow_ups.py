"""Follow-ups in digests end to end: loopback feeds -> poll -> clustering -> digest -> a real SMTP server.

A local station reports a shooting; weeks later the same station reports the suspect charged.
That report adds no outlet, and is the news: the digest brings the incident back as updated,
with the follow-up's headline, once.
"""
from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage

import pytest

from monitor.config import PollingSettings, Settings, SmtpSettings, TopicSettings
from monitor.core import Monitor
from monitor.storage.database import open_store
from tests.support.loopback import LoopbackServer, feed_route, rss
from tests.support.smtpserver import SmtpServer

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
LATER = T0 + timedelta(days=35)  # five weeks: far past the 7-day clustering window
STATION, WIRE = "Valley News 8", "Continental Wire"
TOPIC = TopicSettings(name="crime", query="shooting OR shot OR murder OR fire", title="Crime desk",
                      recipients=("desk@example.org",), schedule="immediate")

SHOOTING = "Man shot dead outside Copper Kettle bar in Alderbrook"
CHARGED = "Dorian Kessler charged with murder in death of Jacob Melendez"
FIRE = "Warehouse fire in Brackton injures two firefighters"


def item(n: int, title: str, summary: str, published: datetime) -> dict:
    return {"title": title, "summary": summary, "published": published, "guid": f"story-{n}",
            "link": f"https://news.example/{n}"}


# The incident, from the station and a wire, among the day's other news.
STATION_DAY0 = [
    item(1, SHOOTING,
         "Jacob Melendez, 27, was shot outside the Copper Kettle bar on Wrenfield Avenue in Alderbrook late "
         "Sunday. Police said the suspect, Dorian Kessler, 31, fled in a grey pickup. Melendez died at Saint "
         "Anselm hospital.", T0 - timedelta(hours=5)),
    item(2, "City council approves money for road repairs",
         "The council voted 5-2 on Monday to spend more on road repairs across the city, after a winter of "
         "potholes. Work starts in April.", T0 - timedelta(hours=4)),
]
WIRE_DAY0 = [
    item(11, "One dead in Alderbrook bar shooting; police name suspect",
         "A man was killed in a shooting outside a bar in Alderbrook on Sunday night. Police identified him "
         "as Jacob Melendez and said they are looking for Dorian Kessler, who drove away from the Copper "
         "Kettle before officers arrived.", T0 - timedelta(hours=3)),
    item(12, "School board delays vote on new calendar",
         "The school board put off a vote on next year's calendar after parents asked for a longer winter "
         "break.", T0 - timedelta(hours=2)),
]
# Five weeks later, the station's own report: other words, the same two people.
STATION_CHARGED = item(
    3, CHARGED, "Prosecutors on Thursday charged Dorian Kessler with second-degree murder in the killing of "
    "Jacob Melendez. Kessler was arrested in Marlow County on Tuesday after a month on the run. He is held "
    "without bail.", LATER - timedelta(hours=2))
WIRE_FIRE = item(
    13, FIRE, "Two firefighters were hurt on Friday as a fire tore through a warehouse on the edge of "
    "Brackton. The cause is not yet known.", LATER + timedelta(hours=20))


@dataclass
class Desk:
    """The monitor on a clock the test moves, its two feeds on loopback, and the mail server."""

    monitor: Monitor
    feeds: LoopbackServer
    smtp: SmtpServer
    now: datetime

    def publish(self, station: list[dict], wire: list[dict]) -> None:
        self.feeds.routes["/station.xml"] = feed_route(rss(station, title=STATION))
        self.feeds.routes["/wire.xml"] = feed_route(rss(wire, title=WIRE))

    def cycle(self, at: datetime) -> list[int]:
        """Poll every feed, then queue and send the due digests, as the daemon does at `at`."""
        self.now = at
        self.monitor.poll(all_feeds=True)
        created, report = self.monitor.send_digests()
        assert report.count("sent") == len(created)
        return created

    def mail(self, n: int) -> tuple[str, str, EmailMessage]:
        msg = email.message_from_bytes(self.smtp.handler.messages[n][2], policy=policy.default)
        return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content(), msg


@pytest.fixture
def desk(tmp_path) -> Iterator[Desk]:
    feeds, smtp = LoopbackServer(), SmtpServer()
    settings = Settings(database=str(tmp_path / "monitor.db"), topics=(TOPIC,),
                        polling=PollingSettings(allow_hosts=(f"127.0.0.1:{feeds.port}",), parse_workers=1),
                        smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, timeout=10,
                                          sender="monitor@example.org"))
    d = Desk(Monitor(settings, open_store(settings.database)), feeds, smtp, T0)
    d.monitor.clock = lambda: d.now
    d.monitor.add_feed(feeds.url("/station.xml"))
    d.monitor.add_feed(feeds.url("/wire.xml"))
    yield d
    d.monitor.close()
    feeds.close()
    smtp.stop()


def test_a_same_outlet_follow_up_brings_the_incident_back_once_with_its_headline(desk):
    desk.publish(STATION_DAY0, WIRE_DAY0)
    assert len(desk.cycle(T0)) == 1
    text, _, _ = desk.mail(0)
    assert text.count(SHOOTING) == 1 and "Follow-up" not in text and "2 outlets, 2 reports" in text
    lines = text.splitlines()
    lead = lines[lines.index(f"1. {SHOOTING}") + 1]  # what happened, from a report of the night
    assert lead.startswith(("   Jacob Melendez, 27, was shot", "   A man was killed in a shooting"))

    desk.publish([*STATION_DAY0, STATION_CHARGED], [])  # the station's feed keeps its older stories
    [second] = desk.cycle(LATER)
    [incident] = [c for c in desk.monitor.clusters(since="all") if c.title == SHOOTING]
    # the premise: the clustering linked the report to the incident, as a follow-up
    assert desk.monitor.store.db.execute(
        "SELECT m.cluster_id, m.reason FROM memberships m JOIN entries e ON e.id = m.entry_id"
        " WHERE e.title = ?", [CHARGED]).fetchall() == [(incident.id, "follow-up")]
    text, html, msg = desk.mail(1)
    assert msg["Subject"] == "Crime desk: 1 updated"
    # 35 days after the wire's report of the night, the last report before it
    line = f"Follow-up, 35 days later: {CHARGED}"
    lines = text.splitlines()
    # under the headline the event's lead, the same as in the first digest (not the charge's text),
    # then what is new
    assert text.count(SHOOTING) == 1 and lines[lines.index(f"1. {SHOOTING}") + 1] == lead
    assert lines[lines.index(f"1. {SHOOTING}") + 2] == f"   {line}" and "Prosecutors" not in text
    assert "Follow-up, 35 days later:</b> " + CHARGED in html and html.count(SHOOTING) == 1
    assert "2 outlets, 3 reports" in text and "Updated: new outlets" not in text  # no outlet was added
    assert desk.monitor.store.db.execute("SELECT cluster_id, kind FROM digest_items WHERE digest_id = ?",
                                         [second]).fetchall() == [(incident.id, "updated")]

    desk.publish([*STATION_DAY0, STATION_CHARGED], [WIRE_FIRE])  # the next digest has other news
    assert len(desk.cycle(LATER + timedelta(days=1))) == 1
    text, html, msg = desk.mail(2)
    assert msg["Subject"] == "Crime desk: 1 new event" and FIRE in text
    for part in (text, html):
        assert SHOOTING not in part and CHARGED not in part  # the same follow-up never twice
    assert len(desk.smtp.handler.messages) == 3


def test_a_recluster_does_not_bring_a_carried_follow_up_back(desk):
    """`recluster` re-decides every membership; one that stays in its cluster keeps when it joined,
    so a follow-up a digest already carried is not news again afterwards."""
    desk.publish(STATION_DAY0, WIRE_DAY0)
    desk.cycle(T0)
    desk.publish([*STATION_DAY0, STATION_CHARGED], [])
    desk.cycle(LATER)
    assert "Follow-up, 35 days later" in desk.mail(1)[0]

    desk.now = LATER + timedelta(hours=12)
    desk.monitor.recluster("all")
    desk.publish([*STATION_DAY0, STATION_CHARGED], [WIRE_FIRE])
    assert len(desk.cycle(LATER + timedelta(days=1))) == 1
    text, html, _ = desk.mail(2)
    assert FIRE in text
    for part in (text, html):
        assert SHOOTING not in part and CHARGED not in part


def test_a_follow_up_headline_is_shown_without_its_feeds_title_furniture(desk):
    """The station writes a slogan after every title; the digest shows the follow-up's headline
    as cluster headlines are shown, without it (the stored title keeps it)."""
    slogan = " - Valley News 8 - Alderbrook's News Leader"

    def branded(story: dict) -> dict:
        return {**story, "title": story["title"] + slogan}

    station_day0 = [branded(s) for s in STATION_DAY0]
    desk.publish(station_day0, WIRE_DAY0)
    desk.cycle(T0)
    desk.publish([*station_day0, branded(STATION_CHARGED)], [])
    desk.cycle(LATER)
    text, html, _ = desk.mail(1)
    assert f"   Follow-up, 35 days later: {CHARGED}" in text.splitlines() and slogan not in text
    assert "Follow-up, 35 days later:</b> " + CHARGED + "<" in html and "News Leader" not in html
    assert desk.monitor.store.db.execute("SELECT count(*) FROM entries WHERE title = ?",
                                         [CHARGED + slogan]).fetchone() == (1,)
