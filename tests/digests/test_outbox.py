"""The outbox end to end: real SQLite files, matches, digests committed before SMTP, aiosmtpd receiving.

Every fault test asserts the stored state afterwards, because that state is the promise:
nothing lost, nothing sent twice, the same bytes (and Message-ID) on every retry.
"""
from __future__ import annotations

import email
import json
import mailbox
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import policy

import pytest

from monitor.config import DigestSettings, Settings, SmtpSettings, TopicSettings
from monitor.digests.mailer import SmtpTransport, transport_for
from monitor.digests.outbox import create_digests, outbox_entries, preview, send_pending
from monitor.digests.topics import match_clusters
from monitor.errors import ConfigError, TemporaryDeliveryError
from monitor.storage.database import iso
from tests.support.smtpserver import free_port
from tests.support.world import World

NOW = datetime(2016, 11, 17, 12, 0, tzinfo=timezone.utc)
DESK, CHIEF = "desk@example.org", "chief@example.org"

# The retry schedule as the README documents it ("retried after 1, 4, 16, 64 minutes and then
# every 4 hours for 5 days"), written out here so a change in the code cannot move the test with it.
FIRST_RETRIES = [timedelta(minutes=m) for m in (1, 4, 16, 64)]
PLATEAU = timedelta(hours=4)
GIVE_UP_AFTER = timedelta(days=5)


def topic(name: str = "platform-regulation", **kw) -> TopicSettings:
    kw.setdefault("recipients", (DESK, CHIEF))
    kw.setdefault("schedule", "immediate")
    return TopicSettings(name=name, query=kw.pop("query", "telegram"), title=kw.pop("title", "Platform regulation"),
                         **kw)


def settings(world: World, *topics: TopicSettings, port: int = 25, **digest) -> Settings:
    return Settings(database=world.store.path, topics=topics or (topic(),),
                    smtp=SmtpSettings(host="127.0.0.1", port=port, timeout=2, sender="Monitor <monitor@example.org>"),
                    digest=DigestSettings(**digest))


def event(world: World, *outlets: str, title: str = "Iran blocks Telegram", when: datetime = NOW) -> int:
    ids = [world.entry(o, title, "The messaging app was blocked.", published=when - timedelta(hours=len(outlets) - i))
           for i, o in enumerate(outlets)]
    cid = world.cluster(*ids, headline=title)
    with world.store.write():  # as clustering keeps it
        world.store.db.execute("UPDATE clusters SET last_published = ? WHERE id = ?", [iso(when), cid])
    return cid


def grow(world: World, cid: int, outlet: str, now: datetime, s: Settings) -> None:
    world.join(cid, world.entry(outlet, "Telegram still blocked", "", published=now))
    match_clusters(world.store, s.topics, [cid], now)


def row(world: World, digest_id: int) -> dict:
    return world.store.query("SELECT * FROM digests WHERE id = ?", [digest_id])[0]


def recipients(world: World, digest_id: int) -> dict[str, tuple[str, str | None]]:
    return {r["recipient"]: (r["status"], r["error"]) for r in world.store.query(
        "SELECT * FROM digest_recipients WHERE digest_id = ?", [digest_id])}


def items(world: World, digest_id: int) -> list[tuple[int, str, int]]:
    return [(r["cluster_id"], r["kind"], r["outlets"]) for r in world.store.query(
        "SELECT * FROM digest_items WHERE digest_id = ? ORDER BY cluster_id", [digest_id])]


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def text_of(data: bytes) -> str:
    return parse(data).get_body(("plain",)).get_content()


