"""The `monitor` command line: click commands, each a few lines over monitor.core.

Exit status: 0 success; 1 a failed operation; 2 a usage mistake; 74 the database cannot be
used; 78 the configuration is invalid (systemd's RestartPreventExitStatus uses it).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from monitor import __version__
from monitor.config import DEFAULT_CONFIG, load_settings
from monitor.core import Monitor, datasette_metadata_path, open_monitor, write_example_config
from monitor.display import Painted, Stages, ago, feed_state, paint, short_time, table
from monitor.errors import ConfigError, MonitorError, StorageError
from monitor.logs import setup_logging
from monitor.storage.database import iso, parse_iso
from monitor.types import ClusterDetail, ClusterSummary, JoinReason, SearchHit, Status

if TYPE_CHECKING:
    from monitor.digests import outbox

EXIT_FAILURE, EXIT_STORAGE, EXIT_CONFIG = 1, 74, 78


class MonitorGroup(click.Group):
    """Turns our errors into one line on stderr and a meaningful exit status; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(f"configuration error: {exc}", EXIT_CONFIG)
        except StorageError as exc:
            _fail(str(exc), EXIT_STORAGE)
        except MonitorError as exc:
            _fail(str(exc), EXIT_FAILURE)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    click.echo(f"{paint('monitor: error:', 'error')} {message}", err=True)
    sys.exit(code)


