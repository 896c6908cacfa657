"""The connection to the monitor database: opening it, its transactions, and small SQL helpers.

The daemon and the CLI share one file safely: WAL mode lets readers run while the daemon
writes, every write transaction starts with BEGIN IMMEDIATE so writers queue on the busy
timeout instead of failing half-way, and the schema is upgraded by recorded migrations
when a writer opens it. `Connection` holds that and nothing about any table: the table
families are mixins over it (`monitor.storage.feeds`, ...), so each one's SQL reads on its
own while all of them share one connection and one transaction discipline. Everyone
imports the assembled `Store` and these helpers from `monitor.storage.database`.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from monitor.errors import StorageError

if TYPE_CHECKING:
    from sqlite_utils import Database

# The number of migrations in monitor.storage.migrations (which checks it), and the file's
# mark as a monitor database (SQLite's application id, "moni"). A database stamped with both
# (user_version, application_id) is up to date and opens without reading the migrations
# table, so commands need not import sqlite-utils and the migrations: most of a reading
# command's start-up. Anything else takes the full check, which stamps it once current.
SCHEMA_VERSION = 13
APPLICATION_ID = 0x6D6F6E69

DEFAULT_BUSY_TIMEOUT = 30.0
WAL_SIZE_LIMIT = 16 * 1024 * 1024  # bytes the WAL file is cut back to after a checkpoint
T = TypeVar("T")

PARAMS_PER_QUERY = 900  # values per `IN (...)`: below the 999-variable limit of older SQLite builds


def chunked(values: Sequence[T], size: int = PARAMS_PER_QUERY) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `size`, for queries that bind one parameter per value."""
    for i in range(0, len(values), size):
        yield values[i:i + size]


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
@overload
def iso(dt: datetime | None) -> str | None: ...
def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with offset, to the second: sorts as text, reads as time."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return parse_stamp(value)