def test_a_digest_is_stored_before_sending_and_sent_once(world, smtp_server):
    server = smtp_server()
    s = settings(world, port=server.port)
    a, b = event(world, "Trend", "Tehran Times"), event(world, "Gulf Ledger", title="Telegram fined")
    match_clusters(world.store, s.topics, [a, b], NOW)

    [did] = create_digests(world.store, s, NOW)
    stored = row(world, did)
    assert stored["status"] == "pending" and stored["attempts"] == 0 and server.handler.messages == []
    assert items(world, did) == [(a, "new", 2), (b, "new", 1)]
    assert recipients(world, did) == {DESK: ("pending", None), CHIEF: ("pending", None)}
    assert parse(stored["message"])["Message-ID"] == stored["message_id"]

    report = send_pending(world.store, SmtpTransport(s.smtp), NOW)
    assert [(o.digest_id, o.status) for o in report.outcomes] == [(did, "sent")]
    mail_from, rcpts, data = server.handler.messages[0]
    assert mail_from == "monitor@example.org" and sorted(rcpts) == [CHIEF, DESK]
    msg = parse(data)
    assert msg["Message-ID"] == stored["message_id"] and msg["Subject"] == "Platform regulation: 2 new events"
    assert msg.get_content_type() == "multipart/alternative"
    assert "Iran blocks Telegram" in text_of(data) and "Tehran Times" in text_of(data)
    stored = row(world, did)
    assert stored["status"] == "sent" and stored["sent"] == iso(NOW) and stored["attempts"] == 1
    assert recipients(world, did) == {DESK: ("accepted", None), CHIEF: ("accepted", None)}

    # Nothing new: no digest, nothing sent.
    later = NOW + timedelta(hours=1)
    match_clusters(world.store, s.topics, [a, b], later)  # touched again, not grown
    assert create_digests(world.store, s, later) == []
    assert send_pending(world.store, SmtpTransport(s.smtp), later).outcomes == ()
    assert len(server.handler.messages) == 1


def test_updated_only_after_a_cluster_gains_outlets(world, smtp_server):
    server = smtp_server()
    s = settings(world, port=server.port)
    cid = event(world, "Trend", "Tehran Times")
    match_clusters(world.store, s.topics, [cid], NOW)
    create_digests(world.store, s, NOW)
    send_pending(world.store, SmtpTransport(s.smtp), NOW)

    t1 = NOW + timedelta(hours=1)
    grow(world, cid, "Trend", t1, s)  # another report, same outlet
    assert create_digests(world.store, s, t1) == []

    t2 = NOW + timedelta(hours=2)
    grow(world, cid, "Gulf Ledger", t2, s)
    [did] = create_digests(world.store, s, t2)
    assert items(world, did) == [(cid, "updated", 3)]
    send_pending(world.store, SmtpTransport(s.smtp), t2)
    text = text_of(server.handler.messages[-1][2])
    assert "Updated: new outlets Gulf Ledger" in text and "3 outlets, 4 reports" in text
    assert parse(server.handler.messages[-1][2])["Subject"] == "Platform regulation: 1 updated"
    assert create_digests(world.store, s, t2 + timedelta(minutes=5)) == []


def test_connection_refused_keeps_it_pending_and_the_retry_is_the_same_message(world, smtp_server):
    s = settings(world, port=free_port())
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "pending" and "connection refused" in out.error
    stored = row(world, did)
    assert (stored["status"], stored["attempts"]) == ("pending", 1)
    assert "connection refused" in stored["last_error"] and stored["next_attempt"] == iso(NOW + timedelta(minutes=1))
    assert recipients(world, did)[DESK] == ("pending", None)

    assert send_pending(world.store, SmtpTransport(s.smtp), NOW + timedelta(seconds=30)).outcomes == ()  # not due

    server = smtp_server()
    later = NOW + timedelta(minutes=2)
    s2 = settings(world, port=server.port)
    [out] = send_pending(world.store, SmtpTransport(s2.smtp), later).outcomes
    assert out.status == "sent"
    assert parse(server.handler.messages[0][2])["Message-ID"] == stored["message_id"]
    assert server.handler.messages[0][2].replace(b"\r\n", b"\n") == stored["message"]
    assert (row(world, did)["status"], row(world, did)["attempts"]) == ("sent", 2)


