"""Shared fixtures: a temp working directory, a CLI runner bound to a real SQLite file; and the
network guard (tests/support/netguard.py), which fails any test that reaches beyond loopback."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from tests.support import netguard
from tests.support.world import World

NETGUARD_SITE = Path(netguard.__file__).resolve().parent / "netguard_site"

netguard.install()  # at import, before any test or fixture runs; an audit hook stays for good


@pytest.fixture(scope="session", autouse=True)
def _netguard_children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Child Pythons (the CLI in subprocesses, multiprocessing workers) get the guard too.

    PYTHONPATH gains netguard_site/, whose sitecustomize installs the guard at start-up, and
    the children append their violations to one log file that this process reads.
    """
    log = tmp_path_factory.mktemp("netguard") / "violations.log"
    log.touch()
    netguard.set_log(str(log))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NETGUARD_SITE),
                                                              os.environ.get("PYTHONPATH")])))
        mp.setenv(netguard.LOG_ENV, str(log))
        yield


def _fail_on_violations(where: str, also: str = "") -> None:
    found = netguard.take()
    if found:
        pytest.fail(f"network guard: refused {where}:\n" + "\n".join(found)
                    + (f"\nthe test failed as well: {also}" if also else ""), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that tried to reach past loopback fails, even if the code under test caught the
    refusal (or it happened in a child process). A test that provokes violations on purpose takes
    them with netguard.take()."""
    try:
        result = yield
    except BaseException as exc:
        _fail_on_violations("in this test, which tried to reach beyond loopback",
                            also=f"{type(exc).__name__}: {exc}")
        raise
    _fail_on_violations("in this test, which tried to reach beyond loopback")
    return result


@pytest.fixture(autouse=True)
def _no_traffic_beyond_loopback() -> Iterator[None]:
    """The same for fixtures: an error at set-up or teardown of the test they served."""
    _fail_on_violations("before this test (in a fixture set up for it?)")
    yield
    _fail_on_violations("in this test's teardown")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Violations after the last test's check (session fixtures' teardown) fail the run too."""
    found = netguard.take()
    if found:
        print("\nnetwork guard: refused outside any test:\n" + "\n".join(found))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's config, database or SMTP password."""
    for var in ("MONITOR_DB", "MONITOR_CONFIG", "MONITOR_SMTP_PASSWORD", "CREDENTIALS_DIRECTORY",
                "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(var, raising=False)


class Cli:
    """Runs `monitor --db DB --config CONFIG ...` in-process and returns click's Result."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = workdir / "monitor.db"
        self.config = workdir / "monitor.toml"
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None):
        argv = ["--db", str(self.db)]
        if self.config.exists():
            argv += ["--config", str(self.config)]
        result = self.runner.invoke(cli, argv + list(args), input=input, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"monitor {' '.join(args)} exited {result.exit_code}:\n"
                                 f"{result.output}\n{result.stderr}")
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A real SQLite store with helpers to add feeds, entries, clusters and matches (tests/support/world)."""
    w = World(tmp_path / "monitor.db")
    yield w
    w.store.close()


@pytest.fixture
def run(workdir: Path) -> Cli:
    return Cli(workdir)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def env_clean() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
