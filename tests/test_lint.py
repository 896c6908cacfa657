"""Lint and types are part of the tests: ruff and mypy on monitor/, settings in pyproject.toml.

Each test runs the command a developer runs by hand, from the project root:

    python -m ruff check monitor
    python -m mypy
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"`python -m {' '.join(args)}` failed:\n{proc.stdout}{proc.stderr}", pytrace=False)


def test_ruff() -> None:
    # The rule set, import sorting (I) included, comes from [tool.ruff.lint].
    _run("ruff", "check", "--no-cache", "monitor")


def test_mypy() -> None:
    # `files`, the strictness flags and the per-library exceptions come from [tool.mypy].
    _run("mypy", "--no-incremental", "--cache-dir", "/dev/null")
