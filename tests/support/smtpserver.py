"""A real SMTP server on 127.0.0.1 (aiosmtpd) whose replies tests can script."""
from __future__ import annotations

import email
import socket
from email import policy

from aiosmtpd.controller import Controller

from monitor.config import SmtpSettings

SILENCE = 60.0  # seconds the silent server holds a connection without a word: far beyond any bound below


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    """Records what it accepted; replies can be scripted per recipient and for DATA."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                              or envelope.content))
        return "250 Message accepted for delivery"

    def parsed(self, n: int = -1) -> email.message.EmailMessage:
        return email.message_from_bytes(self.messages[n][2], policy=policy.default)


class SmtpServer:
    def __init__(self, **smtp_parameters) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **smtp_parameters)
        self.controller.start()

    def settings(self, **kw) -> SmtpSettings:
        return SmtpSettings(host="127.0.0.1", port=self.port, timeout=kw.pop("timeout", 5), **kw)

    def stop(self) -> None:
        if self.controller._thread is not None:
            self.controller.stop()

    def restart(self) -> None:
        """Back after an outage, on the same port, with the same record of messages."""
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
