"""Chat and webhook digests through the outbox, end to end: real SQLite files, a real HTTP server on
127.0.0.1 taking Apprise's json:// deliveries, aiosmtpd for the mail beside them.

The promises are the mail outbox's: stored before any network I/O, marked sent only once the
service accepted it, retried on the documented schedule with the same text, failed for good on
a permanent refusal (and then the topic's next digest carries the events again to that
destination), and mail and chat succeed or fail independently.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from pytest_httpserver import HTTPServer

from monitor.config import DigestSettings, Settings, SmtpSettings, TopicSettings
from monitor.digests.chat import destination_key
from monitor.digests.mailer import SmtpTransport
from monitor.digests.notifier import AppriseTransport
from monitor.digests.outbox import create_digests, preview, send_pending
from monitor.digests.topics import match_clusters, topic_summaries
from monitor.storage.database import iso
from tests.support.smtpserver import free_port
from tests.support.world import World

NOW = datetime(2016, 11, 17, 12, 0, tzinfo=timezone.utc)
DESK = "desk@example.org"
# The retry schedule as the README documents it for mail and chat alike.
FIRST_RETRY = timedelta(minutes=1)


def hook(server: HTTPServer, path: str = "/hook") -> str:
    return f"json://127.0.0.1:{server.port}{path}"


def settings(world: World, url: str, *, recipients: tuple[str, ...] = (), port: int = 25,
             chat_max_items: int = 10) -> Settings:
    topic = TopicSettings(name="platform-regulation", query="telegram", title="Platform regulation",
                          recipients=recipients, schedule="immediate", notify=(url,))
    return Settings(database=world.store.path, topics=(topic,),
                    smtp=SmtpSettings(host="127.0.0.1", port=port, timeout=2, sender="monitor@example.org"),
                    digest=DigestSettings(chat_max_items=chat_max_items))


def event(world: World, *outlets: str, title: str = "Iran blocks Telegram") -> int:
    ids = [world.entry(o, title, "The messaging app was blocked.", published=NOW - timedelta(hours=i),
                       link=f"https://{o.lower().replace(' ', '')}.example/{i}") for i, o in enumerate(outlets)]
    cid = world.cluster(*ids, headline=title)
    with world.store.write():
        world.store.db.execute("UPDATE clusters SET last_published = ? WHERE id = ?", [iso(NOW), cid])
    return cid


def send(world: World, s: Settings, now: datetime, transport=None):
    destinations = {destination_key(u): u for t in s.topics for u in t.notify}
    return send_pending(world.store, transport or SmtpTransport(s.smtp), now, chat=AppriseTransport(timeout=5),
                        destinations=destinations)


def one_event_queued(world: World, server: HTTPServer, status: int) -> tuple[Settings, int, int]:
    """A webhook that answers its first post with `status`, and one event's chat digest queued for it:
    (settings, cluster id, digest id)."""
    server.expect_oneshot_request("/hook", method="POST").respond_with_data("", status=status)
    s = settings(world, hook(server))
    cid = event(world, "Trend")
    match_clusters(world.store, s.topics, [cid], NOW)
    [did] = create_digests(world.store, s, NOW)
    return s, cid, did


def posts(server: HTTPServer) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in server.log]


def chat_rows(world: World) -> list[dict]:
    return world.store.query("SELECT * FROM digests WHERE channel != 'mail' ORDER BY id")


def test_one_message_per_digest_recorded_before_sending_and_never_resent(world, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    s = settings(world, hook(httpserver))
    a, b = event(world, "Trend", "Tehran Times"), event(world, "Gulf Ledger", title="Telegram fined in Russia")
    match_clusters(world.store, s.topics, [a, b], NOW)

    [did] = create_digests(world.store, s, NOW)
    [stored] = chat_rows(world)
    assert stored["id"] == did and stored["status"] == "pending" and posts(httpserver) == []
    assert stored["channel"] == destination_key(hook(httpserver))
    assert json.loads(stored["recipients"]) == [f"json://127.0.0.1:{httpserver.port}"]  # no path, no token

    report = send(world, s, NOW)
    assert [(o.digest_id, o.status) for o in report.outcomes] == [(did, "sent")]
    [payload] = posts(httpserver)
    text = json.dumps(payload)
    assert "Platform regulation" in text and "Iran blocks Telegram" in text and "Telegram fined in Russia" in text
    assert "2 outlets" in text and "https://tehrantimes.example/1" in text  # the first report's link
    [stored] = chat_rows(world)
    assert stored["status"] == "sent" and stored["sent"] == iso(NOW) and stored["attempts"] == 1

    later = NOW + timedelta(hours=1)
    match_clusters(world.store, s.topics, [a, b], later)  # touched again, not grown
    assert create_digests(world.store, s, later) == []
    assert send(world, s, later).outcomes == ()
    assert len(posts(httpserver)) == 1


def test_a_server_error_is_retried_with_the_same_text(world, httpserver):
    s, _, _ = one_event_queued(world, httpserver, 500)
    [outcome] = send(world, s, NOW).outcomes
    assert outcome.status == "pending" and "500" in (outcome.error or "")
    [stored] = chat_rows(world)
    assert stored["attempts"] == 1 and stored["next_attempt"] == iso(NOW + FIRST_RETRY)
    assert send(world, s, NOW + FIRST_RETRY / 2).outcomes == ()  # not before its retry

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    [outcome] = send(world, s, NOW + FIRST_RETRY).outcomes
    assert outcome.status == "sent"
    first, second = posts(httpserver)
    assert first == second  # the stored text, byte for byte
    assert create_digests(world.store, s, NOW + FIRST_RETRY) == []


def test_a_permanent_refusal_fails_and_the_next_digest_carries_the_event_again(world, httpserver):
    s, cid, did = one_event_queued(world, httpserver, 404)
    [outcome] = send(world, s, NOW).outcomes
    assert outcome.status == "failed" and "404" in (outcome.error or "")
    assert chat_rows(world)[0]["status"] == "failed"

    later = NOW + timedelta(hours=1)
    [again] = create_digests(world.store, s, later)
    assert again != did
    carried = world.store.query("SELECT cluster_id FROM digest_items WHERE digest_id = ?", [again])
    assert [r["cluster_id"] for r in carried] == [cid]
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert [o.status for o in send(world, s, later).outcomes] == ["sent"]


def test_mail_and_chat_succeed_or_fail_independently(world, httpserver, smtp_server):
    """Chat down: mail goes out and is not sent again when chat recovers. Mail down (nothing
    listens on its port): chat goes out anyway."""
    server = smtp_server()
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("down", status=503)
    s = settings(world, hook(httpserver), recipients=(DESK,), port=server.port)
    cid = event(world, "Trend")
    match_clusters(world.store, s.topics, [cid], NOW)
    mail_id, chat_id = create_digests(world.store, s, NOW)
    statuses = {o.digest_id: o.status for o in send(world, s, NOW).outcomes}
    assert statuses == {mail_id: "sent", chat_id: "pending"} and len(server.handler.messages) == 1

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    statuses = {o.digest_id: o.status for o in send(world, s, NOW + FIRST_RETRY).outcomes}
    assert statuses == {chat_id: "sent"} and len(server.handler.messages) == 1

    # The mail server goes away; a grown event still reaches chat.
    dead = settings(world, hook(httpserver), recipients=(DESK,), port=free_port())
    later = NOW + timedelta(hours=2)
    world.join(cid, world.entry("Gulf Ledger", "Telegram still blocked", "", published=later))
    match_clusters(world.store, dead.topics, [cid], later)
    mail_2, chat_2 = create_digests(world.store, dead, later)
    statuses = {o.digest_id: o.status for o in send(world, dead, later, SmtpTransport(dead.smtp)).outcomes}
    assert statuses == {mail_2: "pending", chat_2: "sent"}
    assert "updated" in json.dumps(posts(httpserver)[-1])


def test_a_destination_taken_out_of_the_config_fails_its_waiting_digests(world, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("down", status=503)
    s = settings(world, hook(httpserver))
    cid = event(world, "Trend")
    match_clusters(world.store, s.topics, [cid], NOW)
    create_digests(world.store, s, NOW)
    assert [o.status for o in send(world, s, NOW).outcomes] == ["pending"]
    other = settings(world, hook(httpserver, "/other"))
    [outcome] = send(world, other, NOW + FIRST_RETRY).outcomes
    assert outcome.status == "failed" and "no longer configured" in (outcome.error or "")


def test_chat_items_stop_at_chat_max_items_with_the_rest_counted(world, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    s = settings(world, hook(httpserver), chat_max_items=2)
    ids = [event(world, "Trend", title=f"Telegram blocked in region {n}") for n in range(5)]
    match_clusters(world.store, s.topics, ids, NOW)
    [draft] = preview(world.store, s, NOW)
    assert len(draft.plan.items) == 2 and "+3 more" in draft.message.body
    create_digests(world.store, s, NOW)
    send(world, s, NOW)
    text = json.dumps(posts(httpserver)[0])
    assert "+3 more" in text and sum(f"region {n}" in text for n in range(5)) == 2
    # all five are carried: none comes back in the next digest
    assert create_digests(world.store, s, NOW + timedelta(hours=1)) == []


def test_topic_summaries_show_each_destination_by_scheme_and_host_with_its_deliveries(world, httpserver):
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    url = f"json://user:s3cret@127.0.0.1:{httpserver.port}/hook?token=t0ken"
    s = settings(world, url)
    cid = event(world, "Trend")
    match_clusters(world.store, s.topics, [cid], NOW)
    create_digests(world.store, s, NOW)
    send(world, s, NOW)
    [summary] = topic_summaries(world.store, s.topics)
    [d] = summary.deliveries
    assert (d.channel, d.destination, d.sent, d.pending, d.failed) == (
        "chat", f"json://127.0.0.1:{httpserver.port}", 1, 0, 0)
    assert d.last_sent == NOW
    stored = json.dumps(world.store.query("SELECT * FROM digests"), default=str)
    assert "s3cret" not in stored and "t0ken" not in stored


def test_a_destination_that_does_not_answer_costs_one_deadline_per_run(world, silent_server, smtp_server):
    """Two topics post to one webhook that accepts connections and never answers: the first digest is
    deferred when the transport's deadline passes, the second waits for the next run untried, and
    the mail, sent first, is not held by either."""
    server = smtp_server()
    url = f"json://127.0.0.1:{silent_server}/hook"
    topics = tuple(TopicSettings(name=n, query="telegram", title=n, recipients=(DESK,), schedule="immediate",
                                 notify=(url,)) for n in ("first", "second"))
    s = Settings(database=world.store.path, topics=topics,
                 smtp=SmtpSettings(host="127.0.0.1", port=server.port, timeout=2, sender="monitor@example.org"))
    cid = event(world, "Trend")
    match_clusters(world.store, s.topics, [cid], NOW)
    created = create_digests(world.store, s, NOW)
    assert len(created) == 4  # mail and chat for each topic
    report = send_pending(world.store, SmtpTransport(s.smtp), NOW, chat=AppriseTransport(timeout=1),
                          destinations={destination_key(url): url})
    by_channel = sorted((o.channel == "mail", o.status) for o in report.outcomes)
    assert by_channel == [(False, "pending"), (True, "sent"), (True, "sent")]
    untried = world.store.query("SELECT attempts FROM digests WHERE channel != 'mail' ORDER BY id")
    assert sorted(r["attempts"] for r in untried) == [0, 1]
    assert len(server.handler.messages) == 2
