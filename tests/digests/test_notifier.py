"""The Apprise transport against real HTTP servers on 127.0.0.1: what arrives, how refusals are told apart.

Statuses, timeouts and the secrecy of the URL are asserted on real deliveries (Apprise's JSON,
form and Mattermost plugins over sockets), never on a mocked Apprise.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from monitor.config import TopicSettings
from monitor.digests.chat import render_chat
from monitor.digests.digest import DigestItem, DigestPlan, OutletLink, Spread
from monitor.digests.notifier import AppriseTransport, check_url, classify
from monitor.errors import PermanentDeliveryError, TemporaryDeliveryError
from tests.support.rawserver import RawServer

GUARD = 30  # seconds: only a send that ignores its own timeout gets near this
SECRETS = ("s3cret", "t0ken", "p4th", "hunter2")


class Hook:
    """A webhook receiver on 127.0.0.1: answers every POST with `status` (and `headers`), records it.

    Not pytest_httpserver: werkzeug logs each request line, query string included, and the
    secrecy test must see only what the code under test logs.
    """

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                for k, v in {**outer.headers, "Content-Length": "2"}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handle) -> RawServer:
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def bounded(call: Callable[[], None], seconds: float = GUARD) -> BaseException | None:
    """Run `call` on a thread and return what it raised; fail if it is still running after `seconds`."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)
        else:
            raised.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"send() still running after {seconds} s"
    return raised[0]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- what arrives ----------------------------------------------------------------------------------


def test_a_json_webhook_gets_title_and_body_as_sent_in_one_request(hook):
    title = "Platform regulation: 1 new event"
    body = "\u2022 A & B <x> \"q\" caf\u00e9 (2 outlets)\n+1 more event"
    AppriseTransport(timeout=5).send(f"json://127.0.0.1:{hook.port}/incoming/hook", title, body)
    [(path, headers, raw_body)] = hook.requests
    payload = json.loads(raw_body)
    assert path == "/incoming/hook" and headers["content-type"] == "application/json"
    assert (payload["title"], payload["message"]) == (title, body)  # text, not &lt; or backslashes


def test_a_form_webhook_gets_title_and_body_as_form_fields(hook):
    title, body = "Desk: 2 new events", "\u2022 One (1 outlet)\n\u2022 Two & more (3 outlets)"
    AppriseTransport(timeout=5).send(f"form://127.0.0.1:{hook.port}/form", title, body)
    [(path, headers, raw_body)] = hook.requests
    fields = parse_qs(raw_body.decode())
    assert path == "/form" and headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert (fields["title"], fields["message"]) == ([title], [body])


def test_a_mattermost_webhook_gets_the_digest_with_mentions_and_markdown_defused(hook):
    """Mattermost renders Markdown and pings @channel in whatever it is sent (Apprise passes TEXT on
    unchanged): a hostile headline reaches it readable and inert."""
    t0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    hostile = DigestItem(
        cluster_id=1, kind="new",
        headline="@channel <!here> **Blast** at [plant](http://phish.example) `now`",
        outlets=(OutletLink("@everyone Wire", "https://wire.example/a"), OutletLink("Post", None)),
        new_outlets=(), reports=2, first_seen=t0, last_seen=t0, terms=("blast",),
        spread=Spread(t0, timedelta(hours=1), (2,)))
    desk = TopicSettings(name="desk", query="blast", title="Desk")
    plan = DigestPlan(topic=desk, items=(hostile,), unlisted=())
    message = render_chat(plan)
    AppriseTransport(timeout=5).send(f"mmost://127.0.0.1:{hook.port}/t0kenvalue", message.title, message.body)
    [(path, _, raw_body)] = hook.requests
    text = json.loads(raw_body)["text"]
    assert path == "/hooks/t0kenvalue"
    assert text.startswith("Desk: 1 new event") and "Blast" in text and "https://wire.example/a" in text
    assert "@channel" not in text and "@\u2060channel" in text
    assert not any(s in text for s in ("<!", "**", "](", "`"))


def test_a_body_over_the_services_limit_is_cut_by_whole_events_into_the_count(hook):
    """Mattermost takes 4,000 characters (Apprise's limit for it): the digest still goes out, with
    fewer events and the rest counted, instead of a refusal that would repeat with every retry."""
    lines = [f"\u2022 Event {i} " + "x" * 180 + f" (2 outlets) https://wire.example/{i}" for i in range(40)]
    body = "\n".join(lines) + "\n+5 more events"
    AppriseTransport(timeout=5).send(f"mmost://127.0.0.1:{hook.port}/tok", "Desk: 45 new events", body)
    [(_, _, raw_body)] = hook.requests
    text = json.loads(raw_body)["text"]
    assert len(text) <= 4000
    received = text.split("\r\n", 1)[1].split("\n")
    assert received[:-1] == lines[:len(received) - 1]
    assert received[-1] == f"+{40 - (len(received) - 1) + 5} more events"


# -- how refusals are told apart -------------------------------------------------------------------


@pytest.mark.parametrize("status, headers, error", [
    (500, {}, TemporaryDeliveryError),
    (502, {}, TemporaryDeliveryError),
    (503, {"Retry-After": "120"}, TemporaryDeliveryError),
    (408, {}, TemporaryDeliveryError),
    (429, {"Retry-After": "30"}, TemporaryDeliveryError),
    (400, {}, PermanentDeliveryError),
    (401, {}, PermanentDeliveryError),
    (404, {}, PermanentDeliveryError),
    (410, {}, PermanentDeliveryError),
    (413, {}, PermanentDeliveryError),
])
def test_http_statuses_are_temporary_or_permanent_with_their_code(hook, status, headers, error):
    hook.status, hook.headers = status, headers
    with pytest.raises(error) as caught:
        AppriseTransport(timeout=5).send(f"json://127.0.0.1:{hook.port}/hook?retry=3", "t", "b")
    assert type(caught.value) is error and caught.value.code == status
    assert str(caught.value).startswith(f"json://127.0.0.1:{hook.port}: HTTP {status}")
    assert len(hook.requests) == 1  # no retries of Apprise's own, even when the URL asks for them


