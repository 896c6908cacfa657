"""`datasette monitor.db --metadata monitor/datasette/metadata.json` as the README promises a browser.

The database is made the way a user makes it: the Telegram/Iran slice of the dev corpus served
as feeds on 127.0.0.1, `monitor poll`, a topic, and `monitor digest send` to an SMTP server on
127.0.0.1 that accepts one address and refuses the other. Datasette's own test client then
reads it with the metadata file the package ships, and the pages are checked against what
monitor stored: headlines where foreign keys point at clusters, the views loading with the
headlines and subject the digest carried, and the metadata's descriptions on the pages.
"""
from __future__ import annotations

import asyncio
import email
import json
import sqlite3
from collections import defaultdict
from contextlib import closing
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import httpx
import pytest
from datasette.app import Datasette

from tests.conftest import Cli
from tests.support.corpus import CORPUS, outlet_feed
from tests.support.loopback import LoopbackServer, feed_route
from tests.support.smtpserver import SmtpServer

TOPIC = "platform-regulation"
ACCEPTED, REFUSED = "desk@example.org", "gone@example.org"
REFUSAL = "550 5.1.1 No such mailbox here"
CONFIG = f'''
[[topics]]
name = "{TOPIC}"
title = "Platform regulation"
query = '(telegram OR whatsapp OR "social media") AND (ban* OR block* OR censor* OR arrest* OR remove*)'
recipients = ["{ACCEPTED}", "{REFUSED}"]
schedule = "immediate"
'''


def shipped_metadata() -> dict:
    """The metadata file as installed with the package (package data, not a module)."""
    shipped = resources.files("monitor") / "datasette" / "metadata.json"
    return json.loads(shipped.read_text(encoding="utf-8"))


class Populated:
    """The database file, the message the SMTP server accepted, and what monitor stored."""

    def __init__(self, db: Path, message: email.message.EmailMessage) -> None:
        self.db = db
        self.message = message
        with closing(sqlite3.connect(db)) as conn:
            self.headlines = dict(conn.execute("SELECT id, headline FROM clusters"))
            self.carried = [cid for (cid,) in conn.execute(
                "SELECT cluster_id FROM digest_items ORDER BY rowid")]
            self.digest = conn.execute("SELECT id, subject, status FROM digests").fetchall()
            self.matched = [cid for (cid,) in conn.execute(
                "SELECT cluster_id FROM topic_matches WHERE topic = ?", [TOPIC])]
            self.feed_urls = dict(conn.execute("SELECT id, url FROM feeds"))
            self.live = [cid for (cid,) in conn.execute("SELECT id FROM clusters WHERE merged_into IS NULL")]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    run = Cli(tmp_path_factory.mktemp("browse"))
    feeds, smtp = LoopbackServer(), SmtpServer()
    try:
        smtp.handler.rcpt_replies[REFUSED] = REFUSAL
        by_outlet = defaultdict(list)
        for article in CORPUS:
            by_outlet[article["outlet"]].append(article)
        for i, (outlet, articles) in enumerate(sorted(by_outlet.items())):
            feeds.routes[f"/{i}.xml"] = feed_route(outlet_feed(outlet, articles))
        run.config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{feeds.port}"]\nparse_workers = 1\n'
                              f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                              f'from = "monitor@example.org"\n{CONFIG}')
        for i in range(len(by_outlet)):
            run("feeds", "add", feeds.url(f"/{i}.xml"))
        run("poll")
        run("digest", "send")
        assert len(smtp.handler.messages) == 1, "the topic should have made one digest"
        return Populated(run.db, smtp.handler.parsed())
    finally:
        feeds.close()
        smtp.stop()


def browse(db: Path, *paths: str) -> list[httpx.Response]:
    """GET each path from datasette serving `db` with the shipped metadata."""
    async def get_all() -> list[httpx.Response]:
        ds = Datasette([str(db)], metadata=shipped_metadata())
        return [await ds.client.get(path) for path in paths]
    return asyncio.run(get_all())


def page(db: Path, path: str) -> httpx.Response:
    (response,) = browse(db, path)
    assert response.status_code == 200, f"{path}: {response.status_code}\n{response.text[:2000]}"
    return response


