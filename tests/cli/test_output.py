"""What people and programs see: colour and progress on a terminal only, one JSON object from every
command that reports something, shell completion, and the datasette metadata path.

A terminal is a real pseudo-terminal (the `pty` module) around the installed `monitor` entry point,
fed by loopback feeds; a pipe is a real pipe. Colour is also checked in-process with click's runner:
`color=True` is what a terminal gets, `color=False` what a pipe or a file gets.
"""
from __future__ import annotations

import fcntl
import json
import mailbox
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

import monitor
from monitor.cli import cli
from tests.cli.test_clusters import serve_corpus
from tests.cli.test_followups import CHARGED, NAMED, SHOT, Newsroom
from tests.support import DATA
from tests.support.corpus import CORPUS
from tests.support.loopback import send

SGR = re.compile(rb"\x1b\[[0-9;]*m")  # a colour or style code (progress bars draw with \r and cursor codes)
ESC = b"\x1b"
# The console script `pip install` made (pyproject.toml: [project.scripts]), next to this interpreter.
ENTRY_POINT = [str(Path(sys.executable).with_name("monitor"))]
# A `--since` whose cutoff falls before the corpus slice (published October to December 2016).
BEFORE_CORPUS = f"{(datetime.now(UTC) - datetime(2016, 9, 1, tzinfo=UTC)).days}d"
OUTLETS = len({a["outlet"] for a in CORPUS})  # one feed each
TOPIC = '''
[[topics]]
name = "telegram-arrests"
title = "Telegram arrests"
query = 'telegram AND arrest*'
recipients = ["desk@example.org"]
schedule = "immediate"
'''


def styled(text: str) -> str:
    """A pattern for `text` in some colour or style, reset right after it."""
    return r"(?:\x1b\[[0-9;]*m)+" + re.escape(text) + r"\x1b\[0m"


class Seen(NamedTuple):
    code: int
    out: bytes
    err: bytes


def monitor_on(run, *args: str, tty: tuple[str, ...] = (), env: dict[str, str] | None = None,
               timeout: float = 120, term_after: bytes | None = None) -> Seen:
    """Run the `monitor` entry point with its stdout and/or stderr on a pseudo-terminal (those named in
    `tty`; the others on pipes) and return everything it wrote to each. `term_after`: send SIGTERM once
    stderr shows this (the daemon)."""
    ours: dict[str, int] = {}
    theirs: dict[str, int] = {}
    for name in ("stdout", "stderr"):
        if name in tty:
            ours[name], theirs[name] = pty.openpty()
            fcntl.ioctl(theirs[name], termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        else:
            ours[name], theirs[name] = os.pipe()
    child_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    child_env.update(env or {})
    argv = [*ENTRY_POINT, "--db", str(run.db), "--config", str(run.config), *args]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=theirs["stdout"], stderr=theirs["stderr"],
                            cwd=run.workdir, env=child_env)
    for fd in theirs.values():
        os.close(fd)
    got = {name: bytearray() for name in ours}
    reading = {fd: name for name, fd in ours.items()}
    deadline = time.monotonic() + timeout
    try:
        while reading:
            left = deadline - time.monotonic()
            assert left > 0, f"monitor {' '.join(args)} did not finish within {timeout}s"
            ready, _, _ = select.select(list(reading), [], [], left)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the last writer of a pseudo-terminal closed it
                    data = b""
                if data:
                    got[reading[fd]] += data
                    if term_after and term_after in got["stderr"] and proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                        term_after = None
                else:
                    os.close(fd)
                    del reading[fd]
    finally:
        for fd in reading:
            os.close(fd)
        if proc.poll() is None:
            proc.kill()
    return Seen(proc.wait(timeout), bytes(got["stdout"]), bytes(got["stderr"]))


