"""Pure polling decisions, table-driven: what each fetch outcome does to a feed's state."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitor.feeds.schedule import PollPolicy, after_fetch, backoff_interval, is_due, jitter
from monitor.types import Feed, FetchResult

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
POLICY = PollPolicy(interval=900, min_interval=300, max_interval=86400)


def feed(**kw) -> Feed:
    base = dict(id=7, url="https://a.example/rss", title="A", category=None, site_url=None, etag='"old"',
                last_modified="Sat, 31 Oct 2026 10:00:00 GMT", last_polled=None, last_status=200, last_error=None,
                last_warning=None, error_count=0, next_poll=None, disabled=False)
    base.update(kw)
    return Feed(**base)


def minutes(update) -> float:
    return (update.next_poll - NOW).total_seconds() / 60


def test_200_saves_validators_and_resets_errors():
    u = after_fetch(feed(error_count=3), FetchResult("u", 200, b"x", etag='"new"', last_modified="L"), NOW, POLICY)
    assert (u.etag, u.last_modified, u.error_count, u.last_error, minutes(u)) == ('"new"', "L", 0, None, 15)


def test_304_keeps_validators_and_is_success():
    u = after_fetch(feed(error_count=2), FetchResult("u", 304), NOW, POLICY)
    assert (u.etag, u.error_count, u.last_error, u.last_status) == ('"old"', 0, None, 304)


@pytest.mark.parametrize("max_age,ttl,expected", [
    (None, None, 15), (60, None, 15),           # a shorter hint never shortens the interval
    (3600, None, 60), (None, 120, 120),        # max-age and <ttl> stretch it
    (10 * 86400, None, 24 * 60),               # but only up to max_interval
])
def test_server_hints_stretch_within_bounds(max_age, ttl, expected):
    u = after_fetch(feed(), FetchResult("u", 200, b"x", max_age=max_age), NOW, POLICY, ttl_minutes=ttl)
    assert minutes(u) == expected


def test_410_disables():
    u = after_fetch(feed(), FetchResult("u", 410, error="http_410"), NOW, POLICY)
    assert u.disabled_reason == "gone" and u.last_error == "gone"


@pytest.mark.parametrize("status", [429, 503])
def test_slow_down_honours_retry_after_without_counting_an_error(status):
    u = after_fetch(feed(error_count=1), FetchResult("u", status, error=f"http_{status}", retry_after=7200), NOW, POLICY)
    assert u.error_count == 1 and minutes(u) == 120 and not u.counts_as_error
    capped = after_fetch(feed(), FetchResult("u", status, error="x", retry_after=10 ** 9), NOW, POLICY)
    assert minutes(capped) == 24 * 60


def test_failures_back_off_exponentially_with_jitter_and_cap():
    delays = []
    f = feed()
    for _ in range(10):
        u = after_fetch(f, FetchResult("u", 500, error="http_500"), NOW, POLICY)
        delays.append(minutes(u))
        f = feed(error_count=u.error_count)
    assert [round(d / 15 / j) for d, j in zip(delays[:5], [jitter(7, n) for n in range(1, 6)])] == [1, 2, 4, 8, 16]
    assert all(0.9 * 24 * 60 <= d <= 1.1 * 24 * 60 for d in delays[-2:])
    assert f.error_count == 10


def test_parse_error_on_200_counts_and_keeps_old_validators():
    u = after_fetch(feed(), FetchResult("u", 200, b"<html>", etag='"new"'), NOW, POLICY, parse_error="not_a_feed")
    assert u.last_error == "not_a_feed" and u.error_count == 1 and u.etag == '"old"'


def test_jitter_is_stable_and_bounded():
    values = [jitter(i, n) for i in range(50) for n in range(1, 5)]
    assert all(0.9 <= v <= 1.1 for v in values) and len(set(values)) > 100
    assert jitter(3, 2) == jitter(3, 2)
    assert backoff_interval(feed(), POLICY, 1) != backoff_interval(feed(id=8), POLICY, 1)


def test_due():
    assert is_due(feed(next_poll=None), NOW)
    assert is_due(feed(next_poll=NOW - timedelta(seconds=1)), NOW)
    assert not is_due(feed(next_poll=NOW + timedelta(seconds=1)), NOW)
    assert not is_due(feed(disabled=True), NOW)