def test_a_server_without_greeting_is_a_temporary_failure(world, silent_server):
    s = settings(world, port=silent_server)
    s = replace(s, smtp=SmtpSettings(host="127.0.0.1", port=silent_server, timeout=0.5))
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "pending" and "no greeting" in row(world, did)["last_error"]
    assert row(world, did)["attempts"] == 1


@pytest.mark.parametrize("reply, status", [
    ("451 4.3.0 Temporary local problem", "pending"),
    ("554 5.7.1 Rejected as spam", "failed"),
    ("550 5.7.1 Not accepted", "failed"),
])
def test_replies_to_data(world, smtp_server, reply, status):
    server = smtp_server()
    server.handler.data_reply = reply
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    stored = row(world, did)
    assert out.status == stored["status"] == status and reply[:3] in stored["last_error"]
    expected = "pending" if status == "pending" else "refused"
    assert {v[0] for v in recipients(world, did).values()} == {expected}
    assert stored["next_attempt"] == (iso(NOW + timedelta(minutes=1)) if status == "pending" else None)


def test_message_too_large_fails_for_good(world, smtp_server):
    server = smtp_server(data_size_limit=2000)
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "failed" and "message too large" in row(world, did)["last_error"]


def test_some_recipients_refused(world, smtp_server):
    server = smtp_server()
    server.handler.rcpt_replies = {CHIEF: "550 5.1.1 No such user"}
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "sent" and out.accepted == (DESK,) and out.refused == {CHIEF: "550 5.1.1 No such user"}
    assert recipients(world, did) == {DESK: ("accepted", None), CHIEF: ("refused", "550 5.1.1 No such user")}
    assert row(world, did)["status"] == "sent" and "No such user" in row(world, did)["last_error"]
    assert server.handler.messages[0][1] == [DESK]


def test_all_recipients_refused_fails(world, smtp_server):
    server = smtp_server()
    server.handler.rcpt_replies = {DESK: "550 5.1.1 No such user", CHIEF: "554 5.7.1 Relay denied"}
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "failed" and row(world, did)["last_error"].startswith("all recipients refused")
    assert {v[0] for v in recipients(world, did).values()} == {"refused"}


def test_a_deferred_recipient_is_retried_alone(world, smtp_server):
    server = smtp_server()
    server.handler.rcpt_replies = {CHIEF: "452 4.2.2 Mailbox full"}
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "pending" and out.accepted == (DESK,)
    assert recipients(world, did) == {DESK: ("accepted", None), CHIEF: ("pending", "452 4.2.2 Mailbox full")}
    assert row(world, did)["sent"] == iso(NOW)
    server.handler.rcpt_replies = {}
    later = NOW + timedelta(minutes=5)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), later).outcomes
    assert out.status == "sent" and [m[1] for m in server.handler.messages] == [[DESK], [CHIEF]]
    assert recipients(world, did) == {DESK: ("accepted", None), CHIEF: ("accepted", None)}
    ids = {parse(m[2])["Message-ID"] for m in server.handler.messages}
    assert len(ids) == 1


@pytest.mark.parametrize("second_try, chief", [
    (GIVE_UP_AFTER - timedelta(seconds=1), ("pending", "452 4.2.2 Mailbox full")),  # still inside the 5 days
    (GIVE_UP_AFTER, ("refused", "gave up")),
])
def test_giving_up_on_a_deferred_recipient_keeps_the_digest_sent(world, smtp_server, second_try, chief):
    """A recipient deferred (4xx) is retried until 5 days after the digest was written, then given up,
    and the digest stays sent for the recipient who has it."""
    server = smtp_server()
    server.handler.rcpt_replies = {CHIEF: "452 4.2.2 Mailbox full"}
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    send_pending(world.store, SmtpTransport(s.smtp), NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW + second_try).outcomes
    status, error = recipients(world, did)[CHIEF]
    assert status == chief[0] and chief[1] in error and row(world, did)["attempts"] == 2
    if status == "pending":
        assert out.status == row(world, did)["status"] == "pending"
        assert row(world, did)["next_attempt"] == iso(NOW + second_try + FIRST_RETRIES[1])
    else:
        assert out.status == row(world, did)["status"] == "sent"  # the desk has it: not "failed", not resent
        assert row(world, did)["next_attempt"] is None
    assert create_digests(world.store, s, NOW + second_try) == []


