"""The CLI contract: every command present, feeds management end to end, one-line errors."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from monitor.cli import cli
from monitor.storage.database import open_store
from tests.support import DATA
from tests.support.loopback import LoopbackServer, feed_route, rss, send

REPO = Path(__file__).resolve().parents[2]
CONTRACT = ["init", "feeds import", "feeds list", "feeds export", "feeds add", "feeds remove", "poll", "run",
            "recluster", "clusters list", "clusters show", "search", "topics list", "topics test",
            "digest preview", "digest send", "status", "datasette-metadata"]


def test_every_contract_command_has_help(run):
    top = run("--help").output
    for command in CONTRACT:
        group = command.split()[0]
        assert group in top
        result = run(*command.split(), "--help")
        assert "Usage: " in result.output and "Show this message" in result.output


def test_init_writes_config_and_database_and_never_overwrites(run, workdir):
    result = run("init")
    assert "wrote" in result.output and "schema version" in result.output
    assert (workdir / "monitor.toml").read_text().startswith("# monitor configuration")
    assert run.db.exists()
    (workdir / "monitor.toml").write_text("# mine\n")
    assert "kept existing" in run("init").output
    assert (workdir / "monitor.toml").read_text() == "# mine\n"


def test_feeds_import_list_export_round_trip(run, workdir):
    out = run("feeds", "import", str(DATA / "opml_nested.opml"))
    assert "added 4, updated 0, unchanged 0, rejected 7" in out.stdout
    assert "file:///etc/passwd" in out.stderr and "javascript:alert(1)" in out.stderr
    assert "added 0, updated 0, unchanged 4, rejected 7" in run("feeds", "import", str(DATA / "opml_nested.opml")).stdout
    feeds = run.json("feeds", "list")
    assert [f["url"] for f in feeds] == ["http://loose.example/atom.xml", "https://tagged.example/rss",
                                         "https://wire-one.example/rss", "https://tehran-daily.example/feed"]
    first = feeds[2]
    assert set(first) == {"url", "title", "category", "last_polled", "last_status", "last_error", "last_warning",
                          "error_count", "next_poll", "disabled", "entries"}
    assert first["title"] == "Wire One" and first["category"] == "World" and first["entries"] == 0
    run("feeds", "export", "-o", str(workdir / "out.opml"))
    other = workdir / "other.db"
    result = run.runner.invoke(cli, ["--db", str(other), "feeds", "import", str(workdir / "out.opml")])
    assert "added 4, updated 0, unchanged 0, rejected 0" in result.stdout
    again = run.runner.invoke(cli, ["--db", str(other), "feeds", "list", "--json"])
    assert again.stdout == run("feeds", "list", "--json").stdout
    table = run("feeds", "list").stdout
    assert "Tehran Daily" in table and "4 feeds" in table


def test_feeds_add_remove(run):
    assert "added https://x.example/rss" in run("feeds", "add", "https://x.example/rss", "--title", "X").stdout
    assert "exists" in run("feeds", "add", "https://x.example/rss").stdout
    assert "removed" in run("feeds", "remove", "https://x.example/rss").stdout
    assert run.json("feeds", "list")[0]["disabled"] is True
    assert "enabled" in run("feeds", "add", "https://x.example/rss").stdout
    bad = run("feeds", "remove", "https://nope.example/", ok=False)
    assert bad.exit_code == 1 and "no active feed" in bad.stderr
    for url in ("file:///etc/passwd", "javascript:alert(1)", "|cmd", "exec:ls"):
        result = run("feeds", "add", url, ok=False)
        assert result.exit_code == 1 and "refused feed URL" in result.stderr
    assert len(run.json("feeds", "list")) == 1


def test_bad_config_is_one_line_with_exit_78(run):
    run.config.write_text('[polling]\ninterval = "soon"\n')
    result = run("feeds", "list", ok=False)
    assert result.exit_code == 78
    assert result.stderr.strip().count("\n") == 0
    assert "polling.interval: bad duration 'soon'" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_unknown_key_is_named(run):
    run.config.write_text('[smtp]\nhots = "mail"\n')
    result = run("feeds", "add", "https://x.example/", ok=False)
    assert result.exit_code == 78 and "smtp.hots: unknown key" in result.stderr


def test_unusable_database_is_one_line_with_exit_74(run):
    run.db.write_bytes(b"garbage" * 1000)
    result = run("feeds", "list", ok=False)
    assert result.exit_code == 74 and "not a usable monitor database" in result.stderr
    assert "Traceback" not in result.stderr


def newer_database(path: Path) -> None:
    """A database as a later release leaves it: one more migration applied (the version check reads
    the applied migrations' names), the table that migration made, and the file stamped with the
    number of migrations (its user_version, see design.md)."""
    open_store(str(path)).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN")
        db.execute("CREATE TABLE m999_things (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                   " VALUES ('monitor', 'm999_future', '2030-01-01')")
        applied = db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
        db.execute(f"PRAGMA user_version = {applied}")
        db.execute("COMMIT")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every entry of the folder (the database, any -wal or -shm, a maildir...): files with their
    bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None for p in folder.iterdir()}


@pytest.mark.parametrize("command", [["poll"], ["clusters", "list"], ["run"]], ids=" ".join)
def test_a_database_from_a_newer_version_is_refused_and_left_untouched(workdir, command):
    """README: a database newer than this code makes `poll`, `clusters list` and `monitor run` exit 74
    with one line, and the file is left byte for byte as it was (no -wal or -shm left behind either).

    There is a feed due and a feeds.opml to sync, so any command that went on would write."""
    server = LoopbackServer()
    try:
        server.routes["/f.xml"] = feed_route(rss([{"title": "Kept out", "guid": "g1"}]))
        (workdir / "monitor.toml").write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\n'
                                              'parse_workers = 1\n')
        (workdir / "feeds.opml").write_text(f'<opml version="2.0"><body><outline type="rss" text="F"'
                                            f' xmlUrl="{server.url("/f.xml")}"/></body></opml>')
        db = workdir / "monitor.db"
        with open_store(str(db)) as store:
            store.db.execute("INSERT INTO feeds (url, title, added) VALUES (?, 'F', '2026-01-01T00:00:00+00:00')",
                             [server.url("/f.xml")])
        newer_database(db)
        before = snapshot(workdir)
        # `run` would be a daemon if it went on: the timeout (far above a start-up) ends that as a failure.
        proc = subprocess.run([sys.executable, "-m", "monitor", "--db", str(db), "--config", "monitor.toml",
                               *command], capture_output=True, text=True, cwd=workdir, timeout=120, check=False)
        assert proc.returncode == 74, proc.stderr
        [line] = proc.stderr.splitlines()
        assert line.startswith(f"monitor: error: database {db} was written by a newer monitor")
        assert line.endswith("upgrade monitor") and proc.stdout == ""
        assert snapshot(workdir) == before
        assert server.requests == []
    finally:
        server.close()


def test_a_feed_gone_410_is_disabled_until_feeds_add_enables_it_again(run):
    """README: 410 disables the feed (`feeds add URL` re-enables it). Disabled, it is not fetched even
    by `poll --all`; re-enabled, the next plain `poll` fetches it and stores its entries."""
    server = LoopbackServer()
    served = feed_route(rss([{"title": "Back online", "guid": "b1"}, {"title": "Second story", "guid": "b2"}]))
    state = {"gone": True}

    def route(h: BaseHTTPRequestHandler) -> None:
        if state["gone"]:
            send(h, 410, b"gone", "text/plain")
        else:
            served(h)

    server.routes["/f.xml"] = route
    url = server.url("/f.xml")
    try:
        run.config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\nparse_workers = 1\n')
        run("feeds", "add", url)
        run("poll")
        [feed] = run.json("feeds", "list")
        assert (feed["disabled"], feed["last_status"], feed["last_error"], feed["entries"]) == (True, 410, "gone", 0)
        assert len(server.requests) == 1

        state["gone"] = False  # the publisher brings the feed back
        run("poll", "--all")
        assert len(server.requests) == 1  # disabled: not fetched, not even by --all
        assert run.json("feeds", "list")[0]["disabled"] is True

        assert run("feeds", "add", url).stdout.strip() == f"enabled {url}"
        assert run.json("feeds", "list")[0]["disabled"] is False
        assert "1 fetched" in run("poll").stdout  # due at once, without --all
        assert len(server.requests) == 2
        [feed] = run.json("feeds", "list")
        assert (feed["disabled"], feed["last_status"], feed["last_error"], feed["error_count"], feed["entries"]) == \
            (False, 200, None, 0, 2)
        stored = run.json("clusters", "list", "--since", "all")
        assert sorted(e["guid"] for c in stored for e in c["entries"]) == ["b1", "b2"]
    finally:
        server.close()


def test_missing_database_for_readers(run):
    result = run("feeds", "list", ok=False)
    assert result.exit_code == 74 and "no database" in result.stderr
    assert not run.db.exists()


def test_malformed_opml_is_one_line(run, workdir):
    (workdir / "bad.opml").write_text("<opml><body><outline")
    result = run("feeds", "import", str(workdir / "bad.opml"), ok=False)
    assert result.exit_code == 1 and "malformed OPML" in result.stderr
    missing = run("feeds", "import", str(workdir / "absent.opml"), ok=False)
    assert missing.exit_code == 1 and "cannot read" in missing.stderr


def test_repo_feeds_opml_has_real_outlets_in_categories(run):
    out = run("feeds", "import", str(REPO / "feeds.opml")).stdout
    feeds = run.json("feeds", "list")
    assert "rejected 0" in out and len(feeds) >= 40
    categories = {f["category"].split("/")[0] for f in feeds}
    assert {"World and regional news", "Iran, Caucasus and Middle East", "Technology and platform policy",
            "Digital rights"} <= categories
    assert all(f["url"].startswith("https://") for f in feeds)


def test_python_dash_m_works(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "monitor", "--db", str(tmp_path / "x.db"), "feeds", "list"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 74 and proc.stderr.startswith("monitor: error: no database")


def test_readme_documents_every_command_and_config_key():
    readme = (REPO / "README.md").read_text()
    for command in CONTRACT:
        assert f"monitor {command}" in readme, command
    from dataclasses import fields

    from monitor.config import Settings

    for section in fields(Settings):
        if section.name in ("topics", "config_path"):
            continue
        inner = getattr(Settings(), section.name)
        names = [f.name for f in fields(inner)] if hasattr(inner, "__dataclass_fields__") else [None]
        for name in names:
            key = section.name if name is None else f"{section.name}.{'from' if name == 'sender' else name}"
            assert f"`{key}`" in readme, key


# Imported only by the operations that need them: polling (httptools, feedparser), clustering,
# rendering digests (Jinja2), sending chat (Apprise), and creating or upgrading the schema
# (sqlite-utils and the migrations: a current database opens on its stamp, see design.md).
HEAVY = ["httptools", "feedparser", "jinja2", "apprise", "monitor.events.clusterer", "monitor.feeds.cycle",
         "monitor.digests.outbox", "monitor.digests.mailer", "sqlite_utils", "monitor.storage.migrations"]


# Composing digests and chat messages: only `topics list` needs them, to name chat destinations.
DIGESTS = ["monitor.digests.digest", "monitor.digests.chat", "monitor.digests.notifier"]


def run_probe(unwanted: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `monitor ARGS` in a fresh interpreter; its output ends with "EXIT code" (when it exited
    with one) and "IMPORTED [...]": which of the `unwanted` modules it imported."""
    # the command as `monitor` runs it, but for the end: main() ends the process itself (see
    # monitor.cli._end), so the probe runs the command group
    probe = ("import sys\n"
             "from monitor.cli import cli\n"
             "try:\n"
             "    cli(sys.argv[1:], prog_name='monitor')\n"
             "except SystemExit as exit:\n"
             "    print('EXIT', exit.code)\n"
             f"print('IMPORTED', sorted(m for m in {unwanted!r} if m in sys.modules))\n")
    return subprocess.run([sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("command", [["clusters", "list"], ["clusters", "show", "1"], ["search", "x"],
                                     ["feeds", "list"], ["topics", "list"], ["status"]])
def test_reading_commands_import_no_polling_clustering_or_digest_machinery(tmp_path, command):
    """`clusters list` in a script starts in about half the time it took with everything imported."""
    db = tmp_path / "x.db"
    subprocess.run([sys.executable, "-m", "monitor", "--db", str(db), "init"], cwd=tmp_path, check=True,
                   capture_output=True)
    # a topic with a schedule: opening the database checks it, and its query
    (tmp_path / "monitor.toml").write_text('[[topics]]\nname = "t"\nquery = "police"\n'
                                           'recipients = ["desk@example.org"]\nschedule = "daily 07:00"\n')
    unwanted = HEAVY + (DIGESTS if command[0] != "topics" else [])
    if command == ["status"]:  # it names the feed parser's version and whether its fast path is on
        unwanted.remove("feedparser")
    proc = run_probe(unwanted, ["--db", str(db), *command], tmp_path)
    assert "IMPORTED []" in proc.stdout, proc.stdout + proc.stderr
    assert "EXIT 74" not in proc.stdout and "EXIT 78" not in proc.stdout, proc.stderr  # it did run


def test_a_poll_imports_neither_feedparser_nor_sqlite_utils_in_its_own_process(tmp_path):
    """The polling process fetches, stores and clusters; documents are parsed in the worker
    processes (which have feedparser from the fork server) and the schema is current, so neither
    is imported where it would only lengthen every poll's start-up (docs/performance.md)."""
    server = LoopbackServer()
    try:
        items = [{"title": "Council votes on the harbour bridge", "guid": "g1"},
                 {"title": "Storm closes the coast road", "guid": "g2"}]
        server.routes["/f.xml"] = feed_route(rss(items))
        (tmp_path / "monitor.toml").write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\n'
                                               'parse_workers = 1\n')
        db = tmp_path / "x.db"
        base = [sys.executable, "-m", "monitor", "--db", str(db), "--config", "monitor.toml"]
        subprocess.run([*base, "feeds", "add", server.url("/f.xml")], cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)
        proc = run_probe(["feedparser", "sqlite_utils"], [*base[3:], "poll", "--all"], tmp_path)
        assert "IMPORTED []" in proc.stdout and "EXIT 0" in proc.stdout, proc.stdout + proc.stderr
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 2  # parsed and stored
            assert conn.execute("SELECT count(*) FROM memberships").fetchone()[0] == 2  # and clustered
    finally:
        server.close()


# The `monitor` command as pip writes it (console_scripts), with one line added that notes
# every run of the file: in the process started, and in any process that runs the file again.
SCRIPT = """import os, re, sys
with open(os.environ["SCRIPT_RUNS"], "a") as runs:
    runs.write(f"{os.getpid()}\\n")
from monitor.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def test_worker_processes_do_not_run_the_monitor_script_again(tmp_path):
    """A worker started by forkserver runs the parent's __main__ file first unless it is a
    package's __main__ module; the installed script would import the whole CLI in every parse
    and weighing worker before its first task (docs/performance.md)."""
    server = LoopbackServer()
    try:
        items = [{"title": "Council votes on the harbour bridge", "guid": "g1"},
                 {"title": "Storm closes the coast road", "guid": "g2"}]
        server.routes["/f.xml"] = feed_route(rss(items))
        server.routes["/g.xml"] = feed_route(rss([{"title": "Ferry strike ends after a week", "guid": "g3"}]))
        (tmp_path / "monitor.toml").write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\n'
                                               'parse_workers = 2\n')
        script, runs = tmp_path / "monitor-script", tmp_path / "runs.log"
        script.write_text(SCRIPT)
        db = tmp_path / "x.db"
        base = [sys.executable, str(script), "--db", str(db), "--config", "monitor.toml"]
        env = {**os.environ, "SCRIPT_RUNS": str(runs)}
        for path in ("/f.xml", "/g.xml"):
            subprocess.run([*base, "feeds", "add", server.url(path)], cwd=tmp_path, check=True,
                           capture_output=True, timeout=60, env=env)
        runs.write_text("")
        proc = subprocess.run([*base, "poll", "--all", "--json"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["new"] == 3  # parsed in the workers, and stored
        assert len(runs.read_text().split()) == 1, runs.read_text()  # the polling process's own run only
    finally:
        server.close()


@pytest.mark.parametrize(("end", "status", "stderr"), [("0", 0, ""), ("None", 0, ""), ("3", 3, ""),
                                                       ("'gone wrong'", 1, "gone wrong\n")])
def test_the_process_ends_with_the_status_and_all_output_of_the_command(tmp_path, end, status, stderr):
    """monitor.cli.main ends the process without tearing the interpreter down (see _end): the
    status is the command's, and what it wrote, buffered or not, is all out."""
    script = ("import logging, logging.handlers, sys\n"
              "from monitor.cli import _end\n"
              "held = logging.handlers.MemoryHandler(100, target=logging.FileHandler(sys.argv[1]))\n"
              "logging.getLogger().addHandler(held)\n"
              "logging.warning('logged')  # held until the handler is flushed\n"
              "sys.stdout.write('no newline, still buffered')\n"
              f"_end({end})\n"
              "print('never')\n")
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output buffered, as usual
    proc = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=60,
                          env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, "no newline, still buffered", stderr)
    assert log.read_text() == "logged\n"  # the logging handlers were flushed


def test_the_process_waits_for_threads_that_are_not_daemons():
    script = ("import threading, time\n"
              "from monitor.cli import _end\n"
              "threading.Thread(target=lambda: (time.sleep(0.2), print('finished'))).start()\n"
              "_end(0)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "finished\n")
