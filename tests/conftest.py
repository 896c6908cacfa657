"""Shared fixtures: a temp working directory, a CLI runner bound to a real SQLite file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli

DATA = Path(__file__).parent / "data"


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
def run(workdir: Path) -> Cli:
    return Cli(workdir)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def env_clean() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