def test_an_unreachable_server_stops_the_run_and_later_digests_keep_their_place(world):
    s = settings(world, topic("a"), topic("b", query="fined"), port=free_port())
    match_clusters(world.store, s.topics, [event(world, "Trend", title="Telegram fined")], NOW)
    first, second = create_digests(world.store, s, NOW)
    report = send_pending(world.store, SmtpTransport(s.smtp), NOW)
    assert [o.digest_id for o in report.outcomes] == [first] and "connection refused" in report.stopped
    assert row(world, second)["attempts"] == 0 and row(world, second)["next_attempt"] is None


class RefusingTransport:
    """A transport whose server is never reachable: every send is a temporary failure. Counts the tries."""

    name = "smtp"

    def __init__(self) -> None:
        self.tries = 0

    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> dict:
        self.tries += 1
        raise TemporaryDeliveryError("connection refused", unreachable=True)


def test_retries_follow_the_documented_schedule_and_give_up_after_five_days(world):
    """Each failed try sets the next one 1, 4, 16, 64 minutes later, then every 4 hours; nothing is tried
    before it is due; the first try at or after 5 days from the digest's writing fails it for good."""
    s = settings(world)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    transport = RefusingTransport()
    at, delays = NOW, []
    while at - NOW < GIVE_UP_AFTER:
        [out] = send_pending(world.store, transport, at).outcomes
        delay = FIRST_RETRIES[len(delays)] if len(delays) < len(FIRST_RETRIES) else PLATEAU
        stored = row(world, did)
        assert (out.status, stored["status"], stored["attempts"]) == ("pending", "pending", len(delays) + 1)
        assert stored["next_attempt"] == iso(at + delay) and out.next_attempt == at + delay
        assert send_pending(world.store, transport, at + delay - timedelta(seconds=1)).outcomes == ()  # not due
        delays.append(delay)
        at += delay
        assert len(delays) < 100, "the retries never reach the 5-day limit"
    [out] = send_pending(world.store, transport, at).outcomes
    assert out.status == row(world, did)["status"] == "failed" and row(world, did)["next_attempt"] is None
    assert row(world, did)["last_error"].startswith(f"gave up after {len(delays) + 1} attempts")
    # 1+4+16+64 minutes, then 29 four-hour waits end inside the 5 days; the 30th crosses it.
    assert delays == FIRST_RETRIES + [PLATEAU] * 30 and transport.tries == len(delays) + 1
    assert send_pending(world.store, transport, at + timedelta(days=30)).outcomes == ()  # failed stays failed


@pytest.mark.parametrize("first_try, status", [
    (GIVE_UP_AFTER - timedelta(seconds=1), "pending"),
    (GIVE_UP_AFTER, "failed"),
    (GIVE_UP_AFTER + timedelta(hours=1), "failed"),
])
def test_giving_up_counts_from_when_the_digest_was_written(world, first_try, status):
    """The 5 days run from the digest's creation, not from its first try: a try just inside them is
    retried (next in 1 minute), one at or after them fails the digest."""
    s = settings(world, port=free_port())
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW + first_try).outcomes
    stored = row(world, did)
    assert out.status == stored["status"] == status and stored["attempts"] == 1
    if status == "pending":
        assert stored["next_attempt"] == iso(NOW + first_try + FIRST_RETRIES[0])
    else:
        assert stored["last_error"].startswith("gave up after 1 attempts") and stored["next_attempt"] is None