def coloured(run, *args: str, color: bool = True, env: dict[str, str] | None = None):
    """`monitor ARGS` in-process as on a terminal (color=True) or a pipe (color=False)."""
    argv = ["--db", str(run.db), "--config", str(run.config), *args]
    return run.runner.invoke(cli, argv, color=color, env={"NO_COLOR": None, **(env or {})},
                             catch_exceptions=False)


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def newsdesk(run):
    """The corpus slice (36 reports, 6 events) served as feeds, plus one feed that answers 500."""
    server = serve_corpus(run)
    server.routes["/broken.xml"] = lambda h: send(h, 500, b"oops", "text/plain")
    run("feeds", "add", server.url("/broken.xml"))
    run.broken = server.url("/broken.xml")
    run.server = server
    yield run
    server.close()


# -- progress and colour on a terminal, nothing on a pipe ----------------------------------------------


@pytest.mark.parametrize("tty, env, bars, colour", [
    (("stdout", "stderr"), {}, True, True),
    ((), {}, False, False),
    (("stderr",), {}, True, False),  # `monitor poll | tee log`: the person still sees the stages
    (("stdout", "stderr"), {"NO_COLOR": "1"}, True, False),
], ids=["terminal", "pipe", "stdout-piped", "NO_COLOR"])
def test_poll_shows_both_stages_on_a_terminal_and_colour_unless_piped_or_no_color(newsdesk, tty, env, bars,
                                                                                   colour):
    """README: `poll` shows its progress on a terminal: the feeds, then the clustering of the new
    entries (36, the corpus slice) to its end; nothing on a pipe. A failed feed is coloured on a
    terminal, never on a pipe nor with NO_COLOR; the summary line is the same everywhere."""
    seen = monitor_on(newsdesk, "poll", tty=tty, env=env)
    assert seen.code == 0, seen
    out = seen.out.replace(b"\r\n", b"\n")
    summary = f"{OUTLETS + 1} feeds: {OUTLETS} fetched, 0 not modified, 1 failed; 36 new and 0 updated"
    assert summary.encode() in out
    assert query(newsdesk.db, "SELECT count(*) FROM entries") == [(len(CORPUS),)]
    if bars:
        assert re.search(rb"polling\s+\[#+\]\s+100%", seen.err), seen.err
        stage = re.search(rb"clustering 36 entries\s+\[#+\]\s+100%", seen.err)
        assert stage, seen.err
        assert seen.err.index(b"polling") < stage.start()  # the clustering stage follows the feeds
    else:
        assert b"polling" not in seen.err and b"clustering" not in seen.err and b"\r" not in seen.err
    assert b"clustering" not in seen.out  # progress is never on stdout
    failed = f"failed {newsdesk.broken}: http_500".encode()
    assert failed in SGR.sub(b"", out)
    if colour:
        painted = styled("failed") + " " + re.escape(newsdesk.broken)
        assert re.search(painted.encode(), out), out
    else:
        assert not SGR.search(seen.out) and not SGR.search(seen.err)
        if not tty:
            assert ESC not in seen.out + seen.err


def test_poll_json_on_a_terminal_is_json_alone(newsdesk):
    """--json on a terminal: stdout parses as the JSON `poll` documents, and no bar is drawn."""
    seen = monitor_on(newsdesk, "poll", "--json", tty=("stdout", "stderr"))
    assert seen.code == 0, seen
    report = json.loads(seen.out)
    assert (report["feeds"], report["new"], report["failed"]) == (OUTLETS + 1, len(CORPUS), 1)
    assert [e["url"] for e in report["errors"]] == [newsdesk.broken]
    assert ESC not in seen.out
    # stderr keeps its log lines (a failed feed is a warning), and only them
    assert b"polling" not in seen.err and b"clustering" not in seen.err
    assert b"\r" not in seen.err.replace(b"\r\n", b"\n") and ESC not in seen.err


