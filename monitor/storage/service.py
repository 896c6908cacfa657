"""The service's own tables and the figures `monitor status` reads.

`service_state` is where the daemon records itself (state, pid, heartbeat) so that another
process (`monitor status`) can see it; `cycles` holds one row per polling cycle (written
by the feeds tables' start_cycle/finish_cycle). The counts here are the health view's, each
one query; core assembles them into a `Status`.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from monitor.storage.database import Store, iso, parse_iso, parse_stamp
from monitor.storage.outbox import MAIL
from monitor.types import CycleSummary, EntryCounts, OutboxCounts, SchedulerState


def record_service_state(store: Store, values: Mapping[str, str], now: datetime) -> None:
    """Set the daemon's state values (name -> value), in one transaction."""
    stamp = iso(now)
    with store.write():
        for name, value in values.items():
            store.execute("INSERT OR REPLACE INTO service_state (name, value, updated) VALUES (?, ?, ?)",
                          [name, value, stamp])


def scheduler_state(store: Store) -> SchedulerState:
    """What the daemon last recorded; "never started" when it never ran against this database."""
    values = {r["name"]: r["value"] for r in store.query("SELECT name, value FROM service_state")}
    pid = values.get("pid")
    return SchedulerState(state=values.get("state", "never started"),
                          pid=int(pid) if pid and pid.isdigit() else None,
                          heartbeat=parse_iso(values.get("heartbeat")))


def last_cycle(store: Store) -> CycleSummary | None:
    """The newest cycle that finished (completed or failed); None before the first."""
    rows = store.query("SELECT * FROM cycles WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1")
    if not rows:
        return None
    r = rows[0]
    return CycleSummary(started=parse_stamp(r["started"]), finished=parse_stamp(r["finished"]),
                        feeds=r["feeds"], fetched=r["fetched"], not_modified=r["not_modified"],
                        failed=r["failed"], new_entries=r["new_entries"],
                        updated_entries=r["updated_entries"], error=r["error"])


def next_poll_due(store: Store) -> datetime | None:
    """The earliest stored next_poll of the active feeds: when the daemon should look again.

    None when no active feed has one (a feed never polled has none: it is due now)."""
    return parse_iso(store.scalar("SELECT min(next_poll) FROM feeds WHERE disabled = 0"))


def entry_counts(store: Store, day_ago: datetime) -> EntryCounts:
    """Stored entries, and those first seen since `day_ago`."""
    return EntryCounts(total=store.scalar("SELECT count(*) FROM entries"),
                       last_24h=store.scalar("SELECT count(*) FROM entries WHERE first_seen >= ?",
                                             [iso(day_ago)]))


def outbox_counts(store: Store) -> OutboxCounts:
    """Digests in the outbox by status (all channels), and those of chat destinations apart."""
    counts = {status: (n, chat) for status, n, chat in store.execute(
        "SELECT status, count(*), sum(channel != ?) FROM digests GROUP BY status", [MAIL])}
    pending, failed, sent = (counts.get(status, (0, 0)) for status in ("pending", "failed", "sent"))
    return OutboxCounts(pending=pending[0], failed=failed[0], sent=sent[0], chat_pending=pending[1],
                        chat_failed=failed[1])
