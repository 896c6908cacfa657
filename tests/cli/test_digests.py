"""Topics and digests end to end: loopback feeds -> poll -> topic match -> digest to a real SMTP server."""
from __future__ import annotations

import email
import mailbox
from email import policy

import pytest
from markupsafe import escape

from tests.support.corpus import CORPUS, outlet_feed  # the Telegram/Iran slice of the dev corpus
from tests.support.loopback import LoopbackServer, feed_route
from tests.support.smtpserver import SmtpServer

TOPIC = '''
[[topics]]
name = "platform-regulation"
title = "Platform regulation"
query = '(telegram OR whatsapp OR "social media") AND (ban* OR block* OR censor* OR arrest* OR remove*)'
recipients = ["desk@example.org", "chief@example.org"]
schedule = "immediate"
'''


@pytest.fixture
def world(run):
    feeds = LoopbackServer()
    smtp = SmtpServer()
    outlets = sorted({a["outlet"] for a in CORPUS})
    # the first poll sees all but two outlets; they come later, so an event grows
    late = {"Gulf Ledger", "Levant Post"}
    for i, outlet in enumerate(outlets):
        arts = [a for a in CORPUS if a["outlet"] == outlet]
        feeds.routes[f"/{i}.xml"] = feed_route(outlet_feed(outlet, [] if outlet in late else arts))
    run.config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{feeds.port}"]\nparse_workers = 1\n'
                          f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nfrom = "monitor@example.org"\n' + TOPIC)
    for i in range(len(outlets)):
        run("feeds", "add", feeds.url(f"/{i}.xml"))

    def release_late() -> None:
        for i, outlet in enumerate(outlets):
            if outlet in late:
                feeds.routes[f"/{i}.xml"] = feed_route(outlet_feed(
                    outlet, [a for a in CORPUS if a["outlet"] == outlet]))

    run.release_late = release_late
    run.smtp = smtp
    yield run
    feeds.close()
    smtp.stop()


def test_one_item_per_event_then_only_growth(world):
    world("poll")
    topics = world.json("topics", "list")
    assert topics[0]["name"] == "platform-regulation" and topics[0]["matches"] >= 2
    matched = world.json("clusters", "list", "--since", "all", "--topic", "platform-regulation")
    assert matched and all("platform-regulation" in c["topics"] for c in matched)
    tested = world.json("topics", "test", "platform-regulation", "--since", "all")
    assert {t["cluster_id"] for t in tested} == {c["id"] for c in matched}
    assert all(t["terms"] for t in tested)
    preview = world("digest", "preview").stdout
    assert "Subject: Platform regulation" in preview
    [draft] = world.json("digest", "preview")["drafts"]
    leads = {i["cluster_id"]: i["lead"] for i in draft["items"]}
    assert set(leads) == {c["id"] for c in matched}
    assert all(leads.values())  # every event here has a report with text
    for item in draft["items"]:  # under its headline, in the preview's text and the --json field
        lines = draft["text"].splitlines()
        at = next(k for k, line in enumerate(lines) if line.endswith(f". {item['headline']}"))
        assert lines[at + 1] == f"   {item['lead']}"
        assert f"   {item['lead']}" in preview and len(item["lead"]) <= 300
        for furniture in ("<", "&", "appeared first on", "Continue reading", "Via "):
            assert furniture not in item["lead"]
    assert world.smtp.handler.messages == []  # preview sends nothing

    out = world("digest", "send").stdout
    assert "queued 1 digests; sent 1" in out
    msgs = world.smtp.handler.messages
    assert len(msgs) == 1 and sorted(msgs[0][1]) == ["chief@example.org", "desk@example.org"]
    msg = email.message_from_bytes(msgs[0][2], policy=policy.default)
    assert msg["List-Id"] and msg["Message-ID"] and msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for c in matched:  # one item per event cluster, not one per article, each with its lead
        assert text.count(c["title"]) == 1 and text.count(leads[c["id"]]) == 1
        assert html.count(str(escape(leads[c["id"]]))) == 1
    assert "<script" not in html.lower()
    assert "queued 0 digests; sent 0" in world("digest", "send").stdout  # nothing new: no mail
    assert len(world.smtp.handler.messages) == 1

    world.release_late()  # two more outlets report the same events
    world("poll", "--all")
    world("digest", "send")
    assert len(world.smtp.handler.messages) == 2
    second = email.message_from_bytes(world.smtp.handler.messages[1][2], policy=policy.default)
    body = second.get_body(("plain",)).get_content().lower()
    assert "updated" in body and ("gulf ledger" in body or "levant post" in body)
    assert second["Message-ID"] != msg["Message-ID"]
    status = world.json("status")
    assert status["outbox"]["sent"] == 2 and status["outbox"]["pending"] == 0


def test_outage_keeps_digest_and_retries_with_same_message_id(world):
    world.smtp.stop()  # the server is down
    world("poll")
    out = world("digest", "send").stdout
    assert "queued 1 digests; sent 0, deferred 1" in out
    assert world.json("status")["outbox"]["pending"] == 1
    preview = world.json("digest", "preview")
    assert preview["outbox"][0]["status"] == "pending" and preview["outbox"][0]["attempts"] == 1
    assert "sent 0" in world("digest", "send").stdout  # still down, and not yet due for a retry
    world.smtp.restart()
    from datetime import timedelta

    from monitor.core import open_monitor

    with open_monitor(str(world.config), str(world.db)) as mon:  # as the daemon would, once the backoff passed
        later = mon.clock() + timedelta(hours=1)
        mon.clock = lambda: later
        created, report = mon.send_digests()
    assert created == [] and report.count("sent") == 1
    assert len(world.smtp.handler.messages) == 1
    delivered = email.message_from_bytes(world.smtp.handler.messages[0][2], policy=policy.default)
    stored = world.json("status")["outbox"]
    assert stored["sent"] == 1 and stored["pending"] == 0
    import sqlite3

    message_id = sqlite3.connect(world.db).execute("SELECT message_id FROM digests").fetchone()[0]
    assert delivered["Message-ID"] == message_id


def test_bad_topic_query_is_rejected_at_start_with_its_name(run):
    run.config.write_text(TOPIC.replace("(telegram OR", "(telegram OR OR"))
    result = run("poll", ok=False)
    assert result.exit_code == 78
    assert "topics.platform-regulation.query" in result.stderr and "Traceback" not in result.stderr


def test_maildir_is_the_default_without_smtp(run, workdir):
    server = LoopbackServer()
    try:
        outlets = sorted({a["outlet"] for a in CORPUS})
        for i, outlet in enumerate(outlets):
            server.routes[f"/{i}.xml"] = feed_route(outlet_feed(outlet, [a for a in CORPUS if a["outlet"] == outlet]))
        run.config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\nparse_workers = 1\n' + TOPIC)
        for i in range(len(outlets)):
            run("feeds", "add", server.url(f"/{i}.xml"))
        run("poll")
        assert "sent 1" in run("digest", "send").stdout
        box = mailbox.Maildir(str(workdir / "maildir"), create=False)
        assert len(box) == 1
        assert next(iter(box))["Subject"].startswith("Platform regulation")
    finally:
        server.close()