def test_recluster_shows_progress_on_a_terminal_only(newsdesk):
    """`recluster` counts the entries it decides on a terminal: out of every stored entry for the
    default `--since all`, as a running count for a cutoff; on a pipe or with --json, nothing."""
    newsdesk("poll")
    seen = monitor_on(newsdesk, "recluster", tty=("stdout", "stderr"))
    assert seen.code == 0, seen
    assert b"reclustered 36 entries into 6 clusters (0 old clusters absorbed)" in seen.out
    assert re.search(rb"reclustering 36 entries\s+\[#+\]\s+100%", seen.err), seen.err
    cutoff = monitor_on(newsdesk, "recluster", "--since", BEFORE_CORPUS, tty=("stderr",))
    assert cutoff.code == 0, cutoff
    assert re.search(rb"reclustering entries\s+\[.*\]\s+36\b", cutoff.err), cutoff.err
    for args, tty in ((("recluster",), ()), (("recluster", "--json"), ("stdout", "stderr"))):
        quiet = monitor_on(newsdesk, *args, tty=tty)
        assert quiet.code == 0, quiet
        assert b"reclustering" not in quiet.err and b"\r" not in quiet.err and ESC not in quiet.out


def test_the_daemon_draws_no_progress_even_on_a_terminal(newsdesk):
    """`monitor run` polls and clusters through the same Monitor.poll, but its stderr is a log: one
    key=value line per event, without bars or colour, even when that stderr is a terminal."""
    seen = monitor_on(newsdesk, "run", tty=("stdout", "stderr"), term_after=b"event=cycle_done")
    assert seen.code == 0, seen
    lines = seen.err.decode().split("\r\n")
    assert any("event=cycle_done" in line and "new=36" in line for line in lines), lines
    assert all(line.startswith("time=") for line in lines if line), lines
    assert b"\r" not in seen.err.replace(b"\r\n", b"") and ESC not in seen.err + seen.out


def test_a_failing_feed_is_coloured_on_a_terminal_only(newsdesk):
    """`feeds list` and `status` colour the failing feed on a terminal; a pipe, `--json` and NO_COLOR
    (any non-empty value; an empty one is unset) get the same text without any code. Colour never
    moves a column (a second failing feed makes the state column wider than the coloured cell)."""
    newsdesk.server.routes["/page.html"] = lambda h: send(h, 200, b"<html><body>hi</body></html>",
                                                           "text/html")
    newsdesk("feeds", "add", newsdesk.server.url("/page.html"))
    newsdesk("poll")
    # The tables below are drawn one after another and compared: their "polled" and "next" times
    # must not depend on the second each is drawn in, so they are made days old.
    with closing(sqlite3.connect(newsdesk.db)) as conn, conn:
        conn.execute("UPDATE feeds SET last_polled = '2026-01-01T00:00:00+00:00',"
                     " next_poll = '2026-01-02T00:00:00+00:00'")
    table = coloured(newsdesk, "feeds", "list").stdout
    broken = next(line for line in table.splitlines() if newsdesk.broken in line)
    assert re.search(styled("http_500"), broken), broken
    page = next(line for line in table.splitlines() if "/page.html" in line)
    assert re.search(styled("not_a_feed"), page), page
    assert all("\x1b" not in line for line in table.splitlines() if line not in (broken, page))
    plain = coloured(newsdesk, "feeds", "list", color=False).stdout
    assert "\x1b" not in plain and SGR.sub(b"", table.encode()).decode() == plain
    assert coloured(newsdesk, "feeds", "list", env={"NO_COLOR": "1"}).stdout == plain
    assert coloured(newsdesk, "feeds", "list", env={"NO_COLOR": ""}).stdout == table
    assert "\x1b" not in coloured(newsdesk, "feeds", "list", "--json").stdout
    status = coloured(newsdesk, "status").stdout
    assert re.search(styled("2 failing"), status), status
    assert "\x1b" not in coloured(newsdesk, "status", env={"NO_COLOR": "yes"}).stdout
    assert "\x1b" not in coloured(newsdesk, "status", "--json").stdout


