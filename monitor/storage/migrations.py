"""Schema migrations, applied in order and recorded in the database (sqlite-utils Migrations).

Tables and columns are named for the people who browse the file with `datasette monitor.db`:
feeds, entries, clusters, memberships, topic_matches, digests. Never edit a released
migration; add a new one, and raise SCHEMA_VERSION (in connection, which stamps databases with
it). SCHEMA_VERSION is the number of migrations this code knows: a database that has applied
more was written by newer code and is refused.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from monitor.storage.connection import SCHEMA_VERSION

migrations = Migrations("monitor")
KNOWN: list[str] = []  # names of the migrations this code knows, in order


def migration(fn: Callable[[Database], None]) -> Callable[[Database], None]:
    KNOWN.append(fn.__name__)
    return migrations()(fn)

# The full-text index matches words as written (case and diacritics folded, no stemming):
# see m012_fts_words.
FTS_TOKENIZE = "unicode61 remove_diacritics 2"


@migration
def m001_feeds_and_entries(db: Database) -> None:
    db.execute("""
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,          -- where we fetch it; a 301 updates it
            title TEXT,                        -- outlet name from the OPML outline
            channel_title TEXT,                -- <title> the feed itself gives
            category TEXT,                     -- OPML outline path, "World/Middle East"
            site_url TEXT,                     -- OPML htmlUrl / channel link
            interval_seconds REAL,             -- per-feed override of [polling] interval
            etag TEXT,                         -- validators from the last 200
            last_modified TEXT,
            added TEXT NOT NULL,
            last_polled TEXT,
            last_status INTEGER,               -- HTTP status of the last poll, NULL for transport errors
            last_error TEXT,                   -- reason of the last failed poll, NULL after a success
            last_warning TEXT,                 -- recoverable parse problem of the last good poll
            error_count INTEGER NOT NULL DEFAULT 0,  -- consecutive failures, drives backoff
            next_poll TEXT,                    -- NULL = due now
            disabled INTEGER NOT NULL DEFAULT 0,
            disabled_reason TEXT               -- "gone" (410), "removed"
        )""")
    db.execute("""
        CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            feed_id INTEGER NOT NULL REFERENCES feeds(id),
            entry_key TEXT NOT NULL,           -- guid, else canonical link, else hash of title+summary
            guid TEXT NOT NULL,                -- the id as the feed gave it
            link TEXT,
            title TEXT NOT NULL,
            summary_html TEXT NOT NULL DEFAULT '',
            content_html TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL DEFAULT '',     -- plain text for search and clustering
            author TEXT,
            published TEXT NOT NULL,           -- UTC ISO 8601
            updated TEXT,
            first_seen TEXT NOT NULL,
            last_changed TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            UNIQUE (feed_id, entry_key)
        )""")
    db.execute("CREATE INDEX entries_published ON entries(published)")
    db.execute("CREATE INDEX entries_first_seen ON entries(first_seen)")
    db.table("entries").enable_fts(["title", "text"], create_triggers=True,
                                   tokenize="porter unicode61 remove_diacritics 2")


@migration
def m002_clusters(db: Database) -> None:
    db.execute("""
        CREATE TABLE clusters (
            id INTEGER PRIMARY KEY,
            headline TEXT NOT NULL DEFAULT '',
            size INTEGER NOT NULL DEFAULT 0,
            outlets INTEGER NOT NULL DEFAULT 0,
            first_published TEXT,
            last_published TEXT,
            created TEXT NOT NULL,
            last_activity TEXT NOT NULL,       -- when it last gained an entry
            merged_into INTEGER REFERENCES clusters(id)  -- set when absorbed by another cluster
        )""")
    db.execute("CREATE INDEX clusters_last_activity ON clusters(last_activity)")
    db.execute("""
        CREATE TABLE memberships (
            entry_id INTEGER PRIMARY KEY REFERENCES entries(id),  -- an entry is in one cluster
            cluster_id INTEGER NOT NULL REFERENCES clusters(id),
            matched_entry_id INTEGER REFERENCES entries(id),  -- the member it matched best
            score REAL,
            shared_terms TEXT NOT NULL DEFAULT '[]',  -- JSON list: names and terms in common
            time_gap_seconds REAL,
            joined TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX memberships_cluster ON memberships(cluster_id)")
    db.execute("""
        CREATE TABLE cluster_merges (
            id INTEGER PRIMARY KEY,
            absorbed_id INTEGER NOT NULL REFERENCES clusters(id),
            into_id INTEGER NOT NULL REFERENCES clusters(id),
            entry_id INTEGER REFERENCES entries(id),  -- the entry that bridged them
            merged TEXT NOT NULL
        )""")


@migration
def m003_topics_and_digests(db: Database) -> None:
    db.execute("""
        CREATE TABLE topic_matches (
            topic TEXT NOT NULL,
            cluster_id INTEGER NOT NULL REFERENCES clusters(id),
            first_matched TEXT NOT NULL,
            last_matched TEXT NOT NULL,
            entry_ids TEXT NOT NULL DEFAULT '[]',   -- JSON: member entries that matched
            terms TEXT NOT NULL DEFAULT '[]',       -- JSON: terms that matched
            PRIMARY KEY (topic, cluster_id)
        )""")
    db.execute("""
        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            topic TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,   -- stable across retries
            subject TEXT NOT NULL,
            recipients TEXT NOT NULL,          -- JSON list
            message BLOB NOT NULL,             -- the whole rendered message
            created TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt TEXT,
            sent TEXT
        )""")
    db.execute("CREATE INDEX digests_status ON digests(status)")
    db.execute("""
        CREATE TABLE digest_items (
            digest_id INTEGER NOT NULL REFERENCES digests(id),
            cluster_id INTEGER NOT NULL REFERENCES clusters(id),
            kind TEXT NOT NULL,                -- new | updated
            outlets INTEGER NOT NULL,          -- outlet count when sent: "updated" means it grew
            PRIMARY KEY (digest_id, cluster_id)
        )""")
    db.execute("""
        CREATE TABLE digest_recipients (
            digest_id INTEGER NOT NULL REFERENCES digests(id),
            recipient TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',  -- pending | accepted | refused
            error TEXT,
            PRIMARY KEY (digest_id, recipient)
        )""")


@migration
def m004_cycles_and_views(db: Database) -> None:
    db.execute("""
        CREATE TABLE cycles (
            id INTEGER PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            feeds INTEGER NOT NULL DEFAULT 0,
            fetched INTEGER NOT NULL DEFAULT 0,
            not_modified INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            new_entries INTEGER NOT NULL DEFAULT 0,
            updated_entries INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )""")
    db.execute("""
        CREATE VIEW cluster_summary AS
        SELECT c.id, c.headline, c.size, c.outlets, c.first_published, c.last_published,
               c.last_activity,
               (SELECT group_concat(DISTINCT t.topic) FROM topic_matches t WHERE t.cluster_id = c.id) AS topics
        FROM clusters c WHERE c.merged_into IS NULL""")  # noqa: E501 (applied migrations are not rewritten)
    db.execute("""
        CREATE VIEW feed_health AS
        SELECT f.id, coalesce(f.title, f.channel_title, f.url) AS outlet, f.url, f.category,
               f.last_polled, f.last_status, f.last_error, f.last_warning, f.error_count, f.next_poll,
               f.disabled, (SELECT count(*) FROM entries e WHERE e.feed_id = f.id) AS entries
        FROM feeds f""")
    db.execute("""
        CREATE VIEW entry_clusters AS
        SELECT e.id AS entry_id, e.title, coalesce(f.title, f.channel_title, f.url) AS outlet, e.link,
               e.published, m.cluster_id, m.score, m.matched_entry_id
        FROM entries e JOIN feeds f ON f.id = e.feed_id LEFT JOIN memberships m ON m.entry_id = e.id""")


@migration
def m005_service_state(db: Database) -> None:
    # The daemon's own state (pid, started, heartbeat, next cycle) for `monitor status`.
    db.execute("""
        CREATE TABLE service_state (
            name TEXT PRIMARY KEY,
            value TEXT,
            updated TEXT NOT NULL
        )""")


@migration
def m006_digest_ledger(db: Database) -> None:
    """What the outbox needs to keep its promises across restarts.

    digest_items.outlet_names lets an "updated" item name the outlets that are new since the
    last send; digests.sender keeps the envelope sender with the stored bytes so a retry is
    the same message; digest_schedule records when each topic's schedule last ran, so a
    "daily 07:00" topic with nothing to say at 07:00 does not send at 07:15 instead.
    """
    db.execute("ALTER TABLE digests ADD COLUMN sender TEXT")
    db.execute("ALTER TABLE digest_items ADD COLUMN outlet_names TEXT NOT NULL DEFAULT '[]'")  # JSON list
    db.execute("ALTER TABLE digest_items ADD COLUMN listed INTEGER NOT NULL DEFAULT 1")  # 0 = in "+N more"
    db.execute("CREATE INDEX digest_items_cluster ON digest_items(cluster_id)")
    db.execute("CREATE INDEX digests_topic ON digests(topic, created)")
    db.execute("""
        CREATE TABLE digest_schedule (
            topic TEXT PRIMARY KEY,
            last_run TEXT NOT NULL             -- when the schedule last fired (digest or not)
        )""")


@migration
def m007_feed_body_hash(db: Database) -> None:
    # Hash of the last body that parsed: a server without validators that sends the same
    # bytes again is answered like a 304, without parsing.
    db.execute("ALTER TABLE feeds ADD COLUMN body_hash TEXT")


@migration
def m008_fts_automerge(db: Database) -> None:
    # Every feed's transaction writes a small FTS5 segment, and with the default (4) FTS5
    # merges segments so often that merging was a sixth of storing a first poll; at 16 it
    # merges less often, in larger steps. Searches stay well under a millisecond.
    db.execute("INSERT INTO entries_fts(entries_fts, rank) VALUES ('automerge', 16)")


@migration
def m009_fts_pending(db: Database) -> None:
    # Entries are queued for the full-text index when stored and indexed by the clustering
    # transaction that follows (Store.index_pending_text), alongside the clustering
    # decisions on another core, instead of one by one inside each feed's transaction.
    # Updates and deletes touch the index only for entries already in it.
    db.execute("CREATE TABLE fts_pending (entry_id INTEGER PRIMARY KEY)")
    for name in ("entries_ai", "entries_ad", "entries_au"):
        db.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    db.execute("""
        CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
            INSERT INTO fts_pending (entry_id) VALUES (new.id);
        END""")
    db.execute("""
        CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
            INSERT INTO entries_fts (entries_fts, rowid, title, text)
                SELECT 'delete', old.id, old.title, old.text
                WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE entry_id = old.id);
            DELETE FROM fts_pending WHERE entry_id = old.id;
        END""")
    db.execute("""
        CREATE TRIGGER entries_au AFTER UPDATE OF title, text ON entries
        WHEN NOT EXISTS (SELECT 1 FROM fts_pending WHERE entry_id = old.id) BEGIN
            INSERT INTO entries_fts (entries_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
            INSERT INTO entries_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
        END""")  # noqa: E501 (applied migrations are not rewritten)



@migration
def m010_follow_ups(db: Database) -> None:
    # Follow-ups link a report to its incident up to a year later through the name pairs
    # of the cluster's members. They are kept with each membership, so that a restart
    # rebuilds the follow-up index from a column instead of reading a year of text again.
    # `reason` says how the entry joined (NULL: written before it was kept), `also` the
    # other clusters a follow-up named.
    db.execute("ALTER TABLE memberships ADD COLUMN reason TEXT")
    db.execute("ALTER TABLE memberships ADD COLUMN name_keys TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE memberships ADD COLUMN also TEXT NOT NULL DEFAULT '[]'")


@migration
def m011_digest_summary(db: Database) -> None:
    """A readable digests view, and topic matches found by cluster.

    cluster_summary looks up each cluster's topics by cluster_id, which the (topic,
    cluster_id) primary key cannot serve: every row scanned the whole of topic_matches.
    The index holds the topic too, so the lookup reads the index alone.

    digest_summary is the outbox as a person reads it in datasette: a digest's stored
    message is a BLOB, so the view lists, one per line, each recipient's delivery status
    and the headline of each cluster the digest carried (with its kind, "new" or
    "updated", and whether it was only counted under "more"), in the order they were
    stored. A headline is the cluster's headline now; the message holds the one sent.
    """
    db.execute("CREATE INDEX topic_matches_cluster ON topic_matches(cluster_id, topic)")
    # ORDER BY in a subquery feeding group_concat: SQLite does not flatten an ordered
    # subquery into an aggregate, so the lines keep that order (ORDER BY inside the
    # aggregate itself needs SQLite 3.44).
    db.execute("""
        CREATE VIEW digest_summary AS
        SELECT d.id, d.topic, d.subject, d.status, d.created, d.sent, d.attempts, d.next_attempt,
               d.last_error,
               (SELECT group_concat(line, char(10)) FROM (
                    SELECT r.recipient || ': ' || r.status || coalesce(' (' || r.error || ')', '') AS line
                    FROM digest_recipients r WHERE r.digest_id = d.id ORDER BY r.rowid)) AS recipients,
               (SELECT count(*) FROM digest_items i WHERE i.digest_id = d.id) AS items,
               (SELECT group_concat(line, char(10)) FROM (
                    SELECT i.kind || CASE WHEN i.listed THEN '' ELSE ' (under more)' END || ': '
                           || coalesce(nullif(c.headline, ''), '(no headline)')
                           || ' [cluster ' || i.cluster_id || ']' AS line
                    FROM digest_items i LEFT JOIN clusters c ON c.id = i.cluster_id
                    WHERE i.digest_id = d.id ORDER BY i.rowid)) AS headlines
        FROM digests d""")


@migration
def m012_fts_words(db: Database) -> None:
    """The full-text index holds words as written, not porter stems.

    Topic queries are written as analysts write them for media monitoring: the forms they
    want listed (`ban OR banned`, `block OR blocked OR blocking`) or a prefix (`arrest*`).
    Stemming matched forms they had left out on purpose (`remove` found "removed", `ban`
    found "bans") and conflated unrelated words ("news" and "new", "organ" and
    "organization", "universe" and "university"); a prefix cut by a stem (`regulat*` against
    "regul") needed rewriting. The index is rebuilt with the same columns and settings;
    entries still queued in fts_pending are indexed by the next clustering transaction, as
    before.
    """
    db.execute("DROP TABLE entries_fts")
    db.execute(f"""
        CREATE VIRTUAL TABLE entries_fts USING FTS5 (
            title, text,
            tokenize='{FTS_TOKENIZE}',
            content="entries"
        )""")
    db.execute("INSERT INTO entries_fts(entries_fts, rank) VALUES ('automerge', 16)")  # as m008
    db.execute("INSERT INTO entries_fts (rowid, title, text) SELECT id, title, text FROM entries"
               " WHERE id NOT IN (SELECT entry_id FROM fts_pending) ORDER BY id")


@migration
def m013_chat_deliveries(db: Database) -> None:
    """Digests for chat and webhook destinations beside mail.

    Each destination of a topic gets its own digest rows, with the outbox's guarantees:
    `channel` is 'mail', or 'chat:' and a hash of the destination's URL (the URL holds a
    token and is never stored; `recipients` holds what may be shown, "slack://hooks.slack.com").
    A channel's digest_items are its own ledger, so a destination that failed for good gets
    the events again in its next digest while mail readers are not sent them twice.
    """
    db.execute("ALTER TABLE digests ADD COLUMN channel TEXT NOT NULL DEFAULT 'mail'")
    db.execute("CREATE INDEX digests_topic_channel ON digests(topic, channel)")


if len(KNOWN) != SCHEMA_VERSION:  # databases are stamped with it when they open (see connection)
    raise RuntimeError(f"{len(KNOWN)} migrations, but connection.SCHEMA_VERSION is {SCHEMA_VERSION}")
