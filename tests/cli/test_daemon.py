"""The daemon under a fake systemd: READY/WATCHDOG/STOPPING over a real datagram socket, SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from monitor.core import open_monitor
from monitor.daemon import Daemon
from tests.support.loopback import LoopbackServer, feed_route, rss


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield path, sock
    sock.close()


def messages(sock: socket.socket, until: float, want: str | None = None, count: int = 1) -> list[str]:
    """Datagrams received until `until` (time.monotonic()), or until `count` of them contain `want`.

    Reads at least once, so a message already sent is never missed by a test that was kept off
    the CPU past `until`.
    """
    got: list[str] = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        if want and sum(want in m for m in got) >= count:
            return got
        if time.monotonic() >= until:
            return got


def stored_entries(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM entries").fetchone()[0]


def wait_for(condition: Callable[[], bool], within: float) -> bool:
    """Poll `condition` until it holds or `within` seconds (a generous deadline, not a measurement) pass."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(0.05)
    return True


@contextmanager
def reading(sock: socket.socket) -> Iterator[list[str]]:
    """Receive every datagram on `sock` in a thread, as systemd does, into the list yielded.

    A notify socket nobody reads fills up after net.unix.max_dgram_qlen (often 10) datagrams,
    and then the daemon's next notify() blocks: the test must never stop reading while it waits.
    """
    received: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join()