def test_a_failed_digest_gives_its_clusters_back(world, smtp_server):
    server = smtp_server()
    server.handler.data_reply = "554 5.7.1 Rejected"
    s = settings(world, port=server.port)
    cid = event(world, "Trend")
    match_clusters(world.store, s.topics, [cid], NOW)
    create_digests(world.store, s, NOW)
    send_pending(world.store, SmtpTransport(s.smtp), NOW)
    server.handler.data_reply = None
    later = NOW + timedelta(hours=1)
    [did] = create_digests(world.store, s, later)
    assert items(world, did) == [(cid, "new", 1)]
    assert send_pending(world.store, SmtpTransport(s.smtp), later).outcomes[0].status == "sent"


def test_a_cycle_during_sending_is_neither_lost_nor_sent_twice(world, smtp_server):
    server = smtp_server()
    s = settings(world, port=server.port)
    a = event(world, "Trend")
    match_clusters(world.store, s.topics, [a], NOW)
    [first] = create_digests(world.store, s, NOW)
    # A poll cycle commits between the digest's creation and its delivery, in the same second.
    b = event(world, "Tehran Times", title="Telegram channels closed")
    match_clusters(world.store, s.topics, [a, b], NOW)
    send_pending(world.store, SmtpTransport(s.smtp), NOW)
    [second] = create_digests(world.store, s, NOW)
    assert items(world, first) == [(a, "new", 1)] and items(world, second) == [(b, "new", 1)]


def test_a_digest_claimed_by_another_sender_is_left_alone(world, smtp_server):
    server = smtp_server()
    s = settings(world, port=server.port)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    with world.store.write():  # what another process's claim looks like
        world.store.db.execute("UPDATE digests SET next_attempt = ? WHERE id = ?",
                               [iso(NOW + timedelta(minutes=10)), did])
    assert send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes == ()
    assert server.handler.messages == []


def test_a_merged_cluster_carries_what_was_sent_about_it(world, smtp_server):
    server = smtp_server()
    s = settings(world, port=server.port)
    a = event(world, "Trend", "Tehran Times")
    match_clusters(world.store, s.topics, [a], NOW)
    create_digests(world.store, s, NOW)
    send_pending(world.store, SmtpTransport(s.smtp), NOW)
    b = event(world, "Gulf Ledger", title="A related report")
    world.merge(a, into=b)  # b now holds a's members, and one more outlet
    later = NOW + timedelta(hours=1)
    match_clusters(world.store, s.topics, [b], later)
    [did] = create_digests(world.store, s, later)
    assert items(world, did) == [(b, "updated", 3)]
    assert "new outlets Gulf Ledger" in text_of(row(world, did)["message"])


def test_daily_schedule_runs_once_a_day_even_when_empty(world):
    s = settings(world, topic(schedule="daily 07:00"))
    seven = datetime(2016, 11, 17, 7, 0, tzinfo=timezone.utc)
    assert create_digests(world.store, s, seven) == []  # due, nothing to say: the run still counts
    match_clusters(world.store, s.topics, [event(world, "Trend")], seven + timedelta(minutes=10))
    assert create_digests(world.store, s, seven + timedelta(minutes=15)) == []
    assert preview(world.store, s, seven + timedelta(minutes=15)) == []
    assert len(create_digests(world.store, s, seven + timedelta(days=1))) == 1
    assert create_digests(world.store, s, seven + timedelta(days=1, minutes=30)) == []


def test_a_named_topic_runs_whatever_its_schedule(world):
    s = settings(world, topic(schedule="0 7 1 1 *"), topic("other", schedule="0 7 1 1 *"))
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    create_digests(world.store, s, NOW)  # first run: due (never ran)
    match_clusters(world.store, s.topics, [event(world, "Tehran Times", title="Telegram again")], NOW)
    assert create_digests(world.store, s, NOW + timedelta(hours=1)) == []
    assert len(create_digests(world.store, s, NOW + timedelta(hours=1), topic="other")) == 1
    with pytest.raises(ConfigError, match="no topic named 'nope'"):
        create_digests(world.store, s, NOW, topic="nope")