def json_option(fn: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def json_report(fn: Callable) -> Callable:
    """`--json` for commands that report what they did: one object, its keys documented in the README."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as one JSON object instead of text.")(fn)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


# -- JSON: Monitor's records as the contract in design.md spells them ------------------------
# One function per record kind whose JSON is not simply its fields in order, so the keys,
# their order and their nesting can be read here next to each other.


def _plain(record: Any) -> dict[str, Any]:
    """A flat record whose field names, in order, are its JSON keys: times in ISO 8601, tuples as lists."""
    return {f.name: _json_value(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _cluster_json(c: ClusterSummary) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": c.id, "title": c.title, "size": c.size, "outlets": list(c.outlets),
        "first_published": iso(c.first_published), "last_published": iso(c.last_published),
        "last_activity": iso(c.last_activity), "topics": list(c.topics)}
    if c.entries is not None:
        record["entries"] = [_plain(e) for e in c.entries]
    return record


def _why_json(why: JoinReason | None) -> dict[str, Any]:
    if why is None:
        return {"reason": "first report", "score": None}
    return {"reason": why.reason, **_plain(why)}


def _cluster_detail_json(d: ClusterDetail) -> dict[str, Any]:
    record = {**_cluster_json(d.cluster),
              "entries": [{**_plain(m.entry), "why": _why_json(m.why)} for m in d.members],
              "timeline": [_plain(p) for p in d.timeline],
              "merged_from": list(d.merged_from),
              "topic_matches": [_plain(t) for t in d.topic_matches]}
    if d.requested_id is not None:
        record["requested_id"] = d.requested_id
    return record


def _search_hit_json(h: SearchHit) -> dict[str, Any]:
    return {**_plain(h.entry), "snippet": h.snippet, "cluster": _plain(h.cluster) if h.cluster else None}


def _status_json(st: Status) -> dict[str, Any]:
    db = st.database
    return {"database": {"path": db.path, "bytes": db.size, "schema_version": db.schema_version},
            "feeds": _plain(st.feeds),
            "last_poll": iso(st.last_poll),
            "last_cycle": _plain(st.last_cycle) if st.last_cycle else None,
            "next_poll": iso(st.next_poll),
            "entries": _plain(st.entries),
            "clusters": _plain(st.clusters),
            "outbox": _plain(st.outbox),
            "scheduler": _plain(st.scheduler),
            "parser": {"feedparser": st.parser.feedparser, "fast_path": st.parser.fast_path,
                       "verified": list(st.parser.verified), "compiled_text": st.parser.compiled_text},
            "clustering": {"compiled": st.compiled_search}}


def with_monitor(create: bool = False, on_upgrade: Callable[[int, int], object] | None = None) -> Callable:
    """Open the Monitor for a command (creating/migrating the database only for writers)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        @click.pass_context
        def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
            opts = ctx.find_root().obj
            with open_monitor(opts["config"], opts["db"], create=create, on_upgrade=on_upgrade) as mon:
                return ctx.invoke(fn, mon, *args, **kwargs)

        return wrapper

    return decorate


@click.group(cls=MonitorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", metavar="PATH", help="SQLite database (env MONITOR_DB; default: monitor.db).")
@click.option("--config", metavar="PATH",
              help="Config file (env MONITOR_CONFIG; default: ./monitor.toml if present).")
@click.version_option(__version__, prog_name="monitor")
@click.pass_context
def cli(ctx: click.Context, db: str | None, config: str | None) -> None:
    """Poll news feeds, group reports of the same event across outlets, and email per-event digests."""
    ctx.obj = {"db": db, "config": config}


@cli.command()
@json_report
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the database and a commented example monitor.toml (never overwritten)."""
    opts = ctx.obj
    path = opts["config"] or os.environ.get("MONITOR_CONFIG") or DEFAULT_CONFIG
    wrote = write_example_config(path)
    settings = load_settings(path, opts["db"])
    with open_monitor(path, opts["db"], create=True) as mon:
        version = mon.store.schema_version()
    if as_json:
        emit_json({"config": {"path": path, "created": wrote},
                   "database": {"path": settings.database, "schema_version": version}})
        return
    click.echo(f"{'wrote' if wrote else 'kept existing'} {path}")
    click.echo(f"database {settings.database} ready (schema version {version})")


# -- feeds ------------------------------------------------------------------------------


@cli.group()
def feeds() -> None:
    """Manage the feeds that are polled."""


@feeds.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@json_report
@with_monitor(create=True)
def feeds_import(mon: Monitor, file: str, as_json: bool) -> None:
    """Add or update the feeds of an OPML file (idempotent; nested outlines become categories)."""
    counts, parsed = mon.import_opml_file(file)
    if as_json:  # the rejected outlines are in the object, not on stderr
        emit_json({"file": file, "added": counts["added"], "updated": counts["updated"],
                   "unchanged": counts["unchanged"], "rejected": len(parsed.rejected),
                   "rejections": [{"url": r.url, "title": r.title, "reason": r.reason}
                                  for r in parsed.rejected]})
        return
    click.echo(f"added {counts['added']}, updated {counts['updated']}, unchanged {counts['unchanged']}, "
               f"rejected {len(parsed.rejected)}")
    for r in parsed.rejected:
        label = f" ({r.title})" if r.title else ""
        click.echo(f"{paint('rejected', 'warning')} {r.url or '-'}{label}: {r.reason}", err=True)


@feeds.command("list")
@json_option
@with_monitor()
def feeds_list(mon: Monitor, as_json: bool) -> None:
    """List feeds with their health: last status, errors, next poll."""
    records = mon.feed_health()
    if as_json:
        emit_json([_plain(r) for r in records])
        return
    now = mon.clock()
    rows = []
    for r in records:
        state = feed_state(r.disabled, r.last_error, r.last_status)
        rows.append([r.title or "-", r.category or "-", state, r.error_count, ago(r.last_polled, now),
                     ago(r.next_poll, now) if not r.disabled else "-", r.entries, r.url])
    click.echo(table(["outlet", "category", "state", "errors", "polled", "next", "entries", "url"], rows,
                     flex=7, caps={0: 28, 1: 24, 2: 16}))
    click.echo(f"{len(records)} feeds")


@feeds.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@with_monitor()
def feeds_export(mon: Monitor, output: str | None) -> None:
    """Write the feeds as OPML (round-trips through `feeds import`)."""
    data = mon.export_opml()
    if output:
        with open(output, "wb") as fh:
            fh.write(data)
    else:
        click.echo(data.decode("utf-8"), nl=False)


@feeds.command("add")
@click.argument("url")
@click.option("--title", help="Outlet name.")
@click.option("--category", help="Category path, e.g. 'World/Middle East'.")
@json_report
@with_monitor(create=True)
def feeds_add(mon: Monitor, url: str, title: str | None, category: str | None, as_json: bool) -> None:
    """Add a feed, or re-enable a disabled one."""
    result = mon.add_feed(url, title, category)
    if as_json:
        emit_json({"url": url.strip(), "result": result})
        return
    click.echo(f"{result} {url.strip()}")


@feeds.command("remove")
@click.argument("url")
@json_report
@with_monitor(create=True)
def feeds_remove(mon: Monitor, url: str, as_json: bool) -> None:
    """Stop polling a feed (its stored entries are kept)."""
    if not mon.remove_feed(url):
        raise MonitorError(f"no active feed with URL {url}")
    if as_json:
        emit_json({"url": url.strip(), "removed": True})
        return
    click.echo(f"removed {url.strip()}")


# -- polling and the daemon ------------------------------------------------------------------


@cli.command()
@click.option("--all", "all_feeds", is_flag=True, help="Poll every feed, not only those that are due.")
@json_option
@with_monitor(create=True)
def poll(mon: Monitor, all_feeds: bool, as_json: bool) -> None:
    """Run one cycle now: fetch due feeds, store, cluster, match topics.

    Exits 0 when the cycle ran, even if some feeds failed (they are listed).
    """
    setup_logging(mon.settings.log.level)
    with Stages(Stages.wanted(as_json)) as stages:
        report = mon.poll(all_feeds=all_feeds,
                          on_start=lambda feeds: stages.start("polling", feeds),
                          progress=lambda _outcome: stages.advance(),
                          on_cluster_start=lambda n: stages.start(f"clustering {n} entries", n),
                          on_clustered=stages.reach)
    failures = [o for o in report.outcomes if o.error]
    if as_json:
        emit_json({**report.counts(), "feeds": report.feeds, "seconds": round(report.seconds, 3),
                   "errors": [{"url": o.feed.url, "status": o.status, "error": o.error, "detail": o.detail}
                              for o in failures]})
        return
    click.echo(f"{report.feeds} feeds: {report.fetched} fetched, {report.not_modified} not modified, "
               f"{report.failed} failed; {report.new} new and {report.updated} updated entries "
               f"in {report.seconds:.1f}s")
    for o in failures:
        detail = f" ({o.detail})" if o.detail else ""
        click.echo(f"{paint('failed', 'failing')} {o.feed.url}: {o.error}{detail}")


def _daemon_upgrading(from_version: int, to_version: int) -> None:
    from monitor.daemon import upgrading

    upgrading(from_version, to_version)


@cli.command()
@with_monitor(create=True, on_upgrade=_daemon_upgrading)
def run(mon: Monitor) -> None:
    """Run the daemon: scheduled polling and digests until SIGTERM/SIGINT.

    Feeds are synced at start from the `feeds` OPML file of the config, else from
    ./feeds.opml when there is one.
    """
    from monitor.daemon import Daemon

    setup_logging(mon.settings.log.level)
    synced = mon.sync_feeds()
    if synced:
        path, counts, rejected = synced
        click.echo(f"feeds from {path}: added {counts['added']}, updated {counts['updated']}, "
                   f"unchanged {counts['unchanged']}, rejected {rejected}", err=True)
    sys.exit(Daemon(mon).run())


@cli.command()
@click.option("--since", default="all", show_default=True,
              help="Rebuild entries published since (e.g. 30d, all).")
@json_report
@with_monitor(create=True)
def recluster(mon: Monitor, since: str, as_json: bool) -> None:
    """Rebuild cluster assignments (after a configuration change).

    Cluster ids stay stable where events do; ids that disappear resolve to the cluster
    that took their entries. Stop the daemon first or let it wait: this takes the write lock.
    """
    with Stages(Stages.wanted(as_json)) as stages:

        def on_start(entries: int | None) -> None:
            stages.start(f"reclustering {'' if entries is None else f'{entries} '}entries", entries)

        counts = mon.recluster(since, on_start=on_start, progress=stages.reach)
    if as_json:
        emit_json({"since": since, "entries": counts["entries"], "clusters": counts["clusters"],
                   "absorbed": counts["emptied"]})
        return
    click.echo(f"reclustered {counts['entries']} entries into {counts['clusters']} clusters "
               f"({counts['emptied']} old clusters absorbed)")


# -- clusters and search ---------------------------------------------------------------------


@cli.group()
def clusters() -> None:
    """Event clusters: reports of one event across outlets."""


@clusters.command("list")
@click.option("--since", default="7d", show_default=True,
              help="Last activity within (24h, 7d, all): when the cluster last gained a report, "
                   "not when its event began.")
@click.option("--topic", help="Only clusters matching this topic.")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="At least N entries.")
@click.option("--min-outlets", type=click.IntRange(min=1), default=1, show_default=True,
              help="At least N outlets.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many clusters.")
@json_option
@with_monitor()
def clusters_list(mon: Monitor, since: str, topic: str | None, min_size: int, min_outlets: int,
                  limit: int | None, as_json: bool) -> None:
    """List event clusters, newest activity first.

    `first` is when the event was first reported (its earliest report's publication time),
    `active` when the cluster last gained a report."""
    records = mon.clusters(since=since, topic=topic, min_size=min_size, min_outlets=min_outlets, limit=limit)
    if as_json:
        emit_json([_cluster_json(c) for c in records])
        return
    now = mon.clock()
    rows = [[c.id, len(c.outlets), c.size, ago(c.first_published, now), ago(c.last_activity, now),
             Painted(",".join(c.topics), "topic"), c.title] for c in records]
    click.echo(table(["id", "outlets", "size", "first", "active", "topics", "headline"], rows, flex=6))
    click.echo(f"{len(records)} clusters")


@clusters.command("show")
@click.argument("cluster_id", type=int)
@json_option
@with_monitor()
def clusters_show(mon: Monitor, cluster_id: int, as_json: bool) -> None:
    """One cluster: members, outlets, timeline, and why members joined."""
    detail = mon.cluster(cluster_id)
    if as_json:
        emit_json(_cluster_detail_json(detail))
        return
    c = detail.cluster
    if detail.requested_id is not None:
        click.echo(f"cluster {cluster_id} was merged into cluster {c.id}\n")
    click.echo(f"cluster {c.id}: {c.title}")
    click.echo(f"{c.size} reports from {len(c.outlets)} outlets, "
               f"first {short_time(c.first_published)}, last {short_time(c.last_published)}")
    if c.topics:
        click.echo("topics: " + ", ".join(f"{paint(t.topic, 'topic')} ({', '.join(t.terms)})"
                                          for t in detail.topic_matches))
    if detail.merged_from:
        click.echo("merged from: " + ", ".join(str(i) for i in detail.merged_from))
    click.echo("\ntimeline:")
    peak = max(p.reports for p in detail.timeline)
    for p in detail.timeline:
        bar = "#" * max(1, round(20 * p.reports / peak))
        new = f"  +{', '.join(p.new_outlets)}" if p.new_outlets else ""
        click.echo(f"  {p.period:<16} {bar:<20} {p.reports}{new}")
    click.echo("\nmembers:")
    previous = None
    for m in detail.members:
        e, why = m.entry, m.why
        click.echo(f"  [{e.id}] {short_time(e.published)}  {e.outlet}: {e.title}")
        if e.link:
            click.echo(f"        {e.link}")
        if why is not None and why.reason == "follow-up":
            # A report fetched late can be older than the incident it names: then it comes first.
            days = (e.published - previous).days if previous is not None else None
            when = (f"{days} day{'s' if days != 1 else ''} after the previous report" if days is not None
                    else "published before the reports it names")
            click.echo(f"        {paint('follow-up', 'follow_up')}, {when}; "
                       f"shared names: {', '.join(why.shared_terms[:8])}"
                       f" (with [{why.matched_entry_id}])")
            if why.also_matched:
                click.echo("        also named cluster " + ", ".join(str(i) for i in why.also_matched))
        elif why is None or why.score is None:
            click.echo("        first report")
        else:
            terms = ", ".join(why.shared_terms[:8])
            click.echo(f"        joined: score {why.score:.2f} with [{why.matched_entry_id}], "
                       f"{why.time_gap_hours}h apart; shared: {terms}")
        previous = e.published


@cli.command()
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@with_monitor()
def search(mon: Monitor, query: str, limit: int, as_json: bool) -> None:
    """Full-text search over entries (SQLite FTS5 syntax: AND, OR, NOT, "phrases", prefix*)."""
    hits = mon.search(query, limit)
    if as_json:
        emit_json([_search_hit_json(h) for h in hits])
        return
    rows = [[h.cluster.id if h.cluster else "-", short_time(h.entry.published), h.entry.outlet, h.entry.title]
            for h in hits]
    click.echo(table(["cluster", "published", "outlet", "title"], rows, flex=3))
    click.echo(f"{len(hits)} entries")


# -- topics and digests ----------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """Tracked topics."""


@topics.command("list")
@json_option
@with_monitor()
def topics_list(mon: Monitor, as_json: bool) -> None:
    """Show the configured topics with their matches and outbox state."""
    summaries = mon.topic_summaries()
    records = [{"name": t.topic.name, "title": t.topic.title, "query": t.topic.query,
                "recipients": list(t.topic.recipients), "schedule": t.topic.schedule,
                "min_outlets": t.topic.min_outlets, "matches": t.matches,
                "last_matched": iso(t.last_matched), "last_digest": iso(t.last_digest), "pending": t.pending,
                "deliveries": [{"channel": d.channel, "destination": d.destination,
                                "last_sent": iso(d.last_sent),
                                "sent": d.sent, "pending": d.pending, "failed": d.failed,
                                "last_error": d.last_error} for d in t.deliveries]}
               for t in summaries]
    if as_json:
        emit_json(records)
        return
    now = mon.clock()
    rows = [[r["name"], r["schedule"], len(r["recipients"]),
             sum(d["channel"] == "chat" for d in r["deliveries"]), r["matches"],
             ago(parse_iso(r["last_matched"]), now), ago(parse_iso(r["last_digest"]), now), r["pending"],
             r["query"]] for r in records]
    click.echo(table(["topic", "schedule", "recipients", "chat", "matches", "matched", "digest", "pending",
                      "query"], rows, flex=8))
    click.echo(f"{len(records)} topics")
    for r in records:
        for d in r["deliveries"]:
            failed = paint(f"{d['failed']} failed", "failing" if d["failed"] else None)
            error = f"; last error: {d['last_error']}" if d["last_error"] else ""
            last = ago(parse_iso(d["last_sent"]), now)
            click.echo(f"  {r['name']} -> {d['destination']}: last sent {last}, "
                       f"{d['sent']} sent, {d['pending']} pending, {failed}{error}")


@topics.command("test")
@click.argument("name")
@click.option("--since", default="7d", show_default=True, help="Clusters active within (24h, 7d, all).")
@json_option
@with_monitor()
def topics_test(mon: Monitor, name: str, since: str, as_json: bool) -> None:
    """Preview which clusters a topic matches now (writes nothing): tune a query before saving it."""
    matches = mon.test_topic(name, since)
    records = [{"cluster_id": m.cluster_id, "title": m.headline, "outlets": list(m.outlets),
                "entry_ids": list(m.entry_ids), "terms": list(m.terms), "last_activity": iso(m.last_activity)}
               for m in matches]
    if as_json:
        emit_json(records)
        return
    rows = [[r["cluster_id"], len(r["outlets"]), ", ".join(r["terms"][:6]), r["title"]] for r in records]
    click.echo(table(["cluster", "outlets", "matched terms", "headline"], rows, flex=3))
    click.echo(f"{len(records)} clusters match {name}")


@cli.group()
def digest() -> None:
    """Topic digests: one item per event, sent on each topic's schedule."""


@digest.command("preview")
@click.option("--topic", help="Only this topic.")
@json_option
@with_monitor()
def digest_preview(mon: Monitor, topic: str | None, as_json: bool) -> None:
    """Print what would be sent now (writes nothing), and what waits in the outbox."""
    every = mon.preview_digests(topic)
    from monitor.digests import outbox

    drafts = [d for d in every if isinstance(d, outbox.Draft)]
    chats = [d for d in every if isinstance(d, outbox.ChatDraft)]
    queued = [q for q in outbox.outbox_entries(mon.store) if not topic or q.topic == topic]
    if as_json:
        emit_json({"drafts": [{"topic": d.topic.name, "subject": d.subject, "recipients": list(d.recipients),
                               "items": [{"cluster_id": i.cluster_id, "kind": i.kind, "headline": i.headline,
                                          "lead": i.lead} for i in d.plan.items],
                               "text": _text_part(d)} for d in drafts],
                   "chat": [{"topic": c.topic.name, "destination": c.destination, "title": c.message.title,
                             "text": c.message.body,
                             "items": [{"cluster_id": i.cluster_id, "kind": i.kind, "headline": i.headline}
                                       for i in c.plan.items]} for c in chats],
                   "outbox": [{"id": q.id, "topic": q.topic, "channel": _channel(q.channel),
                               "subject": q.subject, "status": q.status, "attempts": q.attempts,
                               "last_error": q.last_error, "next_attempt": iso(q.next_attempt),
                               "recipients": q.recipients}
                              for q in queued]})
        return
    if not every:
        click.echo("nothing to send now")
    for d in drafts:
        click.echo(f"To: {', '.join(d.recipients)}\nSubject: {d.subject}\n")
        click.echo(_text_part(d))
    for c in chats:
        click.echo(f"Chat: {c.destination}\nTitle: {c.message.title}\n")
        click.echo(c.message.body + "\n")
    for q in queued:
        where = q.topic if _channel(q.channel) == "mail" else f"{q.topic} to {', '.join(q.recipients)}"
        click.echo(f"outbox: digest {q.id} ({where}) {q.status}, {q.attempts} attempts"
                   + (f", last error: {q.last_error}" if q.last_error else ""))


def _text_part(d: outbox.Draft) -> str:
    part = d.message.get_body(("plain",))
    return str(part.get_content()) if part is not None else ""


def _channel(channel: str) -> str:
    """A digest's channel as scripts see it: "mail" or "chat" (the stored hash names no one)."""
    return "mail" if channel == "mail" else "chat"


@digest.command("send")
@click.option("--topic", help="Only this topic.")
@json_report
@with_monitor(create=True)
def digest_send(mon: Monitor, topic: str | None, as_json: bool) -> None:
    """Send what is due now (and retry what waits in the outbox)."""
    created, report = mon.send_digests(topic)
    if as_json:
        emit_json({"queued": len(created), "queued_ids": list(created), "sent": report.count("sent"),
                   "deferred": report.count("pending"), "failed": report.count("failed"),
                   "outcomes": [{"digest_id": o.digest_id, "topic": o.topic, "channel": _channel(o.channel),
                                 "status": o.status, "message_id": o.message_id, "accepted": list(o.accepted),
                                 "refused": dict(o.refused), "error": o.error,
                                 "next_attempt": iso(o.next_attempt)} for o in report.outcomes],
                   "stopped": report.stopped})
        return
    click.echo(f"queued {len(created)} digests; sent {report.count('sent')}, "
               f"deferred {report.count('pending')}, failed {report.count('failed')}")
    for o in report.outcomes:
        if o.status != "sent" or o.refused:
            detail = o.error or "; ".join(f"{r}: {e}" for r, e in o.refused.items())
            role = "failing" if o.status == "failed" else "warning"
            click.echo(f"digest {o.digest_id} ({o.topic}) {paint(o.status, role)}: {detail}")
    if report.stopped:
        click.echo(f"{paint('stopped', 'warning')}: {report.stopped}")


@cli.command()
@json_option
@with_monitor()
def status(mon: Monitor, as_json: bool) -> None:
    """Health: feeds ok/failing, last and next poll, counts, outbox, scheduler."""
    st = mon.status()
    if as_json:
        emit_json(_status_json(st))
        return
    now = mon.clock()
    f, db, sched = st.feeds, st.database, st.scheduler
    failing = paint(f"{f.failing} failing", "failing" if f.failing else None)
    lines = [
        ("feeds", f"{f.active} active ({f.ok} ok, {failing}, "
                  f"{f.never_polled} never polled, {f.due_now} due now), {f.disabled} disabled"),
        ("last poll", ago(st.last_poll, now)),
        ("next poll", ago(st.next_poll, now)),
        ("entries", f"{st.entries.total} stored, {st.entries.last_24h} in the last 24h"),
        ("clusters", f"{st.clusters.total} events, {st.clusters.active_24h} active in the last 24h"),
        ("outbox", f"{st.outbox.pending} pending, {st.outbox.failed} failed, {st.outbox.sent} sent"
                   + _chat_counts(st)),
        ("database", f"{db.path} ({db.size / 1e6:.1f} MB, schema {db.schema_version})"),
        ("parser", _parser_line(st)),
        ("clustering", "compiled index, search and reading" if st.compiled_search else
         paint("index, search and reading in Python (built without a C compiler): clustering runs "
               "slower; reinstall with one", "warning")),
        ("scheduler", f"{sched.state}"
                      + (f", pid {sched.pid}, heartbeat {ago(sched.heartbeat, now)}"
                         if sched.heartbeat else "")),
    ]
    click.echo("\n".join(f"{k:<10} {v}" for k, v in lines))


def _chat_counts(st: Status) -> str:
    """ (chat: 1 pending, 2 failed): the chat and webhook deliveries among the outbox's digests."""
    o = st.outbox
    if not (o.chat_pending or o.chat_failed):
        return ""
    failed = paint(f"{o.chat_failed} failed", "failing" if o.chat_failed else None)
    return f" (chat: {o.chat_pending} pending, {failed})"


def _parser_line(st: Status) -> str:
    p = st.parser
    text = "" if p.compiled_text else paint(
        "; text in Python (built without a C compiler): parsing runs slower; reinstall with one", "warning")
    if p.fast_path:
        return f"feedparser {p.feedparser}, fast path on" + text
    compared = ", ".join(p.verified) or "none"
    return paint(f"feedparser {p.feedparser}, fast path OFF (compared with {compared}): "
                 "polls parse several times slower; install a compared release", "warning") + text


@cli.command("datasette-metadata")
def datasette_metadata() -> None:
    """Print the path of the datasette metadata file shipped with monitor.

    Browse the database with labels, descriptions and facets:

    \b
        datasette monitor.db --metadata "$(monitor datasette-metadata)"
    """
    click.echo(datasette_metadata_path())


def main() -> None:
    _run_as_module()
    try:
        cli(prog_name="monitor")
    except SystemExit as exc:  # click's standalone mode always ends this way
        _end(exc.code)
    _end(0)


def _end(code: str | int | None) -> NoReturn:
    """End the process once a command is done, without tearing the interpreter down.

    A command closes what it opened (the database, the parse and weighing workers); what is
    left is freeing the heap object by object: the clustering state and the caches of the
    modules, some 80 ms after a first poll of the real corpus and 25-45 ms of an all-304
    poll's 0.4 s. So the output and the logs are flushed and the process exits. Workers
    still running end when their pipes close. Threads other than daemon threads still
    running get the usual exit, which waits for them.
    """
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): the message goes to stderr, as the interpreter would print it
        print(code, file=sys.stderr)
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): the interpreter's status for it
            status = status or 120
    os._exit(status)


def _run_as_module() -> None:
    """Let the `monitor` script count as `python -m monitor` for the worker processes.

    A process started by "forkserver" or "spawn" first runs the parent's __main__: the module
    named by __main__.__spec__, or else the file. A module named `*.__main__` is skipped, so
    `python -m monitor` costs a worker nothing, but the installed script is a file and would be
    run again in every worker, importing the CLI with click and everything behind it before the
    worker could take its first task. The script only imports this function and calls it, so
    naming it monitor.__main__ changes nothing else.
    """
    script = sys.modules.get("__main__")
    if script is not None and script.__spec__ is None and getattr(script, "main", None) is main:
        script.__spec__ = importlib.util.find_spec("monitor.__main__")
