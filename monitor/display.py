"""Human-readable output for the CLI: aligned tables, short times and ages, colour and progress bars.
No data logic here.

Colour marks what a reader should not miss: a failing feed, an error, a topic match, a follow-up.
Commands say what a piece of text *is* (its role); how each role looks is decided here, once.
`click.echo` drops the codes when the stream is not a terminal (a pipe, a file, the daemon's
journal), and `NO_COLOR` (https://no-color.org: any non-empty value) turns them off everywhere.
Progress bars are drawn on stderr only when it is a terminal, so a pipe or a log never sees one.
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import click

# How each role looks. Few colours, each with one meaning: red is trouble, yellow a warning.
ROLES: dict[str, dict[str, Any]] = {
    "error": {"fg": "red", "bold": True},  # "monitor: error:" and failed operations
    "failing": {"fg": "red"},  # a feed whose last poll failed, a failed digest
    "warning": {"fg": "yellow"},  # deferred, rejected, degraded (fast parser off)
    "disabled": {"dim": True},  # a feed that is no longer polled
    "topic": {"fg": "cyan"},  # a cluster that matched a tracked topic
    "follow_up": {"fg": "magenta", "bold": True},  # a report that joined by names across months
}


def colour_wanted() -> bool:
    """False when NO_COLOR is set to anything non-empty; terminals are told apart by click.echo."""
    return not os.environ.get("NO_COLOR")


def paint(text: str, role: str | None) -> str:
    """`text` styled for its role (unchanged without a role, with NO_COLOR, or when empty)."""
    if not role or not text or not colour_wanted():
        return text
    return click.style(text, **ROLES[role])


class Painted(NamedTuple):
    """A table cell with a role: `table` aligns its plain text, then paints it."""

    value: object
    role: str | None


def feed_state(disabled: bool, last_error: str | None, last_status: int | None) -> Painted:
    """The `state` cell of a feed: disabled, its last error (painted as failing), ok or new."""
    if disabled:
        return Painted("disabled", "disabled")
    if last_error:
        return Painted(last_error, "failing")
    return Painted("ok" if last_status else "new", None)


def ago(when: datetime | None, now: datetime) -> str:
    """'5m ago', 'in 2h', '-' : short relative times for tables."""
    if when is None:
        return "-"
    delta = (now - when).total_seconds()
    future = delta < 0
    delta = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            text = f"{int(delta // size)}{unit}"
            break
    else:
        text = f"{int(delta)}s"
    return f"in {text}" if future else f"{text} ago"


def short_time(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if when else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, flex: int | None = None,
          width: int | None = None, caps: dict[int, int] | None = None) -> str:
    """Align columns; the `flex` column (index) is cut to fit the terminal width, `caps` cut others.

    Cells may be `Painted`: widths and cuts count their plain text, and the colour goes around
    the text only (not the padding), so columns line up with and without colour."""
    roles = [[v.role if isinstance(v, Painted) else None for v in row] for row in rows]
    cells = [[_plain_cell(v.value if isinstance(v, Painted) else v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    for i, cap in (caps or {}).items():
        widths[i] = min(widths[i], max(cap, len(headers[i])))
    total = shutil.get_terminal_size((120, 24)).columns if width is None else width
    if flex is not None:
        others = sum(w for i, w in enumerate(widths) if i != flex) + 2 * (len(widths) - 1)
        widths[flex] = max(len(headers[flex]), min(widths[flex], total - others))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row, row_roles in zip(cells, roles, strict=True):
        out = []
        for i, v in enumerate(row):
            if len(v) > widths[i]:
                v = v[: max(widths[i] - 1, 0)] + "…"
            out.append(paint(v, row_roles[i]) + " " * (widths[i] - len(v)))
        lines.append("  ".join(out).rstrip())
    return "\n".join(lines)


def _plain_cell(value: object) -> str:
    return ("" if value is None else str(value)).replace("\n", " ")


class Stages:
    """Progress of a long command on stderr, one bar per stage ("polling", "clustering N entries").

    Draws only when `shown` (the CLI passes: stderr is a terminal and the output is not JSON);
    otherwise every call is a no-op, so a pipe, a --json run or a log gets nothing. Use as a
    context manager: the last bar is closed (its line ended) however the command ends.
    """

    def __init__(self, shown: bool) -> None:
        self.shown = shown
        self._bar: Any = None  # click's ProgressBar, imported on first use
        self._done = 0

    @staticmethod
    def wanted(as_json: bool = False) -> bool:
        """Bars are for a person at a terminal: stderr is a TTY and stdout is not JSON for a program."""
        return not as_json and sys.stderr.isatty()

    def start(self, label: str, total: int | None) -> None:
        """End the bar shown so far and begin one for a stage of `total` steps (None: unknown; 0:
        nothing to do, no bar)."""
        self.close()
        if not self.shown or total == 0:
            return
        # Redraw at most about 200 times a stage: a bar is not worth slowing a 1M-entry recluster.
        step = max(1, (total or 0) // 200)
        # click wants a length or an iterable; an endless one makes an open-ended count
        unknown = itertools.repeat(None) if total is None else None
        self._bar = click.progressbar(unknown, length=total, label=label, file=sys.stderr,
                                      update_min_steps=step, show_pos=total is None)
        self._bar.__enter__()
        self._done = 0

    def advance(self, steps: int = 1) -> None:
        """`steps` more steps of the current stage are done."""
        if self._bar is not None and steps > 0:
            self._done += steps
            self._bar.update(steps)

    def reach(self, done: int) -> None:
        """`done` steps of the current stage are done in all (callbacks that count from the start)."""
        self.advance(done - self._done)

    def close(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.__exit__(None, None, None)

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