def parse_stamp(value: str) -> datetime:
    """parse_iso for a column that always holds a time (NOT NULL, written by iso())."""
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made (sqlite3 types it as optional: it is not, here)."""
    rowid = cur.lastrowid
    assert rowid is not None
    return rowid


def _describe(exc: sqlite3.Error, path: str) -> str:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return f"database {path} is locked by another process (timed out waiting): {msg}"
    if "not a database" in msg or "malformed" in msg:
        return f"{path} is not a usable monitor database: {msg}"
    if "readonly" in msg or "read-only" in msg:
        return f"database {path} is read-only: {msg}"
    if "unable to open" in msg:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.exists(path) and not os.access(folder, os.W_OK):
            msg += (f" (the folder {folder} is read-only, and WAL mode needs to create"
                    f" {os.path.basename(path)}-wal there)")
        return f"cannot open database {path}: {msg}"
    return f"database {path}: {msg}"


class Connection:
    """One connection to the monitor database, and its transactions."""

    def __init__(self, path: str, *, create: bool = True, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                 on_upgrade: Callable[[int, int], object] | None = None) -> None:
        """`on_upgrade(from_version, to_version)` is called before the pending migrations of an existing
        database run (some rebuild an index, which takes a while on a large database)."""
        self.path = path
        self._on_upgrade = on_upgrade
        if path != ":memory:" and not create and not os.path.exists(path):
            raise StorageError(f"no database at {path} (run `monitor init` or `monitor feeds import FILE`)")
        parent = os.path.dirname(os.path.abspath(path))
        if path != ":memory:" and not os.path.isdir(parent):
            raise StorageError(f"cannot create database {path}: folder {parent} does not exist")
        try:
            # isolation_level=None: no implicit transactions; write() and read() open them
            # explicitly (a nested write() is a savepoint), and so do the migrations.
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(_describe(exc, path)) from None
        self.conn = conn
        self._db: Database | None = None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._setup(create)
        except BaseException as exc:
            conn.close()  # a refused file is left as it was found: no -wal or -shm beside it
            if isinstance(exc, sqlite3.Error):
                raise StorageError(_describe(exc, path)) from None
            raise

    def _setup(self, create: bool) -> None:
        conn = self.conn
        conn.execute("PRAGMA foreign_keys = ON")
        # As sqlite-utils sets it on the connections it makes (the schema's triggers were written
        # under it): a REPLACE fires delete triggers, and triggers may fire triggers.
        conn.execute("PRAGMA recursive_triggers = ON")
        if self._stamp() != (APPLICATION_ID, SCHEMA_VERSION):
            self._migrate(create)
        # NORMAL is durable across process crashes in WAL mode; a power loss may undo the last
        # transactions, which the next poll fetches again (validators roll back with them).
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints cannot pass a reader's snapshot, so a long read (a backup, an open
        # datasette query) lets the WAL grow with every write; without a limit the file
        # then keeps that size for good. With it, the file is cut back to this size when the
        # WAL next restarts after the reader has gone. Steady state stays near 4 MB (the
        # 1000-page autocheckpoint), below the limit, so this costs nothing then.
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")

    def _migrate(self, create: bool) -> None:
        """Check the recorded migrations, apply the pending ones (`create`) and stamp the file."""
        from monitor.storage.migrations import KNOWN, migrations

        conn = self.conn
        applied = [m.name for m in migrations.applied(self.db)]  # none when the table is missing
        unknown = [name for name in applied if name not in KNOWN]
        if unknown:
            raise StorageError(
                f"database {self.path} was written by a newer monitor (schema has {len(applied)} migrations, "
                f"this code knows {SCHEMA_VERSION}: {unknown[-1]}); upgrade monitor")
        if len(applied) < SCHEMA_VERSION and not create:
            raise StorageError(f"database {self.path} needs a schema upgrade: run a writing command "
                               "such as `monitor init` or start the daemon")
        if not create:  # current but not stamped (written before stamps): a writer stamps it
            return
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal" and self.path != ":memory:":
            raise StorageError(f"database {self.path}: cannot switch to WAL mode (got {mode})")
        if applied and len(applied) < SCHEMA_VERSION and self._on_upgrade is not None:  # an upgrade
            self._on_upgrade(len(applied), SCHEMA_VERSION)
        # One writer migrates; a second process starting at the same moment waits here.
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations.apply(self.db)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def db(self) -> Database:
        """The connection as sqlite-utils sees it, for schema work (imported when first needed)."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn)
        return self._db

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Self]:
        """A write transaction, taking the write lock up front (BEGIN IMMEDIATE)."""
        conn = self.conn
        if conn.in_transaction:  # nested: a savepoint in the outer transaction, which holds the lock
            conn.execute("SAVEPOINT nested")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:  # an error may have ended the whole transaction already
                    conn.execute("ROLLBACK TO SAVEPOINT nested")
                    conn.execute("RELEASE SAVEPOINT nested")
                raise
            conn.execute("RELEASE SAVEPOINT nested")
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(_describe(exc, self.path)) from None
        try:
            yield self
        except sqlite3.OperationalError as exc:
            # disk full, read-only, I/O error: one clear line, no traceback
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(_describe(exc, self.path)) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(_describe(exc, self.path)) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[Self]:
        """A read snapshot: several queries see one consistent state of the database."""
        conn = self.conn
        if conn.in_transaction:
            yield self
            return
        conn.execute("BEGIN")
        try:
            yield self
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict]:
        """The rows of a statement that returns rows, as dicts by column name.

        Another statement is a mistake in the caller: it has run when the ValueError says so."""
        try:
            cur = self.conn.execute(sql, params)
            if cur.description is None:
                raise ValueError(f"query() is for statements that return rows, use execute(): {sql}")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]
        except sqlite3.OperationalError as exc:
            raise StorageError(_describe(exc, self.path)) from None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def schema_version(self) -> int:
        """The number of migrations applied (a current stamp says so without reading them)."""
        if self._stamp() == (APPLICATION_ID, SCHEMA_VERSION):
            return SCHEMA_VERSION
        from monitor.storage.migrations import migrations

        return len(migrations.applied(self.db))

    def _stamp(self) -> tuple[int, int]:
        """The file's (application_id, user_version), which a writer sets after migrating."""
        app = self.conn.execute("PRAGMA application_id").fetchone()[0]
        return app, self.conn.execute("PRAGMA user_version").fetchone()[0]