def test_errors_are_coloured_on_a_terminal_and_still_one_line(run):
    run("init")
    on_tty = coloured(run, "feeds", "remove", "https://nope.example/")
    assert on_tty.exit_code == 1 and re.match(styled("monitor: error:") + " ", on_tty.stderr)
    piped = coloured(run, "feeds", "remove", "https://nope.example/", color=False)
    assert piped.exit_code == 1 and piped.stdout == ""
    assert piped.stderr == "monitor: error: no active feed with URL https://nope.example/\n"
    assert SGR.sub(b"", on_tty.stderr.encode()).decode() == piped.stderr
    no_color = coloured(run, "feeds", "remove", "https://nope.example/", env={"NO_COLOR": "1"})
    assert no_color.stderr == piped.stderr


def test_a_topic_match_is_coloured_in_clusters_list(run):
    """The rows of clusters that matched a topic show the topic in colour on a terminal; the others have
    no colour at all, and the table without colour is the table a pipe gets."""
    server = serve_corpus(run, TOPIC)
    try:
        run("poll")
    finally:
        server.close()
    matched = {c["id"] for c in run.json("clusters", "list", "--since", "all", "--topic", "telegram-arrests")}
    assert matched and len(matched) < 6
    # The two tables compared below must not depend on the second each is drawn in: the
    # clusters' activity (shown as "Ns ago") is made days old.
    with closing(sqlite3.connect(run.db)) as conn, conn:
        conn.execute("UPDATE clusters SET last_activity = '2026-01-01T00:00:00+00:00'")
    table = coloured(run, "clusters", "list", "--since", "all").stdout
    rows = {int(line.split()[0]): line for line in table.splitlines()[1:-1]}
    assert len(rows) == 6
    for cid, line in rows.items():
        if cid in matched:
            assert re.search(styled("telegram-arrests"), line), line
        else:
            assert "\x1b" not in line, line
    plain = coloured(run, "clusters", "list", "--since", "all", color=False).stdout
    assert "\x1b" not in plain and SGR.sub(b"", table.encode()).decode() == plain


def test_a_follow_up_is_coloured_in_clusters_show(run):
    news = Newsroom(run)
    try:
        news.publish(SHOT, NAMED)
        news.poll()
        news.publish(CHARGED)
        news.poll()
    finally:
        news.close()
    [incident] = [c["id"] for c in run.json("clusters", "list", "--since", "all")
                  if CHARGED.guid in {e["guid"] for e in c["entries"]}]
    shown = coloured(run, "clusters", "show", str(incident)).stdout
    line = next(x for x in shown.splitlines() if "follow-up" in x)
    assert re.match(r"\s+" + styled("follow-up") + r", \d+ days after", line), line
    plain = coloured(run, "clusters", "show", str(incident), color=False).stdout
    assert "\x1b" not in plain and SGR.sub(b"", shown.encode()).decode() == plain


# -- one JSON object from every command that reports something -------------------------------------


def test_init_json(run, workdir):
    """`init --json`: the config file written or kept, the database and its schema version."""
    first = json.loads(run("init", "--json").stdout)
    [(migrations,)] = query(run.db, "SELECT count(*) FROM _sqlite_migrations")
    assert first == {"config": {"path": "monitor.toml", "created": True},
                     "database": {"path": str(run.db), "schema_version": migrations}}
    assert (workdir / "monitor.toml").read_text().startswith("# monitor configuration")
    again = json.loads(run("init", "--json").stdout)  # the fixture now names the file: --config PATH
    assert again["config"] == {"path": str(run.config), "created": False}


def test_feeds_import_json(run):
    """`feeds import --json`: the counts of the text line, and each rejected outline (in the object, not on
    stderr) with its URL, title and reason."""
    result = run("feeds", "import", str(DATA / "opml_nested.opml"), "--json")
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert list(report) == ["file", "added", "updated", "unchanged", "rejected", "rejections"]
    assert (report["file"], report["added"], report["updated"], report["unchanged"], report["rejected"]) == \
        (str(DATA / "opml_nested.opml"), 4, 0, 0, 7)
    assert len(report["rejections"]) == 7
    assert all(list(r) == ["url", "title", "reason"] and r["reason"] for r in report["rejections"])
    assert {"file:///etc/passwd", "javascript:alert(1)"} <= {r["url"] for r in report["rejections"]}
    assert len(query(run.db, "SELECT id FROM feeds")) == 4
    again = json.loads(run("feeds", "import", str(DATA / "opml_nested.opml"), "--json").stdout)
    assert (again["added"], again["unchanged"], again["rejected"]) == (0, 4, 7)


