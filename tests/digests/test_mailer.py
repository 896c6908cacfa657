"""Transports against real servers on 127.0.0.1: aiosmtpd for SMTP, raw sockets for broken servers."""
from __future__ import annotations

import email
import mailbox
import time
from dataclasses import replace
from email import policy

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.config import DigestSettings, Settings, SmtpSettings
from monitor.digests.mailer import MaildirTransport, SmtpTransport, smtp_password, transport_for
from monitor.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from tests.support.smtpserver import SILENCE, free_port

MESSAGE = (b"From: monitor@example.org\nTo: desk@example.org\nSubject: test\nMessage-ID: <t1@example.org>\n\n"
           b"Hello.\n.leading dot survives\n")


def test_smtp_delivers_bytes_unchanged(smtp_server):
    server = smtp_server()
    refused = SmtpTransport(server.settings()).send(MESSAGE, "monitor@example.org", ["desk@example.org"])
    assert refused == {}
    mail_from, rcpts, _ = server.handler.messages[0]
    assert (mail_from, rcpts) == ("monitor@example.org", ["desk@example.org"])
    msg = server.handler.parsed()
    assert msg["Message-ID"] == "<t1@example.org>" and ".leading dot survives" in msg.get_content()


def test_connection_refused_is_temporary_and_unreachable():
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2)
    with pytest.raises(TemporaryDeliveryError, match="connection refused") as err:
        SmtpTransport(settings).send(MESSAGE, "monitor@example.org", ["desk@example.org"])
    assert err.value.unreachable


def test_a_server_without_greeting_times_out(silent_server):
    """The wait for a greeting ends at smtp.timeout: not before it, and long before the server hangs up."""
    timeout = 0.5
    settings = SmtpSettings(host="127.0.0.1", port=silent_server, timeout=timeout)
    started = time.monotonic()
    with pytest.raises(TemporaryDeliveryError, match="no greeting from the server within 0.5s") as err:
        SmtpTransport(settings).send(MESSAGE, "monitor@example.org", ["desk@example.org"])
    elapsed = time.monotonic() - started
    assert err.value.unreachable
    assert timeout - 0.05 <= elapsed < 20 < SILENCE, elapsed


def test_451_at_data_is_temporary(smtp_server):
    server = smtp_server()
    server.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(TemporaryDeliveryError, match="451") as err:
        SmtpTransport(server.settings()).send(MESSAGE, "monitor@example.org", ["desk@example.org"])
    assert not err.value.unreachable and err.value.code == 451


@pytest.mark.parametrize("reply", ["554 5.7.1 Message rejected as spam", "550 5.7.1 Policy violation"])
def test_5xx_at_data_is_permanent(smtp_server, reply):
    server = smtp_server()
    server.handler.data_reply = reply
    with pytest.raises(PermanentDeliveryError, match=reply[:3]):
        SmtpTransport(server.settings()).send(MESSAGE, "monitor@example.org", ["desk@example.org"])


def test_refused_recipients_come_back_with_their_replies(smtp_server):
    server = smtp_server()
    server.handler.rcpt_replies = {"gone@example.org": "550 5.1.1 No such user",
                                   "busy@example.org": "452 4.2.2 Mailbox full"}
    refused = SmtpTransport(server.settings()).send(
        MESSAGE, "monitor@example.org", ["desk@example.org", "gone@example.org", "busy@example.org"])
    assert {r: (x.code, x.temporary) for r, x in refused.items()} == {
        "gone@example.org": (550, False), "busy@example.org": (452, True)}
    assert server.handler.messages[0][1] == ["desk@example.org"]
    # all refused: smtplib raises SMTPRecipientsRefused; the transport still answers per recipient
    refused = SmtpTransport(server.settings()).send(MESSAGE, "monitor@example.org", ["gone@example.org"])
    assert str(refused["gone@example.org"]) == "550 5.1.1 No such user"


def test_message_too_large_is_permanent(smtp_server):
    server = smtp_server(data_size_limit=100)
    with pytest.raises(PermanentDeliveryError, match="message too large") as err:
        SmtpTransport(server.settings()).send(MESSAGE * 5, "monitor@example.org", ["desk@example.org"])
    assert err.value.code == 552


