"""When a topic's digest is due: its schedule ("immediate", "hourly", "daily 07:00" or a cron
line), read once and checked against the time of the last run.

Pure, and light to import: every command checks the configured schedules when it opens the
database (monitor.digests.topics), while composing digests (monitor.digests.digest) only a few do.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from monitor.config import TopicSettings

_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()
_SEARCH_DAYS = 366 * 9  # long enough for "0 0 29 2 *": leap days, with 2100 skipping one


@dataclass(frozen=True)
class Schedule:
    """A topic schedule. `immediate` digests after every cycle; the rest are cron times."""

    text: str
    immediate: bool = False
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()  # day of month, 1-31
    months: frozenset[int] = frozenset()  # 1-12
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday, as in crontab(5)
    any_day: bool = True  # day-of-month field was "*"
    any_weekday: bool = True  # day-of-week field was "*"

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day, by_weekday = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # crontab(5): if both are restricted, either may match
            return by_day and by_weekday
        return by_day or by_weekday


def _cron_field(spec: str, lo: int, hi: int, names: Sequence[str] = ()) -> frozenset[int]:
    """One crontab field: `*`, `5`, `1-5`, `*/15`, `10-40/10`, lists of those, and names (`mon`, `jan`)."""
    def value(text: str) -> int:
        if text.lower() in names:
            return names.index(text.lower()) + (1 if names is _MONTHS else 0)
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise ValueError(f"{spec!r}: {text!r} is not a number from {lo} to {hi}")
        return int(text)

    result: set[int] = set()
    for part in spec.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{spec!r}: bad step {step_text!r}")
        step = int(step_text) if slash else 1
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            first, last = (value(x) for x in base.split("-", 1))
            if first > last:
                raise ValueError(f"{spec!r}: range {base!r} runs backwards")
        else:
            first = value(base)
            last = hi if slash else first
        result.update(range(first, last + 1, step))
    return frozenset(result)


def parse_schedule(text: str) -> Schedule:
    """'immediate', 'hourly' (at :00), 'daily HH:MM', or a 5-field crontab(5) expression.

    Weekday 0 and 7 are Sunday, as in crontab (APScheduler 3's from_crontab reads 0 as
    Monday, which is why this small parser exists). Raises ValueError with the reason.
    """
    words = text.split()
    if words == ["immediate"]:
        return Schedule(text=text, immediate=True)
    if words == ["hourly"]:
        words = ["0", "*", "*", "*", "*"]
    elif len(words) == 2 and words[0] == "daily":
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", words[1])
        if not match:
            raise ValueError(f"{text!r}: expected 'daily HH:MM'")
        words = [str(int(match.group(2))), str(int(match.group(1))), "*", "*", "*"]
    if len(words) != 5:
        raise ValueError(f"{text!r} is not 'immediate', 'hourly', 'daily HH:MM' or a 5-field cron expression")
    minute, hour, day, month, weekday = words
    return Schedule(
        text=text, minutes=_cron_field(minute, 0, 59), hours=_cron_field(hour, 0, 23),
        days=_cron_field(day, 1, 31), months=_cron_field(month, 1, 12, _MONTHS),
        weekdays=frozenset(d % 7 for d in _cron_field(weekday, 0, 7, _DAYS)),  # 7 is Sunday too
        any_day=day == "*", any_weekday=weekday == "*")


def next_fire(schedule: Schedule, after: datetime, tz: tzinfo,
              until: datetime | None = None) -> datetime | None:
    """The first scheduled time strictly after `after` (UTC), or None if none comes before `until`."""
    local = after.astimezone(tz)
    for offset in range(_SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        if until is not None and datetime.combine(day, time(0), tz) > until + timedelta(days=1):
            return None
        if not schedule.fires_on(day):
            continue
        for hour in sorted(schedule.hours):
            for minute in sorted(schedule.minutes):
                when = datetime.combine(day, time(hour, minute), tz).astimezone(UTC)
                if when > after:
                    return when if until is None or when <= until else None
    return None


def is_due(schedule: Schedule, last_run: datetime | None, now: datetime, tz: tzinfo) -> bool:
    """Due when a scheduled time has passed since the schedule last ran (or it never ran)."""
    if schedule.immediate or last_run is None:
        return True
    return next_fire(schedule, last_run, tz, until=now) is not None


def due_topics(topics: Iterable[TopicSettings], last_runs: Mapping[str, datetime | None], now: datetime,
               tz: str | tzinfo = "UTC") -> list[TopicSettings]:
    """The topics whose schedule fired since their last run, in config order."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return [t for t in topics if is_due(parse_schedule(t.schedule), last_runs.get(t.name), now, zone)]
