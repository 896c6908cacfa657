"""Crashes: `kill -9` at chosen and random moments of every stage, and SIGTERM at random moments.

tests/support/scenarios.py has the scenarios; bench/crash.py runs them for longer (`--kills 200`).
The topic has a mail recipient (aiosmtpd) and a chat destination (a json:// webhook on
127.0.0.1); `digest send` is killed at the SMTP server's "250", at the webhook's receipt
of a message (before its "200"), with a request in flight that the webhook then drops,
right after its "200", just after queueing and at random moments. After every kill the
database must pass `PRAGMA integrity_check`, every feed's entries and state must be all
there or not there, memberships must never point at merged-away clusters, and, per
channel (mail, chat), no two digests may carry the same cluster unless it grew, every
digest marked sent was received and everything received is a stored digest. After a
final clean poll and send: every published entry stored exactly once and clustered,
every entry matching the topic in a matched cluster, every matched cluster in a mail
digest and in a chat digest, every digest of both received, and duplicates only from
kills in the documented window (the server had accepted the message, the database had
not yet recorded it): at most one per such kill, message by message.
"""
from __future__ import annotations

import pytest

from tests.support.scenarios import crash_run, sigterm_run

pytestmark = pytest.mark.slow


def test_kill9_twenty_times_across_every_stage_loses_nothing(tmp_path):
    figures = crash_run(tmp_path, feeds=200, kills=20, seed=3, log=lambda line: None)
    assert figures["problems"] == [], "\n".join(figures["problems"][:40])
    assert figures["kills"] >= 20, figures
    landed = figures["landed"]
    assert landed.get("digest: after the server accepted", 0) >= 1, landed
    assert landed.get("digest: after the webhook accepted", 0) >= 1, landed
    assert landed.get("digest: webhook request in flight, not taken", 0) >= 1, landed
    assert sum(n for where, n in landed.items() if where.startswith("daemon")) >= 1, landed
    assert len({where for where in landed if not where.startswith(("digest", "daemon"))}) >= 3, landed
    assert figures["entries"] == figures["published"]
    # a message is received twice only when a kill fell between the server's "250" and the
    # database's "sent": at most one per such kill, and it has the same Message-ID
    window = sum(n for where, n in landed.items()
                 if where in ("digest: after the server accepted", "digest: queued, not recorded as sent")
                 or where.startswith("daemon"))
    assert figures["duplicates"] <= window, figures
    # chat as mail: every digest delivered (the problems above say which was not), and a message
    # posted twice only after a kill that found the webhook had it and the database did not say sent
    assert figures["chat_digests"] >= 1 and figures["chat_received"] >= figures["chat_digests"], figures
    chat_window = sum(n for where, n in figures["in_window"].items() if where.startswith("chat"))
    assert chat_window >= 1, figures
    assert figures["chat_duplicates"] <= chat_window, figures
    assert figures["orphans"] == 0  # parse workers do not outlive a killed poll


def test_sigterm_at_random_moments_always_exits_0(tmp_path):
    figures = sigterm_run(tmp_path, feeds=100, stops=6, seed=5, log=lambda line: None)
    assert figures["problems"] == [], "\n".join(figures["problems"][:20])
    assert figures["exit_codes"] == {"0": 6}