def test_topics_without_recipients_get_no_digest(world):
    s = settings(world, topic(recipients=()))
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    assert create_digests(world.store, s, NOW) == []


def test_preview_shows_what_would_be_sent_and_writes_nothing(world):
    s = settings(world)
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    before = world.store.scalar("SELECT count(*) FROM digest_schedule")
    [d] = preview(world.store, s, NOW)
    assert d.subject == "Platform regulation: 1 new event" and d.recipients == (DESK, CHIEF)
    assert "Iran blocks Telegram" in d.message.get_body(("plain",)).get_content()
    assert world.store.scalar("SELECT count(*) FROM digests") == 0
    assert world.store.scalar("SELECT count(*) FROM digest_schedule") == before


def test_max_age_from_settings(world):
    s = settings(world, max_age=3 * 86400.0)
    old = event(world, "Trend", when=NOW - timedelta(days=10))
    new = event(world, "Tehran Times", title="Telegram today")
    match_clusters(world.store, s.topics, [old, new], NOW)
    [did] = create_digests(world.store, s, NOW)
    assert [i[0] for i in items(world, did)] == [new]


def test_maildir_outbox_end_to_end(world, tmp_path):
    s = settings(world, outbox=str(tmp_path / "outbox"))
    match_clusters(world.store, s.topics, [event(world, "Trend")], NOW)
    [did] = create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, transport_for(s), NOW).outcomes
    assert out.status == "sent"
    [msg] = list(mailbox.Maildir(str(tmp_path / "outbox"), create=False))
    assert msg["Message-ID"] == row(world, did)["message_id"]
    assert [e.status for e in outbox_entries(world.store, ("sent",))] == ["sent"]


def test_five_thousand_matching_clusters(world):
    s = settings(world, max_items=50)
    with world.store.write():
        feed = world.store.db.execute("INSERT INTO feeds (url, title, added) VALUES ('https://x.example/f', 'X', ?)",
                                      [iso(NOW)]).lastrowid
        for i in range(5000):
            eid = world.store.db.execute(
                "INSERT INTO entries (feed_id, entry_key, guid, link, title, text, published, first_seen,"
                " last_changed, content_hash) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, 'h')",
                [feed, f"k{i}", f"g{i}", f"https://x.example/{i}", f"Telegram story {i}",
                 iso(NOW - timedelta(minutes=i)), iso(NOW), iso(NOW)]).lastrowid
            cid = world.store.db.execute("INSERT INTO clusters (headline, created, last_activity) VALUES (?, ?, ?)",
                                         [f"Telegram story {i}", iso(NOW), iso(NOW)]).lastrowid
            world.store.db.execute("INSERT INTO memberships (entry_id, cluster_id, joined) VALUES (?, ?, ?)",
                                   [eid, cid, iso(NOW)])
    world.store.index_pending_text()  # as clustering would
    ms = match_clusters(world.store, s.topics, range(1, 5001), NOW)
    [did] = create_digests(world.store, s, NOW)
    assert len(ms) == 5000
    assert world.store.scalar("SELECT count(*) FROM digest_items WHERE digest_id = ?", [did]) == 5000
    assert world.store.scalar("SELECT count(*) FROM digest_items WHERE listed = 1") == 50
    msg = row(world, did)
    assert msg["subject"] == "Platform regulation: 5000 new events"
    assert "+4950 more events" in text_of(msg["message"])
    assert create_digests(world.store, s, NOW + timedelta(minutes=1)) == []  # none of them again
    assert json.loads(msg["recipients"]) == [DESK, CHIEF]


STANDING = "Valley News 8 is the station the whole valley trusts for local news and weather."
LEAD = ("Iranian authorities blocked the Telegram messaging app on Monday, cutting off millions of users. "
        "The telecoms ministry said the block would stay until the company removed channels it called immoral.")
CLOSED = ("Iran closed twenty Telegram channels on Tuesday, the cyber police said. Their administrators were "
          "questioned.")