class Page(HTMLParser):
    """What a reader sees on a datasette table page: the rows' cells (text and link) by column,
    the table's description and the column descriptions."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict[str, tuple[str, str | None]]] = []
        self.description = ""
        self.column_descriptions: dict[str, str] = {}
        self._cell: str | None = None
        self._href: str | None = None
        self._text: list[str] = []
        self._in_description = 0
        self._in_dl = False
        self._term: str | None = None
        self._dt = self._dd = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "tr":
            self.rows.append({})
        elif tag == "td":
            self._cell = next(c[4:] for c in classes if c.startswith("col-"))
            self._href, self._text = None, []
        elif tag == "a" and self._cell is not None and self._href is None:
            self._href = dict(attrs).get("href")
        elif tag == "div" and ("metadata-description" in classes or self._in_description):
            self._in_description += 1
        elif tag == "dl" and "column-descriptions" in classes:
            self._in_dl = True
        elif self._in_dl and tag in ("dt", "dd"):
            self._dt, self._dd = tag == "dt", tag == "dd"
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][self._cell] = ("".join(self._text).strip(), self._href)
            self._cell = None
        elif tag == "div" and self._in_description:
            self._in_description -= 1
        elif tag == "dl":
            self._in_dl = False
        elif tag == "dt" and self._dt:
            self._term, self._dt = "".join(self._text).strip(), False
        elif tag == "dd" and self._dd and self._term is not None:
            self.column_descriptions[self._term] = "".join(self._text).strip()
            self._dd = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None or self._dt or self._dd:
            self._text.append(data)
        elif self._in_description:
            self.description += data

    def column(self, name: str) -> list[tuple[str, str | None]]:
        return [row[name] for row in self.rows if name in row]


def linked_cluster(cell: tuple[str, str | None]) -> int:
    href = cell[1]
    assert href is not None and href.startswith("/monitor/clusters/"), f"not a link to a cluster: {cell}"
    return int(href.rsplit("/", 1)[1])


def assert_shows_headlines(cells: list[tuple[str, str | None]], headlines: dict[int, str]) -> None:
    """Each cell links to its cluster and reads as the cluster's headline, then its id (datasette's
    label form); without a label column it would read as the bare id."""
    assert cells
    for cell in cells:
        cid = linked_cluster(cell)
        assert cell[0] == f"{headlines[cid]}\xa0{cid}", cell


def test_foreign_keys_show_headlines_subjects_and_feed_urls(populated):
    """memberships, topic_matches and digest_items point at clusters: their pages show each cluster's
    stored headline (the label column), with the id after it; digest_items' digest reads as its
    subject, and an entry's feed as the feed's URL."""
    memberships = Page(page(populated.db, "/monitor/memberships?_size=max").text)
    assert len(memberships.column("cluster_id")) == len(CORPUS)  # every entry is in a cluster
    assert_shows_headlines(memberships.column("cluster_id"), populated.headlines)

    matches = Page(page(populated.db, "/monitor/topic_matches").text)
    assert sorted(map(linked_cluster, matches.column("cluster_id"))) == sorted(populated.matched)
    assert_shows_headlines(matches.column("cluster_id"), populated.headlines)

    items = Page(page(populated.db, "/monitor/digest_items").text)
    assert_shows_headlines(items.column("cluster_id"), populated.headlines)
    ((digest_id, subject, _),) = populated.digest
    assert {text for text, _ in items.column("digest_id")} == {f"{subject}\xa0{digest_id}"}

    entries = Page(page(populated.db, "/monitor/entries?_size=max").text)
    feed_cells = entries.column("feed_id")
    assert len(feed_cells) == len(CORPUS)
    for text, href in feed_cells:
        assert href is not None and href.startswith("/monitor/feeds/")
        feed_id = int(href.rsplit("/", 1)[1])
        assert text == f"{populated.feed_urls[feed_id]}\xa0{feed_id}"


def test_clusters_page_lists_headlines_by_last_activity_with_descriptions(populated):
    """The clusters page shows every cluster's headline, is sorted by last activity, newest first, and
    carries the metadata's description of the table and of its columns."""
    response = page(populated.db, "/monitor/clusters?_size=max")
    shown = Page(response.text)
    assert {int(row["id"][0]): row["headline"][0] for row in shown.rows if "id" in row} == populated.headlines
    assert "sorted by last_activity descending" in response.text
    described = shipped_metadata()["databases"]["monitor"]["tables"]["clusters"]
    assert shown.description.strip() == described["description"]
    assert shown.column_descriptions == described["columns"]