def test_feeds_add_remove_json(run):
    """`feeds add --json` says added, exists or enabled; `feeds remove --json` that the feed was removed;
    a refused or unknown feed is still one line on stderr with exit 1, and no JSON."""
    url = "https://x.example/rss"
    assert json.loads(run("feeds", "add", url, "--json").stdout) == {"url": url, "result": "added"}
    assert query(run.db, "SELECT disabled FROM feeds WHERE url = ?", url) == [(0,)]
    assert json.loads(run("feeds", "add", f" {url} ", "--json").stdout) == {"url": url, "result": "exists"}
    assert json.loads(run("feeds", "remove", url, "--json").stdout) == {"url": url, "removed": True}
    assert query(run.db, "SELECT disabled, disabled_reason FROM feeds WHERE url = ?", url) == [(1, "removed")]
    assert json.loads(run("feeds", "add", url, "--json").stdout) == {"url": url, "result": "enabled"}
    assert query(run.db, "SELECT disabled FROM feeds WHERE url = ?", url) == [(0,)]
    for args in (("remove", "https://nope.example/"), ("add", "file:///etc/passwd")):
        bad = run("feeds", *args, "--json", ok=False)
        assert bad.exit_code == 1 and bad.stdout == ""
        assert bad.stderr.startswith("monitor: error: ") and bad.stderr.count("\n") == 1


def test_recluster_json(newsdesk):
    newsdesk("poll")
    report = json.loads(newsdesk("recluster", "--json").stdout)
    [(members,)] = query(newsdesk.db, "SELECT count(*) FROM memberships")
    [(live,)] = query(newsdesk.db, "SELECT count(*) FROM clusters WHERE merged_into IS NULL AND size > 0")
    assert report == {"since": "all", "entries": members, "clusters": live, "absorbed": 0}
    assert (members, live) == (len(CORPUS), 6)
    partial = json.loads(newsdesk("recluster", "--since", BEFORE_CORPUS, "--json").stdout)
    assert partial == {"since": BEFORE_CORPUS, "entries": len(CORPUS), "clusters": 6, "absorbed": 0}


def polled_with_topic(run, config: str = "") -> None:
    server = serve_corpus(run, TOPIC + config)
    try:
        run("poll")
    finally:
        server.close()


def test_digest_send_json(run, workdir):
    """`digest send --json`: what was queued (with the digest ids), sent, deferred and failed, and each
    digest's outcome as stored (no [smtp] host: the digest is written to the maildir outbox)."""
    polled_with_topic(run)
    report = json.loads(run("digest", "send", "--json").stdout)
    [(digest_id, message_id, status)] = query(run.db, "SELECT id, message_id, status FROM digests")
    assert list(report) == ["queued", "queued_ids", "sent", "deferred", "failed", "outcomes", "stopped"]
    assert (report["queued"], report["queued_ids"], report["sent"], report["deferred"], report["failed"],
            report["stopped"]) == (1, [digest_id], 1, 0, 0, None)
    [outcome] = report["outcomes"]
    assert list(outcome) == ["digest_id", "topic", "channel", "status", "message_id", "accepted", "refused",
                             "error", "next_attempt"]
    assert outcome["channel"] == "mail"
    assert (outcome["digest_id"], outcome["topic"], outcome["status"], outcome["message_id"]) == \
        (digest_id, "telegram-arrests", status, message_id)
    assert status == "sent" and outcome["refused"] == {} and outcome["error"] is None
    [mail] = mailbox.Maildir(workdir / "maildir", create=False)
    assert mail["Message-ID"] == message_id
    nothing = json.loads(run("digest", "send", "--json").stdout)
    assert (nothing["queued"], nothing["queued_ids"], nothing["sent"], nothing["outcomes"]) == (0, [], 0, [])