def test_a_refused_connection_is_temporary():
    with pytest.raises(TemporaryDeliveryError) as caught:
        AppriseTransport(timeout=5).send(f"json://127.0.0.1:{closed_port()}/hook", "t", "b")
    assert str(caught.value).endswith(": connection refused") and caught.value.unreachable


def test_a_server_that_never_answers_is_a_temporary_timeout(raw):
    def hang(conn, head, stop):
        stop.wait(GUARD * 2)

    server = raw(hang)
    url = f"json://127.0.0.1:{server.port}/hook"
    error = bounded(lambda: AppriseTransport(timeout=1).send(url, "t", "b"))
    assert isinstance(error, TemporaryDeliveryError) and "timed out" in str(error)
    assert server.connections == 1


def test_a_server_that_trickles_its_answer_is_cut_off_by_the_overall_deadline(raw):
    """One header byte every 0.2 s keeps every read under the read timeout: only the deadline on
    the whole call ends this (the server would go on for an hour)."""
    def trickle(conn, head, stop):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(18_000):
            if stop.wait(0.2):
                return
            conn.sendall(b"a")

    server = raw(trickle)
    url = f"json://127.0.0.1:{server.port}/hook"
    error = bounded(lambda: AppriseTransport(timeout=1).send(url, "t", "b"))
    assert isinstance(error, TemporaryDeliveryError) and "timed out" in str(error)


def test_a_url_apprise_cannot_load_is_permanent_and_sends_nothing(hook):
    with pytest.raises(PermanentDeliveryError, match=r"^nope://\u2026: unknown scheme nope://$"):
        AppriseTransport(timeout=5).send("nope://user:s3cret@127.0.0.1/x", "t", "b")
    with pytest.raises(PermanentDeliveryError, match="malformed"):
        AppriseTransport(timeout=5).send("json://", "t", "b")
    assert hook.requests == []


def test_one_temporary_status_among_several_makes_the_failure_temporary():
    """A URL with several targets fails as a whole; if any target may take it later, retry."""
    error = classify("x://h", [404, 503, 400], [])
    assert isinstance(error, TemporaryDeliveryError) and error.code == 503
    error = classify("x://h", [404, 400], [])
    assert isinstance(error, PermanentDeliveryError) and error.code == 400


def test_check_url_accepts_what_apprise_loads_and_names_the_problem_otherwise():
    assert check_url("json://127.0.0.1:8080/hook") is None
    assert check_url("mmost://chat.example.org/token") is None
    assert check_url("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general") is None
    assert check_url("nope://user:s3cret@host/x") == "unknown scheme nope://"
    assert "malformed" in (check_url("json://") or "")
    assert "scheme://" in (check_url("hooks.example.org/s3cret") or "")
    assert "jsons://" in (check_url("https://hooks.example.org/s3cret") or "")  # a plain https URL: a hint
    for url in ("nope://user:s3cret@host/x", "json://user:s3cret@", "hooks.example.org/s3cret", "tgram://s3cret"):
        assert "s3cret" not in (check_url(url) or "")


# -- secrets ---------------------------------------------------------------------------------------


class Keep(logging.Handler):
    """What a handler attached straight to a library's logger sees (as an operator's would)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))


def test_the_url_secrets_reach_no_exception_log_record_or_stderr(hook, caplog, capfd):
    """Every outcome, with every logger at DEBUG and a handler on Apprise's and urllib3's own
    loggers: user, password, path and query stay out of exception messages, log records and
    whatever reaches stderr."""
    check_url("json://127.0.0.1/warm-up")  # Apprise and urllib3 loaded, so their loggers exist
    caplog.set_level(logging.DEBUG)
    keep = Keep()
    libraries = ("apprise", "urllib3", "requests")
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in libraries]
    for name in [*names, "monitor"]:
        caplog.set_level(logging.DEBUG, logger=name)
        logging.getLogger(name).addHandler(keep)
    try:
        errors = deliver_with_secrets(hook)
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(keep)
    assert [type(e) for e in errors] == [type(None), TemporaryDeliveryError, PermanentDeliveryError,
                                         TemporaryDeliveryError]
    assert [r for r in hook.requests if "t0ken" in r[0]]  # the secret was really in use
    assert any("error=404" in line for line in keep.lines)  # and Apprise did log at length
    texts = [str(e) for e in errors if e] + [repr(e) for e in errors if e] + keep.lines
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    out, err = capfd.readouterr()
    texts += [out, err]
    assert [t for t in texts if any(s in t for s in SECRETS)] == []


def deliver_with_secrets(hook: Hook) -> list[BaseException | None]:
    transport = AppriseTransport(timeout=1)
    errors: list[BaseException | None] = []
    for status in (200, 500, 404):
        hook.status = status
        url = f"json://user:s3cret@127.0.0.1:{hook.port}/hook/p4th?-token=t0ken&token=hunter2"
        errors.append(bounded(lambda u=url: transport.send(u, "t", "b")))
    refused = f"json://user:s3cret@127.0.0.1:{closed_port()}/p4th?-token=t0ken"
    errors.append(bounded(lambda: transport.send(refused, "t", "b")))
    return errors

