"""ParsePool: parses in worker processes, one time budget per parse, stuck workers replaced."""
from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.feeds.parse import parse_feed
from monitor.feeds.parsepool import ParsePool, default_context
from monitor.types import ParsedFeed
from tests.support import DATA

FEEDS = DATA / "feeds"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TECHCRUNCH = (FEEDS / "TechCrunch.xml").read_bytes()
JSON_FEED = (FEEDS / "json_feed.json").read_bytes()
LOGIN_PAGE = b"<html><body><form><input type=password></form></body></html>"


def slow_author_feed(n: int = 80_000) -> bytes:
    """feedparser's author-email regex backtracks quadratically on "a@" + "a." * n + "!".

    `(([a-zA-Z0-9-]+\\.)+)` overlaps the label after it, so every start position retries
    every split: n=10 000 takes 2.5 s of CPU, n=20 000 11 s, n=40 000 52 s (feedparser 6.0.14),
    so the default keeps a worker busy for minutes: far longer than any bound asserted here, and
    a parse that is not cut off makes these tests fail rather than pass late.
    """
    author = "a@" + "a." * n + "!"
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title><item><title>x</title>'
            f"<author>{author}</author></item></channel></rss>").encode()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_until_parsing(pids: list[int], cpu: float = 0.2, within: float = 60.0) -> None:
    """Wait until each worker in `pids` has used `cpu` more seconds of CPU, i.e. is inside its parse.

    An idle worker blocks in recv() and uses no CPU, so CPU use means the parse has started; and a
    slow_author_feed() parse, once started, runs until the pool kills it (the pool only kills inside
    results() and close()). `within` is a generous deadline for a busy machine, not a measurement.
    """
    before = {pid: cpu_seconds(pid) for pid in pids}
    deadline = time.monotonic() + within
    while not all(cpu_seconds(pid) - before[pid] >= cpu for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} did not all start parsing within {within:g} s"
        time.sleep(0.05)


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
    """A parse over budget is cut off at its budget, and the other worker parses on meanwhile.

    The budget is long enough for the four good parses (tens of ms each) even on a loaded
    machine, so their coming out before the slow one's timeout proves they were not queued
    behind it. The upper bound is generous; the slow document alone would take minutes.
    """
    budget = 5.0
    with ParsePool(workers=2, parse_timeout=budget) as pool:
        started_with = set(pool.pids())
        start = time.monotonic()
        pool.submit("slow", slow_author_feed(), {}, NOW)
        for i in range(4):
            pool.submit(f"good{i}", JSON_FEED, {}, NOW)
        order = []
        outcomes = {}
        finished = {}
        for key, outcome in pool.results():
            order.append(key)
            outcomes[key] = outcome
            finished[key] = time.monotonic() - start
        assert isinstance(outcomes["slow"], ParseError)
        assert outcomes["slow"].reason == "parse_timeout"
        assert budget <= finished["slow"] < budget + 30
        # not stuck behind the slow one: every good feed came out while the slow parse still ran
        assert sorted(order[:4]) == [f"good{i}" for i in range(4)] and order[4:] == ["slow"], order
        for i in range(4):
            assert isinstance(outcomes[f"good{i}"], ParsedFeed)
            assert len(outcomes[f"good{i}"].entries) == 20
        # The killed worker was replaced: the pool still has two working processes, one of them new.
        assert len(pool.pids()) == 2 and len(started_with & set(pool.pids())) == 1
        pool.submit("after1", JSON_FEED, {}, NOW)
        pool.submit("after2", JSON_FEED, {}, NOW)
        after = dict(pool.results())
    assert all(isinstance(after[k], ParsedFeed) for k in ("after1", "after2"))


def test_two_slow_feeds_on_two_workers_both_time_out_in_parallel() -> None:
    """Each parse has its own budget from its own start: two slow feeds on two workers cost one budget.

    Both workers are seen parsing at the same time; once one budget has passed since both were
    handed out, a single results() call that waits for nothing reports both timeouts (run one
    after the other, the second would still be inside its budget).
    """
    budget = 0.5
    with ParsePool(workers=2, parse_timeout=budget) as pool:
        pool.submit("a", slow_author_feed(), {}, NOW)
        pool.submit("b", slow_author_feed(), {}, NOW)
        handed_out = time.monotonic()  # a pool that runs them in parallel has handed both out by now
        pool.submit("c", JSON_FEED, {}, NOW)  # queued until a worker is free
        slow_pids = pool.pids()
        wait_until_parsing(slow_pids)
        while time.monotonic() - handed_out < budget:
            time.sleep(0.05)
        first = dict(pool.results(wait_at_most=0))
        assert {"a", "b"} <= set(first), first
        assert first["a"].reason == first["b"].reason == "parse_timeout"
        rest = dict(pool.results())
        assert not set(slow_pids) & set(pool.pids())  # both killed and replaced
    assert isinstance((first | rest)["c"], ParsedFeed)


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
    """close() kills a worker stuck in a parse: it returns within 20 s, the parse would take minutes."""
    pool = ParsePool(workers=1, parse_timeout=600)
    pool.start()
    pool.submit("stuck", slow_author_feed(), {}, NOW)
    (pid,) = pool.pids()
    wait_until_parsing([pid])
    closer = threading.Thread(target=pool.close, daemon=True)
    closer.start()
    closer.join(timeout=20)
    assert not closer.is_alive(), "close() waited for the stuck parse"
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:  # killed, not left parsing in the background
        time.sleep(0.05)
    assert not alive(pid)
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
    with ParsePool(workers=1, parse_timeout=600) as pool:
        pool.submit("victim", slow_author_feed(), {}, NOW)
        (pid,) = pool.pids()
        wait_until_parsing([pid])  # it dies in the middle of the parse
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
    """results(wait_at_most=...) hands control back while a parse runs, so the idle worker can be fed.

    Proven by what is still running rather than by a stopwatch: the slow parse can only end by
    its timeout, which kills and replaces its worker; the same two workers after results() came
    back mean it came back without waiting for the slow parse.
    """
    budget = 5.0
    with ParsePool(workers=2, parse_timeout=budget) as pool:
        workers = pool.pids()
        pool.submit("slow", slow_author_feed(), {}, NOW)
        assert list(pool.results(wait_at_most=0.1)) == []
        assert pool.pids() == workers
        pool.submit("quick", JSON_FEED, {}, NOW)  # goes to the idle worker at once
        key, outcome = next(pool.results(wait_at_most=60))
        assert key == "quick" and isinstance(outcome, ParsedFeed)
        assert pool.pids() == workers  # the slow parse is still running
        ((key, outcome),) = list(pool.results())
    assert (key, outcome.reason) == ("slow", "parse_timeout")
