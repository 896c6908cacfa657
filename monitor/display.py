"""Human-readable output for the CLI: aligned tables, short times and ages. No data logic here."""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime


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
    """Align columns; the `flex` column (index) is cut to fit the terminal width, `caps` cut others."""
    cells = [[("" if v is None else str(v)).replace("\n", " ") for v in row] for row in rows]
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
    for row in cells:
        out = []
        for i, v in enumerate(row):
            if len(v) > widths[i]:
                v = v[: max(widths[i] - 1, 0)] + "…"
            out.append(v.ljust(widths[i]))
        lines.append("  ".join(out).rstrip())
    return "\n".join(lines)