def test_login_with_password_and_refused_login(smtp_server, monkeypatch):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mon", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535 itself

    server = smtp_server(authenticator=authenticator, auth_require_tls=False)
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", "s3cret")
    settings = server.settings(username="mon")
    transport = transport_for(Settings(smtp=settings))
    assert "s3cret" not in repr(transport)
    assert transport.send(MESSAGE, "monitor@example.org", ["desk@example.org"]) == {}
    with pytest.raises(TemporaryDeliveryError, match="login as mon refused: 535") as err:
        SmtpTransport(settings, "wrong").send(MESSAGE, "monitor@example.org", ["desk@example.org"])
    assert "wrong" not in str(err.value) and err.value.unreachable


def test_starttls_required_but_not_offered(smtp_server):
    server = smtp_server()
    with pytest.raises(TemporaryDeliveryError, match="starttls") as err:
        SmtpTransport(server.settings(security="starttls")).send(MESSAGE, "monitor@example.org", ["a@example.org"])
    assert err.value.unreachable
    assert server.handler.messages == []  # never sent in clear text


def test_tls_against_a_plain_server_fails_cleanly(smtp_server):
    server = smtp_server()
    with pytest.raises(TemporaryDeliveryError):
        SmtpTransport(server.settings(security="tls", timeout=2)).send(MESSAGE, "monitor@example.org", ["a@x.org"])


# -- the password --------------------------------------------------------------------------------


def test_no_username_means_no_password():
    assert smtp_password(SmtpSettings(), env={"MONITOR_SMTP_PASSWORD": "x"}) is None


def test_password_sources_in_order(tmp_path):
    s = SmtpSettings(username="mon")
    (tmp_path / "pw").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-credential")
    env = {"MONITOR_SMTP_PASSWORD": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert smtp_password(replace(s, password_file=str(tmp_path / "pw")), env) == "from-file"
    assert smtp_password(replace(s, password_file="pw"), env, base=str(tmp_path)) == "from-file"  # relative to config
    assert smtp_password(s, env) == "from-env"
    assert smtp_password(s, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-credential"


def test_configured_but_missing_credentials_are_config_errors(tmp_path):
    s = SmtpSettings(username="mon")
    with pytest.raises(ConfigError, match="smtp.password_file: cannot read .*nope"):
        smtp_password(replace(s, password_file=str(tmp_path / "nope")), {"MONITOR_SMTP_PASSWORD": "x"})
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        smtp_password(replace(s, password_file=str(tmp_path / "empty")), {})
    with pytest.raises(ConfigError, match="smtp-password cannot be read"):
        smtp_password(s, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    with pytest.raises(ConfigError, match="smtp.username is set but no password"):
        smtp_password(s, {})


# -- maildir and the choice of transport ---------------------------------------------------------


def test_maildir_transport_writes_parseable_messages(tmp_path):
    path = tmp_path / "deep" / "outbox"
    transport = MaildirTransport(str(path))
    assert transport.send(MESSAGE, "monitor@example.org", ["desk@example.org"]) == {}
    transport.send(MESSAGE.replace(b"t1", b"t2"), "monitor@example.org", ["desk@example.org"])
    box = mailbox.Maildir(str(path), create=False)
    ids = sorted(email.message_from_bytes(m.as_bytes(), policy=policy.default)["Message-ID"] for m in box)
    assert ids == ["<t1@example.org>", "<t2@example.org>"]


def test_maildir_that_cannot_be_written_is_temporary(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(TemporaryDeliveryError, match="maildir"):
        MaildirTransport(str(tmp_path / "file" / "box")).send(MESSAGE, "a@example.org", ["b@example.org"])


def test_transport_for(tmp_path):
    db = str(tmp_path / "data" / "monitor.db")
    t = transport_for(Settings(database=db))
    assert isinstance(t, MaildirTransport) and t.path == str(tmp_path / "data" / "maildir")  # no smtp.host
    t = transport_for(Settings(database=db, smtp=SmtpSettings(host="mail.example.org"),
                               digest=DigestSettings(outbox="box"), config_path=str(tmp_path / "monitor.toml")))
    assert isinstance(t, MaildirTransport) and t.path == str(tmp_path / "box")  # [digest] outbox wins
    t = transport_for(Settings(database=db, smtp=SmtpSettings(host="mail.example.org")))
    assert isinstance(t, SmtpTransport) and t.password is None
    with pytest.raises(ConfigError, match="no password"):
        transport_for(Settings(smtp=SmtpSettings(host="mail.example.org", username="mon")), env={})
