"""The daemon under a fake systemd: READY/WATCHDOG/STOPPING over a real datagram socket, SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.core import open_monitor
from monitor.daemon import Daemon
from tests.loopback import LoopbackServer, feed_route, rss


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield path, sock
    sock.close()


def messages(sock: socket.socket, until: float, want: str | None = None) -> list[str]:
    got = []
    while time.monotonic() < until:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            continue
        if want and any(want in m for m in got):
            break
    return got


def test_daemon_notifies_polls_and_stops_cleanly_on_sigterm(tmp_path, notify_socket):
    path, sock = notify_socket
    server = LoopbackServer()
    try:
        server.routes["/f.xml"] = feed_route(rss([{"title": f"story {i}", "guid": f"g{i}"} for i in range(5)]))
        config = tmp_path / "monitor.toml"
        config.write_text(f'[polling]\nallow_hosts = ["127.0.0.1:{server.port}"]\nparse_workers = 1\n')
        db = tmp_path / "monitor.db"
        base = [sys.executable, "-m", "monitor", "--db", str(db), "--config", str(config)]
        subprocess.run(base + ["feeds", "add", server.url("/f.xml")], check=True, capture_output=True)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
        proc = subprocess.Popen(base + ["run"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        try:
            got = messages(sock, time.monotonic() + 20, "READY=1")
            assert any(m.startswith("READY=1") for m in got), got
            got = messages(sock, time.monotonic() + 3)
            assert got.count("WATCHDOG=1") >= 3, got  # pinged every 0.5 s while healthy
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                count = sqlite3.connect(db).execute("SELECT count(*) FROM entries").fetchone()[0]
                if count == 5:
                    break
                time.sleep(0.2)
            assert count == 5
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            assert time.monotonic() - t0 < 30
            assert "STOPPING=1" in messages(sock, time.monotonic() + 2, "STOPPING=1")
        finally:
            if proc.poll() is None:
                proc.kill()
            stderr = proc.stderr.read()
        assert "event=ready" in stderr and "event=stopped" in stderr
        assert all(line.startswith("time=") for line in stderr.splitlines() if line.strip())
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


def test_notify_is_a_no_op_without_socket():
    from monitor.notify import notify, watchdog_seconds

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