def test_daemon_notifies_polls_and_stops_cleanly_on_sigterm(tmp_path, notify_socket):
    """READY, paced watchdog pings, a poll, then on SIGTERM: STOPPING, exit 0 within 30 s, state stopped."""
    path, sock = notify_socket
    server = LoopbackServer()
    try:
        server.routes["/f.xml"] = feed_route(rss([{"title": f"story {i}", "guid": f"g{i}"} for i in range(5)]))
        config = tmp_path / "monitor.toml"
        config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\nparse_workers = 1\n')
        db = tmp_path / "monitor.db"
        base = [sys.executable, "-m", "monitor", "--db", str(db), "--config", str(config)]
        subprocess.run(base + ["feeds", "add", server.url("/f.xml")], check=True, capture_output=True)
        # WATCHDOG_USEC=1000000: a ping every 0.5 s, half the watchdog period as sd_watchdog_enabled(3) advises
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
        with reading(sock) as received:
            started = time.monotonic()
            proc = subprocess.Popen(base + ["run"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
            try:
                assert wait_for(lambda: any(m.startswith("READY=1") for m in received), 60), received
                # pings keep coming (a busy machine may delay them, hence the generous deadline)
                assert wait_for(lambda: received.count("WATCHDOG=1") >= 3, 60), received
                assert wait_for(lambda: stored_entries(db) == 5, 60)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0  # the README's promise: exit 0 within 30 s
                ran_for = time.monotonic() - started  # at least as long as the daemon ran
                assert wait_for(lambda: "STOPPING=1" in received, 10), received
                # paced by the interval, never a burst: load can only make pings fewer than one per 0.5 s
                assert received.count("WATCHDOG=1") <= ran_for / 0.5 + 2, (ran_for, received)
            finally:
                if proc.poll() is None:
                    proc.kill()
                stderr = proc.stderr.read()
        events = [line.split("event=")[1].split()[0] for line in stderr.splitlines() if "event=" in line]
        # stopping, then (perhaps after the last feed's own events) stopped, and nothing after it
        assert "stopping" in events and events.index("stopping") < events.index("stopped") == len(events) - 1, stderr
        assert "event=ready" in stderr and "signal=SIGTERM" in stderr
        assert all(line.startswith("time=") for line in stderr.splitlines() if line.strip())
        status = json.loads(subprocess.run(base + ["status", "--json"], check=True, capture_output=True).stdout)
        assert status["scheduler"]["state"] == "stopped"
    finally:
        server.close()


def test_bad_config_exits_78_before_ready(tmp_path, notify_socket):
    path, sock = notify_socket
    config = tmp_path / "monitor.toml"
    config.write_text('[polling]\ninterval = "often"\n')
    proc = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "--db", str(tmp_path / "m.db"),
                           "run"], env={**os.environ, "NOTIFY_SOCKET": path}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 78
    assert "polling.interval" in proc.stderr and "Traceback" not in proc.stderr
    assert messages(sock, time.monotonic() + 0.5) == []


def test_a_schema_upgrade_extends_the_start_timeout_before_ready(tmp_path, notify_socket):
    """Starting on an older database: EXTEND_TIMEOUT_USEC (a migration may rebuild the full-text
    index, far past systemd's default start timeout) and an `upgrading` log line, then READY.
    A database already at the current schema starts without it."""
    from sqlite_utils import Database

    from monitor.storage.migrations import KNOWN, SCHEMA_VERSION, migrations

    path, sock = notify_socket
    db = tmp_path / "monitor.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        migrations.apply(Database(conn), stop_before=KNOWN[-1])
    base = [sys.executable, "-m", "monitor", "--db", str(db), "--config", str(tmp_path / "none.toml")]
    (tmp_path / "none.toml").write_text("")
    for upgrade in (True, False):
        with reading(sock) as received:
            proc = subprocess.Popen(base + ["run"], env={**os.environ, "NOTIFY_SOCKET": path}, cwd=tmp_path,
                                    stderr=subprocess.PIPE, text=True)
            try:
                assert wait_for(lambda: any(m.startswith("READY=1") for m in received), 60), received
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                stderr = proc.stderr.read()
        extends = [i for i, m in enumerate(received) if m.startswith("EXTEND_TIMEOUT_USEC=")]
        if upgrade:
            ready = next(i for i, m in enumerate(received) if m.startswith("READY=1"))
            assert len(extends) == 1 and extends[0] < ready, received
            usec = int(received[extends[0]].split("\n")[0].split("=")[1])
            assert usec >= 10 * 60 * 1_000_000  # minutes, not the default 90 s
            assert f"upgrading the database schema {SCHEMA_VERSION - 1} -> {SCHEMA_VERSION}" in received[extends[0]]
            assert f"event=upgrading from_version={SCHEMA_VERSION - 1} to_version={SCHEMA_VERSION}" in stderr
        else:
            assert extends == [] and "event=upgrading" not in stderr, (received, stderr)


def test_watchdog_is_withheld_while_a_cycle_is_wedged(tmp_path, notify_socket, monkeypatch):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    with open_monitor(None, str(tmp_path / "m.db")) as mon:
        daemon = Daemon(mon)
        daemon.watchdog()
        assert messages(sock, time.monotonic() + 0.5) == ["WATCHDOG=1"]
        daemon.idle.clear()  # a cycle is running...
        daemon.last_progress = time.monotonic() - daemon.stall_seconds - 1  # ...and has stored nothing for long
        daemon.watchdog()
        assert messages(sock, time.monotonic() + 0.5) == []
        daemon.last_progress = time.monotonic()  # progress again: pings resume
        daemon.watchdog()
        assert messages(sock, time.monotonic() + 0.5) == ["WATCHDOG=1"]



def test_clustering_a_cycles_entries_counts_as_progress(tmp_path):
    """The stall clock behind the watchdog moves while a cycle clusters its new entries, not
    only per stored feed: a large first poll's clustering must not read as a wedged cycle."""
    server = LoopbackServer()
    try:
        server.routes["/f.xml"] = feed_route(rss([{"title": f"story {i} about harbour works", "guid": f"g{i}"}
                                                  for i in range(7)]))
        config = tmp_path / "monitor.toml"
        config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\nparse_workers = 1\n')
        with open_monitor(str(config), str(tmp_path / "m.db")) as mon:
            mon.add_feed(server.url("/f.xml"))
            daemon = Daemon(mon)
            seen: list[object] = []
            real = daemon._progress
            daemon._progress = lambda x: (seen.append(x), real(x))[1]  # type: ignore[method-assign]
            daemon._cycle()
            assert stored_entries(tmp_path / "m.db") == 7
            decided = [x for x in seen if isinstance(x, int)]  # feed progress passes outcomes, clustering counts
            assert decided and decided[-1] == 7, seen
    finally:
        server.close()

def test_notify_is_a_no_op_without_socket():
    from monitor.daemon import notify, watchdog_seconds

    assert notify("READY=1") is False
    assert watchdog_seconds() is None
    os.environ["WATCHDOG_USEC"] = "4000000"
    try:
        assert watchdog_seconds() == 2.0
    finally:
        del os.environ["WATCHDOG_USEC"]


def test_missing_smtp_credential_exits_78_before_ready(tmp_path, notify_socket):
    path, sock = notify_socket
    config = tmp_path / "monitor.toml"
    config.write_text('[smtp]\nhost = "127.0.0.1"\nusername = "desk"\npassword_file = "/nonexistent/smtp-password"\n'
                      '[[topics]]\nname = "t"\nquery = "telegram"\nrecipients = ["desk@example.org"]\n')
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_SMTP_PASSWORD", "CREDENTIALS_DIRECTORY")}
    proc = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "--db", str(tmp_path / "m.db"),
                           "run"], env={**env, "NOTIFY_SOCKET": path}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    assert "password" in proc.stderr and "Traceback" not in proc.stderr
    assert "READY=1" not in messages(sock, time.monotonic() + 0.5)