def test_views_load_with_the_headlines_and_subject_the_digest_carried(populated):
    """cluster_summary lists the live clusters with the topic they matched; digest_summary shows the
    digest's subject as mailed, its status, each address' delivery and the headlines it carried."""
    summary = page(populated.db, "/monitor/cluster_summary.json?_shape=array&_size=max").json()
    assert {r["id"]: r["headline"] for r in summary} == {c: populated.headlines[c] for c in populated.live}
    assert {r["id"] for r in summary if r["topics"] == TOPIC} == set(populated.matched)
    Page(page(populated.db, "/monitor/cluster_summary").text)  # the HTML page renders too

    (digest,) = page(populated.db, "/monitor/digest_summary.json?_shape=array").json()
    assert digest["subject"] == populated.message["Subject"] and digest["topic"] == TOPIC
    assert digest["status"] == "sent" and digest["sent"]
    assert digest["recipients"].splitlines() == [f"{ACCEPTED}: accepted", f"{REFUSED}: refused ({REFUSAL})"]
    assert digest["items"] == len(populated.carried) > 0
    lines = digest["headlines"].splitlines()
    assert lines == [f"new: {populated.headlines[c]} [cluster {c}]" for c in populated.carried]
    mailed = populated.message.get_body(("plain",)).get_content()
    assert all(populated.headlines[c] in mailed for c in populated.carried)

    html = Page(page(populated.db, "/monitor/digest_summary").text)
    ((headlines, _),) = html.column("headlines")
    assert headlines.splitlines() == lines  # one line each in the page (cells keep line breaks)


def test_facets_and_hidden_tables_follow_the_metadata(populated):
    """Outbox and membership pages open faceted as the metadata says; the migrations table and the
    full-text index's tables are listed as hidden, the tables people read are not."""
    for table, facets in (("memberships", {"reason"}), ("topic_matches", {"topic"}),
                          ("digests", {"status", "topic", "channel"}), ("digest_summary", {"status", "topic"}),
                          ("feeds", {"last_status", "category", "disabled"})):
        data = page(populated.db, f"/monitor/{table}.json").json()
        assert set(data["facet_results"]) == facets, table
    reasons = page(populated.db, "/monitor/memberships.json").json()["facet_results"]["reason"]["results"]
    assert sum(r["count"] for r in reasons) == len(CORPUS)

    tables = {t["name"]: t["hidden"] for t in page(populated.db, "/monitor.json").json()["tables"]}
    assert tables["_sqlite_migrations"] and tables["fts_pending"] and tables["entries_fts"]
    assert all(hidden for name, hidden in tables.items() if name.startswith("entries_fts"))
    visible = {name for name, hidden in tables.items() if not hidden}
    assert visible == {"feeds", "entries", "clusters", "memberships", "cluster_merges", "topic_matches",
                       "digests", "digest_items", "digest_recipients", "digest_schedule", "cycles",
                       "service_state"}


def test_metadata_describes_every_table_view_and_column_it_names(tmp_path):
    """Every table and view of a new database and every column of them has a description, and
    every name the metadata uses (tables, columns, label columns, facets, sort columns) exists:
    a renamed column cannot leave a facet or a label pointing at nothing."""
    db = tmp_path / "monitor.db"
    Cli(tmp_path)("init")
    with closing(sqlite3.connect(db)) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
                                            " AND name NOT LIKE 'entries_fts%' AND name NOT LIKE 'sqlite_%'")]
        columns = {n: [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')] for n in names}
    described = shipped_metadata()["databases"]["monitor"]["tables"]
    assert set(described) == set(names)
    for name, meta in described.items():
        assert meta["description"], name
        assert list(meta["columns"]) == columns[name], name  # all of them, in the table's order
        used = [meta.get("label_column"), meta.get("sort"), meta.get("sort_desc"), *meta.get("facets", [])]
        assert {c for c in used if c} <= set(columns[name]), name
