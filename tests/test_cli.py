"""The CLI contract: every command present, feeds management end to end, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.cli import cli
from tests.conftest import DATA

REPO = Path(__file__).resolve().parent.parent
CONTRACT = ["init", "feeds import", "feeds list", "feeds export", "feeds add", "feeds remove", "poll", "run",
            "recluster", "clusters list", "clusters show", "search", "topics list", "topics test",
            "digest preview", "digest send", "status"]


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
