"""Mail transports: hand stored message bytes to an SMTP server, or drop them into a maildir.

A transport only moves bytes; the outbox decides what to send and records the outcome.
Failures come back in three shapes, because the outbox must treat them differently:
- a dict of refused recipients (some or all refused at RCPT: smtplib's own shape),
- TemporaryDeliveryError: try again later with the same bytes (no server, timeout, 4xx),
- PermanentDeliveryError: the server refused this message for good (5xx, too large).

The SMTP password is read here and nowhere else; it is never put in argv, a log line, an
error message or a repr.
"""
from __future__ import annotations

import contextlib
import mailbox
import os
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from monitor.config import Settings, SmtpSettings
from monitor.errors import ConfigError, DeliveryError, PermanentDeliveryError, TemporaryDeliveryError

PASSWORD_ENV = "MONITOR_SMTP_PASSWORD"
_CRLF = re.compile(rb"\r?\n")
CREDENTIAL_NAME = "smtp-password"  # systemd LoadCredential=smtp-password:/path


@dataclass(frozen=True)
class Refusal:
    """A recipient the server refused, with its SMTP reply."""

    code: int
    message: str

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


class Transport(Protocol):
    name: str

    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> dict[str, Refusal]:
        """Deliver; return the refused recipients (empty when all were accepted)."""
        ...


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]


def _by_code(code: int, what: str, reply: bytes | str) -> DeliveryError:
    reason = f"{what}: {code} {_text(reply)}"
    if code == 552:
        reason = f"message too large for the server: {code} {_text(reply)}"
    if 500 <= code < 600:
        return PermanentDeliveryError(reason, code)
    return TemporaryDeliveryError(reason, code=code)


