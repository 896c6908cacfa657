"""A skip in CI is a failure unless its reason is on the allow-list.

Some tests need a tool or a kernel feature (systemd-analyze, openssl, unprivileged user
namespaces) and skip where it is missing. On a developer's laptop that is a convenience;
in CI it would leave a whole area untested while the run stays green. So where the `CI`
environment variable is set (or `--strict-skips` is given), every skip whose reason does
not contain one of the `allowed_skips` lines of the pytest configuration (pyproject.toml)
turns a passing session into a failing one, and the summary names each such test.

Loaded for every run through `addopts = "-p tests.support.skip_policy"`.
"""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--strict-skips", action="store_true",
                     help="fail the run on a skip whose reason is not in allowed_skips (on when CI is set)")
    parser.addini("allowed_skips", type="linelist", default=[],
                  help="skip reasons (substrings) that do not fail a run under --strict-skips or CI")


def pytest_configure(config: pytest.Config) -> None:
    ci = os.environ.get("CI", "").strip().lower()
    if config.getoption("strict_skips") or ci not in ("", "0", "false", "no"):
        allowed = [line for line in config.getini("allowed_skips") if line.strip()]
        config.pluginmanager.register(StrictSkips(allowed), "strict-skips")


class StrictSkips:
    """Collects the skips whose reason is not allowed and fails an otherwise green session."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = allowed
        self.refused: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        longrepr = report.longrepr
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not any(entry in reason for entry in self.allowed):
            self.refused.append((report.nodeid, reason))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.refused and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.refused:
            return
        terminalreporter.section("skips not allowed here", sep="=", red=True, bold=True)
        for nodeid, reason in self.refused:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")
        terminalreporter.line(f"{len(self.refused)} skipped test(s) fail this run: install what they need "
                              "(see README, Development), or add the reason to allowed_skips in pyproject.toml")
