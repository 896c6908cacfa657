"""Chat and webhook digests from the command line: loopback feeds -> poll -> topic match -> a real
HTTP server on 127.0.0.1 taking Apprise json:// posts, beside mail to a real SMTP server.

What an operator and a script see: the chat text in `digest preview`, each destination's deliveries
in `topics list`, chat counts in `status`, and never a destination's token; bad destinations are
configuration errors (exit 78) naming the topic.
"""
from __future__ import annotations

import json
import logging

import pytest
from pytest_httpserver import HTTPServer

from tests.support.corpus import CORPUS, outlet_feed  # the Telegram/Iran slice of the dev corpus
from tests.support.loopback import LoopbackServer, feed_route
from tests.support.smtpserver import SmtpServer

SECRET, TOKEN = "s3cretpass", "t0kenvalue"


def topic(notify: str, recipients: str = '"desk@example.org"') -> str:
    return f'''
[[topics]]
name = "platform-regulation"
title = "Platform regulation"
query = '(telegram OR whatsapp OR "social media") AND (ban* OR block* OR censor* OR arrest* OR remove*)'
recipients = [{recipients}]
schedule = "immediate"
{notify}
'''


@pytest.fixture
def world(run, httpserver: HTTPServer):
    feeds = LoopbackServer()
    smtp = SmtpServer()
    outlets = sorted({a["outlet"] for a in CORPUS})
    for i, outlet in enumerate(outlets):
        feeds.routes[f"/{i}.xml"] = feed_route(outlet_feed(outlet, [a for a in CORPUS if a["outlet"] == outlet]))
    run.hook = f"json://desk:{SECRET}@127.0.0.1:{httpserver.port}/hook/{TOKEN}"
    run.base = (f'[polling]\nallow_hosts = ["127.0.0.1:{feeds.port}"]\nparse_workers = 1\n'
                f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nfrom = "monitor@example.org"\n')
    run.config.write_text(run.base + topic(f'notify = ["{run.hook}"]'))
    for i in range(len(outlets)):
        run("feeds", "add", feeds.url(f"/{i}.xml"))
    run.smtp = smtp
    yield run
    feeds.close()
    smtp.stop()


def posted(server: HTTPServer) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in server.log]


def test_preview_send_topics_and_status_show_chat_but_never_its_token(world, httpserver, caplog):
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(f"/hook/{TOKEN}", method="POST").respond_with_data("ok")
    world("poll")
    shown = f"json://127.0.0.1:{httpserver.port}"

    preview = world("digest", "preview").stdout
    assert f"Chat: {shown}" in preview and "Subject: Platform regulation" in preview
    drafts = world.json("digest", "preview")
    [chat] = drafts["chat"]
    [mail] = drafts["drafts"]
    assert chat["destination"] == shown and chat["title"].startswith("Platform regulation: ")
    assert {i["cluster_id"] for i in chat["items"]} == {i["cluster_id"] for i in mail["items"]}
    assert all(f"• {i['headline']}" in chat["text"] for i in chat["items"])  # one line per event
    assert posted(httpserver) == []  # preview sends nothing

    sent = world.json("digest", "send")
    assert sent["queued"] == 2 and sent["sent"] == 2
    assert sorted(o["channel"] for o in sent["outcomes"]) == ["chat", "mail"]
    [payload] = posted(httpserver)
    assert payload["title"] == chat["title"] and payload["message"] == chat["text"]
    assert len(world.smtp.handler.messages) == 1

    [t] = world.json("topics", "list")
    mail_way, chat_way = t["deliveries"]
    assert (mail_way["channel"], mail_way["destination"], mail_way["sent"]) == ("mail", "1 recipient", 1)
    assert (chat_way["channel"], chat_way["destination"], chat_way["sent"], chat_way["failed"]) == (
        "chat", shown, 1, 0)
    assert chat_way["last_sent"] is not None
    listing = world("topics", "list").stdout
    assert f"platform-regulation -> {shown}: last sent" in listing

    everything = [preview, json.dumps(drafts), json.dumps(sent), listing, json.dumps(t),
                  world("status").stdout, world("status", "--json").stdout,
                  # what monitor and the libraries it sends through logged (the test servers log apart)
                  *(r.getMessage() for r in caplog.records if not r.name.startswith(("werkzeug", "mail.log"))),
                  (world.workdir / "monitor.db").read_bytes().decode("latin-1")]
    for text in everything:
        assert SECRET not in text and TOKEN not in text


def test_chat_failures_are_counted_in_status_and_topics_list(world, httpserver):
    httpserver.expect_request(f"/hook/{TOKEN}", method="POST").respond_with_data("gone", status=410)
    world("poll")
    sent = world.json("digest", "send")
    chat = next(o for o in sent["outcomes"] if o["channel"] == "chat")
    assert chat["status"] == "failed" and "410" in chat["error"]
    assert world.json("status")["outbox"]["chat_failed"] == 1
    assert "(chat: 0 pending, 1 failed)" in world("status").stdout
    [t] = world.json("topics", "list")
    chat_way = t["deliveries"][1]
    assert chat_way["failed"] == 1 and "410" in chat_way["last_error"]


@pytest.mark.parametrize("notify, reason", [
    ('notify = ["nosuchservice://host/token"]', "nosuchservice"),
    ('notify = ["not a url"]', ""),
    ('notify = "json://one.example/hook"', "list of Apprise URLs"),
])
def test_a_bad_destination_is_a_configuration_error_naming_the_topic(world, notify, reason):
    world.config.write_text(world.base + topic(notify))
    result = world("digest", "send", ok=False)
    assert result.exit_code == 78
    assert "topics.platform-regulation.notify" in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr and "token" not in result.stderr


def test_notify_file_relative_to_the_config_and_with_credentials_directory(world, httpserver, monkeypatch):
    httpserver.expect_request(f"/hook/{TOKEN}", method="POST").respond_with_data("ok")
    (world.workdir / "chat-urls").write_text(f"# desk chat\n\n{world.hook}\n")
    world.config.write_text(world.base + topic('notify_file = "chat-urls"', recipients=""))
    world("poll")
    assert world.json("digest", "send")["sent"] == 1 and len(posted(httpserver)) == 1

    creds = world.workdir / "creds"
    creds.mkdir()
    (creds / "desk-chat").write_text(world.hook + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    world.config.write_text(world.base + topic('notify_file = "${CREDENTIALS_DIRECTORY}/desk-chat"',
                                               recipients=""))
    [t] = world.json("topics", "list")
    assert [d["destination"] for d in t["deliveries"]] == [f"json://127.0.0.1:{httpserver.port}"]


def test_a_missing_notify_file_exits_78_without_reading_anything(world):
    world.config.write_text(world.base + topic('notify_file = "missing-urls"'))
    result = world("status", ok=False)
    assert result.exit_code == 78
    assert "topics.platform-regulation.notify_file" in result.stderr and "missing-urls" in result.stderr