def test_digest_send_json_when_the_server_is_unreachable(run):
    """The digest is queued and deferred; the outcome carries the error and the next attempt as stored,
    and `stopped` says why the run stopped. Exit 0, as the text form."""
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    polled_with_topic(run, f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntimeout = "5s"\n')
    report = json.loads(run("digest", "send", "--json").stdout)
    [(digest_id, status, error, next_attempt)] = query(
        run.db, "SELECT id, status, last_error, next_attempt FROM digests")
    assert (report["queued"], report["queued_ids"], report["sent"], report["deferred"], report["failed"]) == \
        (1, [digest_id], 0, 1, 0)
    [outcome] = report["outcomes"]
    assert (outcome["status"], outcome["error"], outcome["next_attempt"]) == (status, error, next_attempt)
    assert status == "pending" and error and next_attempt
    assert report["stopped"]


# -- completion and datasette -------------------------------------------------------------------------


def completion(*words: str, shell: str = "bash") -> str:
    """What the installed entry point answers a shell asking to complete `monitor WORDS`."""
    env = {**os.environ, "_MONITOR_COMPLETE": f"{shell}_complete",
           "COMP_WORDS": " ".join(["monitor", *words]), "COMP_CWORD": str(len(words))}
    proc = subprocess.run(ENTRY_POINT, env=env, capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout


def test_shell_completion_works_from_the_entry_point(tmp_path):
    """README: `eval "$(_MONITOR_COMPLETE=bash_source monitor)"` (zsh_source, fish_source) installs
    completion; the script names the `monitor` command and completing commands, subcommands and
    options works, with no database or config around."""
    scripts = {}
    for shell in ("bash", "zsh", "fish"):
        proc = subprocess.run(ENTRY_POINT, env={**os.environ, "_MONITOR_COMPLETE": f"{shell}_source"},
                              capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
        scripts[shell] = proc.stdout
    assert "complete -o nosort -F _monitor_completion monitor" in scripts["bash"]
    assert "#compdef monitor" in scripts["zsh"]
    assert "complete --no-files --command monitor" in scripts["fish"]
    assert completion("clu").splitlines() == ["plain,clusters"]
    assert completion("clusters", "").splitlines() == ["plain,list", "plain,show"]
    assert "plain,--since" in completion("clusters", "list", "--s").splitlines()
    assert "plain,datasette-metadata" in completion("").splitlines()
    assert list(tmp_path.iterdir()) == []  # nothing was created
    # and bash itself, given the script, completes `monitor feeds i<TAB>`
    bash = subprocess.run(
        ["bash", "-c", 'eval "$(_MONITOR_COMPLETE=bash_source monitor)"; COMP_WORDS=(monitor feeds i); '
                       'COMP_CWORD=2; _monitor_completion monitor; printf "%s\\n" "${COMPREPLY[@]}"'],
        env={**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
        capture_output=True, text=True, timeout=60, check=True)
    assert bash.stdout.splitlines() == ["import"], bash


def test_datasette_metadata_prints_the_shipped_file(run):
    """`monitor datasette-metadata` prints the path of the metadata file inside the installed package,
    for `datasette monitor.db --metadata "$(monitor datasette-metadata)"`; it needs no database."""
    result = run("datasette-metadata")
    path = Path(result.stdout.strip())
    assert result.stdout == f"{path}\n"
    assert path == Path(monitor.__file__).resolve().parent / "datasette" / "metadata.json"
    assert json.loads(path.read_text(encoding="utf-8"))["databases"]
    assert not run.db.exists()


def test_datasette_metadata_missing_is_one_line(run, tmp_path, monkeypatch):
    """An installation without the file (a broken package) says so in one line, exit 1."""
    from importlib import resources

    monkeypatch.setattr(resources, "files", lambda package: tmp_path / "empty-package")
    result = run("datasette-metadata", ok=False)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("monitor: error: the datasette metadata file is missing")
    assert result.stderr.count("\n") == 1