def test_a_delivered_digest_carries_each_event_s_lead(world, smtp_server):
    """The lead is taken from the report the other members matched most often (not the first one),
    without its feed's furniture, and sits under the headline in both parts of the mail the server
    received. A report whose text is all furniture passes the lead to the next best report; an event
    whose report has no text has no lead line."""
    server = smtp_server()
    s = settings(world, port=server.port)
    for n, title in enumerate(["Council approves money for road repairs", "School board delays vote",
                               "Warehouse fire injures two firefighters"]):  # the station's other stories
        world.entry("Valley News 8", title, f"Story {n} of the day was told on air in full. {STANDING}",
                    published=NOW - timedelta(days=2, hours=n))
    first = world.entry("Continental Wire", "Telegram blocked in Iran",
                        "Iran blocked the Telegram app on Monday, officials said. Continue reading…",
                        published=NOW - timedelta(hours=3))
    typical = world.entry(
        "Valley News 8", "Iran blocks Telegram - Valley News 8",
        f"Photo: Jane Roe / Valley News 8\nShare this:\nIran blocks Telegram - Valley News 8\n{STANDING}\n"
        f"TEHRAN —\n{LEAD}\nCopyright 2016 Valley News 8. All rights reserved.",
        published=NOW - timedelta(hours=2))
    silent = world.entry("Tehran Times", "Telegram goes dark in Iran", "", published=NOW - timedelta(hours=1))
    # the station's own updates of the story repeat its lead under other titles: not furniture
    updates = [world.entry("Valley News 8", title, f"{LEAD} Officials gave no date.",
                           published=NOW - timedelta(minutes=m))
               for m, title in ((50, "Telegram still blocked in Iran"), (40, "Iran keeps Telegram blocked"))]
    blocked = world.cluster(first, typical, silent, *updates, headline="Iran blocks Telegram")

    only_furniture = world.entry("Levant Post", "Telegram channels closed in Iran",
                                 "Share this:\nPosted 3 hours ago\nPhoto: Jane Roe / Levant Post",
                                 published=NOW - timedelta(hours=4))
    next_best = world.entry("Caspian Wire", "Iran shuts Telegram channels", CLOSED,
                            published=NOW - timedelta(hours=5))
    closed = world.cluster(only_furniture, next_best, headline="Telegram channels closed in Iran")
    fined = "Telegram fined in Iran"
    bare = world.cluster(world.entry("Gulf Ledger", fined, ""), headline=fined)
    with world.store.write():  # as clustering records it: each member's best match
        world.store.db.conn.executemany(
            "UPDATE memberships SET matched_entry_id = ? WHERE entry_id = ?",
            [(typical, first), (typical, silent), (first, typical), *((typical, u) for u in updates),
             (only_furniture, next_best)])
    match_clusters(world.store, s.topics, [blocked, closed, bare], NOW)

    create_digests(world.store, s, NOW)
    [out] = send_pending(world.store, SmtpTransport(s.smtp), NOW).outcomes
    assert out.status == "sent"
    msg = parse(server.handler.messages[0][2])
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    lines = text.splitlines()
    assert lines[lines.index("1. Iran blocks Telegram") + 1] == f"   {LEAD}"
    assert lines[lines.index("2. Telegram channels closed in Iran") + 1] == f"   {CLOSED}"
    assert lines[lines.index("3. Telegram fined in Iran") + 1].startswith("   1 outlet, 1 report")
    assert html.index("1. Iran blocks Telegram</div>") < html.index(f">{LEAD}</div>") \
        < html.index("2. Telegram channels closed in Iran</div>") < html.index(f">{CLOSED}</div>") \
        < html.index("3. Telegram fined in Iran</div>")
    for part in (text, html):
        assert part.count(LEAD) == 1 and part.count(CLOSED) == 1 and "None" not in part
        for furniture in (STANDING, "Photo:", "Share this", "Posted", "Copyright", "TEHRAN —",
                          "Continue reading"):
            assert furniture not in part
