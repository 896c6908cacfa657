"""Under CI a skip fails the run unless its reason is allowed (tests/support/skip_policy.py).

Each case runs a small pytest session of its own in a subprocess, with the plugin loaded
as the project loads it, and reads its exit status and summary.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import pytest

def test_runs():
    assert True

def test_needs_a_tool():
    pytest.skip("frobnicate is not installed here")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
'''


def session(tmp_path: Path, *, ci: str | None, allowed: str = "", extra: tuple[str, ...] = (),
            suite: str = SUITE) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(suite)
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nallowed_skips =\n    {allowed}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.skip_policy",
                           "-p", "no:cacheprovider", "-rs", *extra, str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_under_ci_fails_the_run_and_is_named(tmp_path: Path) -> None:
    proc = session(tmp_path, ci="true")
    assert proc.returncode == 1, proc.stdout
    assert "skips not allowed here" in proc.stdout
    assert "SKIPPED test_inner.py::test_needs_a_tool: frobnicate is not installed here" in proc.stdout
    assert "test_known_bug" not in proc.stdout.split("skips not allowed here")[1]  # an xfail is no skip
    assert "1 passed, 1 skipped, 1 xfailed" in proc.stdout


def test_an_allowed_reason_passes_under_ci(tmp_path: Path) -> None:
    proc = session(tmp_path, ci="true", allowed="frobnicate is not installed")
    assert proc.returncode == 0, proc.stdout
    assert "skips not allowed here" not in proc.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_is_only_reported(tmp_path: Path, ci: str | None) -> None:
    proc = session(tmp_path, ci=ci)
    assert proc.returncode == 0, proc.stdout
    assert "SKIPPED [1] test_inner.py:8: frobnicate is not installed here" in proc.stdout


def test_strict_skips_option_without_ci(tmp_path: Path) -> None:
    proc = session(tmp_path, ci=None, extra=("--strict-skips",))
    assert proc.returncode == 1 and "skips not allowed here" in proc.stdout


def test_a_failing_run_keeps_its_failure_status(tmp_path: Path) -> None:
    suite = SUITE + "\ndef test_broken():\n    assert 1 == 2\n"
    proc = session(tmp_path, ci="true", suite=suite)
    assert proc.returncode == 1 and "1 failed" in proc.stdout and "skips not allowed here" in proc.stdout


def test_the_project_allows_no_skip_on_its_own_machine_kind() -> None:
    """The tools the skipping tests need are on this machine kind, and .ci/run installs them
    where missing: so the project's allow-list is empty, and a skip fails CI."""
    text = (ROOT / "pyproject.toml").read_text()
    assert "allowed_skips = []" in text and "-p tests.support.skip_policy" in text
