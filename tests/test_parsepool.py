"""ParsePool: parses in worker processes, one time budget per parse, stuck workers replaced."""
from __future__ import annotations

import os
import pickle
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.parsepool import ParsePool, default_context
from monitor.types import ParsedFeed

FEEDS = Path(__file__).parent / "data" / "feeds"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TECHCRUNCH = (FEEDS / "TechCrunch.xml").read_bytes()
JSON_FEED = (FEEDS / "json_feed.json").read_bytes()
LOGIN_PAGE = b"<html><body><form><input type=password></form></body></html>"


def slow_author_feed(n: int = 20_000) -> bytes:
    """feedparser's author-email regex backtracks quadratically on "a@" + "a." * n + "!".

    `(([a-zA-Z0-9-]+\\.)+)` overlaps the label after it, so every start position retries
    every split: n=8000 takes about a second, n=20000 several seconds (feedparser 6.0.14).
    """
    author = "a@" + "a." * n + "!"
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title><item><title>x</title>'
            f"<author>{author}</author></item></channel></rss>").encode()


def test_defaults() -> None:
    pool = ParsePool()
    assert pool.workers == os.cpu_count()
    assert pool.parse_timeout == 10.0
    assert default_context() in ("forkserver", "spawn")


def test_pool_results_match_in_process_parsing() -> None:
    with ParsePool(workers=2, parse_timeout=10) as pool:
        pool.submit("tc", TECHCRUNCH, {"content-type": "application/rss+xml"}, NOW)
        pool.submit("json", JSON_FEED, {"content-type": "application/json"}, NOW)
        pool.submit("login", LOGIN_PAGE, {"content-type": "text/html"}, NOW)
        outcomes = dict(pool.results())
    assert outcomes["tc"] == parse_feed(TECHCRUNCH, {"content-type": "application/rss+xml"}, NOW)
    assert len(outcomes["json"].entries) == 20
    assert isinstance(outcomes["login"], ParseError)
    assert (outcomes["login"].reason, type(outcomes["login"])) == ("not_a_feed", ParseError)
    assert outcomes["login"].detail.startswith("no feed version and no entries")


def test_slow_parse_times_out_while_other_feeds_succeed() -> None:
    budget = 1.0
    with ParsePool(workers=2, parse_timeout=budget) as pool:
        start = time.monotonic()
        pool.submit("slow", slow_author_feed(), {}, NOW)
        for i in range(4):
            pool.submit(f"good{i}", JSON_FEED, {}, NOW)
        outcomes = {}
        finished = {}
        for key, outcome in pool.results():
            outcomes[key] = outcome
            finished[key] = time.monotonic() - start
        assert isinstance(outcomes["slow"], ParseError)
        assert outcomes["slow"].reason == "parse_timeout"
        assert budget <= finished["slow"] < budget + 1.5
        for i in range(4):
            assert isinstance(outcomes[f"good{i}"], ParsedFeed)
            assert len(outcomes[f"good{i}"].entries) == 20
            assert finished[f"good{i}"] < budget  # not stuck behind the slow one
        # The killed worker was replaced: the pool still has two working processes.
        pool.submit("after1", JSON_FEED, {}, NOW)
        pool.submit("after2", JSON_FEED, {}, NOW)
        after = dict(pool.results())
    assert all(isinstance(after[k], ParsedFeed) for k in ("after1", "after2"))


def test_two_slow_feeds_on_two_workers_both_time_out_in_parallel() -> None:
    with ParsePool(workers=2, parse_timeout=0.5) as pool:
        start = time.monotonic()
        outcomes = dict(pool.parse_many([
            ("a", slow_author_feed(), {}, NOW),
            ("b", slow_author_feed(), {}, NOW),
            ("c", JSON_FEED, {}, NOW),
        ]))
        elapsed = time.monotonic() - start
    assert outcomes["a"].reason == outcomes["b"].reason == "parse_timeout"
    assert isinstance(outcomes["c"], ParsedFeed)
    assert elapsed < 0.5 * 2 + 1.5


def test_in_process_mode_keeps_order() -> None:
    pool = ParsePool(workers=0)
    pool.submit(1, JSON_FEED, {}, NOW)
    pool.submit(2, b"", {}, NOW)
    pool.submit(3, TECHCRUNCH, {}, NOW)
    outcomes = list(pool.results())
    assert [key for key, _ in outcomes] == [1, 2, 3]
    assert isinstance(outcomes[0][1], ParsedFeed)
    assert outcomes[1][1].reason == "not_a_feed"
    assert list(pool.results()) == []
    pool.close()


def test_close_does_not_wait_for_a_stuck_parse() -> None:
    pool = ParsePool(workers=1, parse_timeout=60)
    pool.start()
    pool.submit("stuck", slow_author_feed(30_000), {}, NOW)
    time.sleep(0.2)
    start = time.monotonic()
    pool.close()
    assert time.monotonic() - start < 3
    with pytest.raises(RuntimeError):
        pool.submit("late", JSON_FEED, {}, NOW)


def test_results_are_picklable() -> None:
    feed = parse_feed(TECHCRUNCH, {}, NOW)
    assert pickle.loads(pickle.dumps(feed)) == feed


def test_spawn_context_works_too() -> None:
    with ParsePool(workers=1, context="spawn") as pool:
        pool.submit("json", JSON_FEED, {}, NOW)
        ((key, outcome),) = list(pool.results())
    assert key == "json" and len(outcome.entries) == 20


def test_a_worker_that_dies_is_reported_and_replaced() -> None:
    with ParsePool(workers=1, parse_timeout=30) as pool:
        pool.submit("victim", slow_author_feed(30_000), {}, NOW)
        (pid,) = pool.pids()
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        ((key, outcome),) = list(pool.results())
        assert (key, outcome.reason) == ("victim", "parser_crashed")
        assert pool.pids() != [pid]
        pool.submit("next", JSON_FEED, {}, NOW)
        ((key, outcome),) = list(pool.results())
    assert key == "next" and isinstance(outcome, ParsedFeed)


def test_workers_are_recycled_after_max_tasks() -> None:
    with ParsePool(workers=1, max_tasks_per_worker=2) as pool:
        first = pool.pids()
        outcomes = dict(pool.parse_many([(i, JSON_FEED, {}, NOW) for i in range(3)]))
        assert all(isinstance(o, ParsedFeed) for o in outcomes.values())
        assert pool.pids() != first and len(pool.pids()) == 1


def test_parse_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ParsePool(parse_timeout=0)


def test_results_can_return_while_a_slow_parse_runs() -> None:
    with ParsePool(workers=2, parse_timeout=1.5) as pool:
        pool.submit("slow", slow_author_feed(), {}, NOW)
        start = time.monotonic()
        assert list(pool.results(wait_at_most=0.1)) == []
        assert time.monotonic() - start < 0.5
        pool.submit("quick", JSON_FEED, {}, NOW)  # goes to the idle worker at once
        first = list(pool.results(wait_at_most=0.3))
        assert [key for key, _ in first] == ["quick"]
        ((key, outcome),) = list(pool.results())
    assert (key, outcome.reason) == ("slow", "parse_timeout")