@dataclass
class SmtpTransport:
    """smtplib with an explicit timeout, STARTTLS or implicit TLS, and AUTH when a username is set.

    One connection per message: digests are few, and a fresh session means one message's
    failure cannot leave the next in a half-finished SMTP transaction.
    """

    settings: SmtpSettings
    password: str | None = field(default=None, repr=False)
    name: str = "smtp"

    def _connect(self) -> smtplib.SMTP:
        """Connect and read the greeting. smtplib closes the socket itself when this fails."""
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
        return smtplib.SMTP(s.host, s.port, timeout=s.timeout)

    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> dict[str, Refusal]:
        s = self.settings
        where = f"{s.host}:{s.port}"
        smtp: smtplib.SMTP | None = None
        phase = "connect"
        try:
            smtp = self._connect()
            phase = "greeting"
            smtp.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                phase = "starttls"
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                phase = "login"
                smtp.login(s.username, self.password or "")
            phase = "send"
            # smtplib converts line ends only in str messages; SMTP needs CRLF (servers refuse bare LF lines)
            refused = smtp.sendmail(sender, list(recipients), _CRLF.sub(b"\r\n", message))
            # the server has accepted the message; a lost QUIT changes nothing
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            return {r: Refusal(code, _text(msg)) for r, (code, msg) in refused.items()}
        except smtplib.SMTPRecipientsRefused as exc:
            return {r: Refusal(code, _text(msg)) for r, (code, msg) in exc.recipients.items()}
        except smtplib.SMTPSenderRefused as exc:
            raise _by_code(exc.smtp_code, f"sender {exc.sender} refused", exc.smtp_error) from None
        except smtplib.SMTPDataError as exc:
            raise _by_code(exc.smtp_code, "message refused", exc.smtp_error) from None
        except smtplib.SMTPAuthenticationError as exc:
            # A configuration problem, not this message's: keep it queued until the operator fixes it.
            raise TemporaryDeliveryError(f"{where}: login as {s.username} refused: {exc.smtp_code} "
                                         f"{_text(exc.smtp_error)}",
                                         unreachable=True, code=exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise TemporaryDeliveryError(f"{where}: {phase} not possible: {exc}", unreachable=True) from None
        except smtplib.SMTPConnectError as exc:
            raise TemporaryDeliveryError(f"{where}: server refused the session: {exc.smtp_code} "
                                         f"{_text(exc.smtp_error)}",
                                         unreachable=True, code=exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            if phase == "send":
                raise _by_code(exc.smtp_code, "server refused", exc.smtp_error) from None
            raise TemporaryDeliveryError(f"{where}: {phase}: {exc.smtp_code} {_text(exc.smtp_error)}",
                                         unreachable=True, code=exc.smtp_code) from None
        except smtplib.SMTPServerDisconnected as exc:
            if phase == "connect":  # smtplib reads the greeting inside connect()
                reason = (f"no greeting from the server within {s.timeout:g}s" if "timed out" in str(exc)
                          else "the server closed the connection before its greeting")
            else:
                reason = f"connection closed during {phase}: {exc}"
            raise TemporaryDeliveryError(f"{where}: {reason}", unreachable=phase != "send") from None
        except ConnectionRefusedError:
            raise TemporaryDeliveryError(f"{where}: connection refused", unreachable=True) from None
        except TimeoutError:
            raise TemporaryDeliveryError(f"{where}: timed out after {s.timeout:g}s during {phase}",
                                         unreachable=phase != "send") from None
        except ssl.SSLError as exc:
            raise TemporaryDeliveryError(f"{where}: TLS failed: {exc.reason or exc}",
                                         unreachable=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryDeliveryError(f"{where}: {phase} failed: {exc}",
                                         unreachable=phase != "send") from None
        finally:
            if smtp is not None:
                smtp.close()


@dataclass
class MaildirTransport:
    """Writes each message into a maildir: for dry runs, tests, and hosts without a mail server."""

    path: str
    name: str = "maildir"

    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> dict[str, Refusal]:
        try:
            os.makedirs(self.path, exist_ok=True)
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(self.path, sub), exist_ok=True)
            mailbox.Maildir(self.path, create=True).add(message)
        except OSError as exc:
            raise TemporaryDeliveryError(f"maildir {self.path}: {exc.strerror or exc}",
                                         unreachable=True) from None
        return {}


def smtp_password(settings: SmtpSettings, env: Mapping[str, str] | None = None,
                  base: str | None = None) -> str | None:
    """The SMTP password: smtp.password_file, else $MONITOR_SMTP_PASSWORD, else the systemd
    credential $CREDENTIALS_DIRECTORY/smtp-password. None when no username is set (no login).

    A source that is configured but unusable is an error naming the source, never a silent
    fallback to the next one: the operator meant that file.
    """
    env = os.environ if env is None else env
    if not settings.username:
        return None
    if settings.password_file:
        path = Path(settings.password_file)
        if not path.is_absolute() and base:
            path = Path(base) / path
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"smtp.password_file: cannot read {path}: {exc.strerror}") from None
        if not password:
            raise ConfigError(f"smtp.password_file: {path} is empty")
        return password
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / CREDENTIAL_NAME
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"smtp.username is set but the credential {path} cannot be read: "
                              f"{exc.strerror} (LoadCredential={CREDENTIAL_NAME}:...)") from None
        if password:
            return password
    raise ConfigError(f"smtp.username is set but no password was given: set smtp.password_file, "
                      f"{PASSWORD_ENV}, or a systemd credential named {CREDENTIAL_NAME}")


def maildir_path(settings: Settings) -> str | None:
    """Where digests go instead of SMTP: [digest] outbox, else "maildir" beside the database
    when no smtp.host is set, else None (SMTP)."""
    base = os.path.dirname(os.path.abspath(settings.config_path)) if settings.config_path else os.getcwd()
    if settings.digest.outbox:
        return os.path.join(base, os.path.expanduser(settings.digest.outbox))
    if not settings.smtp.host:
        db = settings.database if settings.database != ":memory:" else "monitor.db"
        return os.path.join(os.path.dirname(os.path.abspath(db)), "maildir")
    return None


def transport_for(settings: Settings, env: Mapping[str, str] | None = None) -> Transport:
    """The transport the configuration asks for. Reads the password only for SMTP with a username."""
    path = maildir_path(settings)
    if path is not None:
        return MaildirTransport(path)
    base = os.path.dirname(os.path.abspath(settings.config_path)) if settings.config_path else None
    return SmtpTransport(settings.smtp, smtp_password(settings.smtp, env, base))
