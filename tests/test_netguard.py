"""The suite's network guard (tests/support/netguard.py): what leaves loopback is refused before the system
call and recorded, in this process and in child processes, and a recorded violation fails the test.

Each probe uses a socket bound to the loopback device, so that even a broken guard could not send
its packet off the machine. Every test here that provokes violations takes them with
netguard.take(), or the autouse check in conftest would fail it.
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import netguard

OFF_MACHINE = "192.0.2.1"  # TEST-NET-1: an address that is not on this machine
REPO = Path(__file__).resolve().parent.parent
SITE = Path(netguard.__file__).resolve().parent / "netguard_site"


def on_loopback_device(family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket that can send only through `lo`: the safety net if the guard ever fails open."""
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    return sock


def probe_connect() -> None:
    """What a child process does: connect off the machine (without waiting for an answer)."""
    with on_loopback_device() as sock:
        sock.setblocking(False)
        sock.connect((OFF_MACHINE, 9))


def test_connect_beyond_loopback_is_refused_before_the_syscall() -> None:
    """The hook raises before connect(2): the same socket can still connect elsewhere afterwards,
    which a socket that had sent a SYN could not (EALREADY)."""
    with socket.create_server(("127.0.0.1", 0)) as listener, on_loopback_device() as sock:
        sock.setblocking(False)
        with pytest.raises(netguard.NetworkRefused, match=OFF_MACHINE):
            sock.connect((OFF_MACHINE, 80))
        with pytest.raises(netguard.NetworkRefused, match=OFF_MACHINE):
            sock.connect_ex((OFF_MACHINE, 80))  # audited as socket.connect too
        sock.setblocking(True)
        sock.connect(listener.getsockname())
    found = netguard.take()
    assert len(found) == 2 and all(f"('{OFF_MACHINE}', 80)" in line for line in found), found
    assert all(f"pid {os.getpid()}: socket.connect" in line for line in found)


def test_datagrams_beyond_loopback_are_refused_before_the_syscall() -> None:
    """sendto and sendmsg with a destination: refused before the call, so the socket never even got
    a local port (sendto(2) would have bound one)."""
    with on_loopback_device(kind=socket.SOCK_DGRAM) as sock:
        with pytest.raises(netguard.NetworkRefused):
            sock.sendto(b"x", (OFF_MACHINE, 53))
        with pytest.raises(netguard.NetworkRefused):
            sock.sendmsg([b"x"], [], 0, (OFF_MACHINE, 53))
        assert sock.getsockname() == ("0.0.0.0", 0)
    found = netguard.take()
    assert [line.split(": ")[1].split()[0] for line in found] == ["socket.sendto", "socket.sendmsg"], found


@pytest.mark.parametrize(("lookup", "argument"), [
    (socket.getaddrinfo, "feeds.example.org"),
    (socket.gethostbyname, "feeds.example.org"),
    (socket.gethostbyname_ex, "feeds.example.org"),
    (socket.gethostbyaddr, OFF_MACHINE),  # a reverse lookup asks DNS too
    (socket.gethostbyaddr, "feeds.example.org"),
    (socket.getaddrinfo, "feeds.localhost"),  # the C library asks the name server about these too
])
def test_lookups_that_would_ask_a_dns_server_are_refused(lookup: object, argument: str) -> None:
    with pytest.raises(netguard.NetworkRefused, match=argument):
        lookup(argument, 80) if lookup is socket.getaddrinfo else lookup(argument)  # type: ignore[operator]
    found = netguard.take()
    assert len(found) == 1 and repr(argument) in found[0], found


def test_loopback_unix_sockets_and_local_lookups_stay_allowed(tmp_path: Path) -> None:
    for family, host, connect_to in [(socket.AF_INET, "127.0.0.1", "127.0.0.1"),
                                     (socket.AF_INET, "127.0.0.1", "localhost"),
                                     (socket.AF_INET6, "::1", "::1")]:
        with socket.create_server((host, 0), family=family) as listener, \
                socket.create_connection((connect_to, listener.getsockname()[1]), timeout=10):
            pass
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.socket(socket.AF_INET6) as mapped:
        mapped.settimeout(10)
        mapped.connect(("::ffff:127.0.0.1", listener.getsockname()[1]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"x", ("127.0.0.1", 9))  # nothing listens: the datagram is dropped on loopback
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)
    for name in ("localhost", "127.0.0.1", "::1", "93.184.216.34", "2130706433"):
        socket.getaddrinfo(name, 80)  # literals and localhost names never reach a DNS server
    socket.gethostbyaddr("127.0.0.1")
    socket.getfqdn()  # smtplib's EHLO name: this machine's own name
    assert netguard.take() == []


def test_a_child_python_is_guarded_and_its_violation_recorded() -> None:
    """`python ...` started by a test (as the CLI tests do) installs the guard through
    netguard_site/sitecustomize.py and records its violation in the file this process reads."""
    code = textwrap.dedent(f"""
        import socket
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        sock.setblocking(False)
        try:
            sock.connect(({OFF_MACHINE!r}, 9))
        except OSError as exc:
            print(type(exc).__name__)
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        out, _ = proc.communicate(timeout=60)
    assert out.strip() == "NetworkRefused"
    found = netguard.take()
    assert len(found) == 1 and found[0].startswith(f"pid {proc.pid}: socket.connect"), found


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_multiprocessing_workers_are_guarded(method: str) -> None:
    """Spawned and forkserver workers get the guard at start-up, forked ones inherit it."""
    process = multiprocessing.get_context(method).Process(target=probe_connect)
    process.start()
    process.join(60)
    assert process.exitcode == 1  # the refusal's traceback went to stderr
    found = netguard.take()
    assert len(found) == 1 and found[0].startswith(f"pid {process.pid}: socket.connect"), found


def test_a_swallowed_refusal_still_fails_the_test(tmp_path: Path) -> None:
    """A pytest run using this suite's conftest: a test whose code catches the refusal, and one whose
    child process is refused, both fail; a clean test passes, and its children keep PYTHONPATH."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import (_netguard_children, _no_traffic_beyond_loopback,"
                                          " pytest_runtest_call, pytest_sessionfinish)\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(f"""
        import os, socket, subprocess, sys

        def attempt():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
            sock.setblocking(False)
            try:
                sock.connect(({OFF_MACHINE!r}, 9))
            except OSError:
                pass  # classified and carried on, as a fetcher would

        def test_swallowed():
            attempt()

        def test_in_a_child():
            subprocess.run([sys.executable, "-c", "import test_inner; test_inner.attempt()"], check=True)

        def test_clean():
            assert os.environ["PYTHONPATH"] == os.pathsep.join([{str(SITE)!r}, {str(REPO)!r}, "/kept"])
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", netguard.LOG_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), "/kept"])  # what the inner run starts with
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed, 1 passed" in proc.stdout, proc.stdout
    assert "FAILED test_inner.py::test_swallowed - Failed: network guard" in proc.stdout
    assert "FAILED test_inner.py::test_in_a_child - Failed: network guard" in proc.stdout
    # One report per refusal in the failures section (with CI set, pytest repeats each message in full
    # in its short summary, so the whole output is not counted).
    failures = proc.stdout.split("short test summary info")[0]
    assert failures.count(f"socket.connect to ('{OFF_MACHINE}', 9)") == 2, proc.stdout
    assert netguard.take() == []  # the inner run kept its own log
