"""The sweeper at rest (a fake clock; the store's queries counted): a tick with nothing due within
its minute ends after looking once; a backlog waiting hours away costs nothing; what falls due
within the tick is published at its time; a writer of near waits wakes the sweeper."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from common.handlers import sweep
from common.models import parse_time
from common.pacing import parse_limits
from tests.support import free_leads, request, unique
from tests.unit.world import World

GMAIL = {"gmail": {"units": 1100, "perSeconds": 2}}  # a confirmation every ~0.21 s in the lane
SLOW_GMAIL = {"gmail": {"units": 1100, "perSeconds": 7200}}  # ten confirmations in two hours
QUERIES = ("next_wait", "due_receipts", "stale_receipts")


def counted(monkeypatch: pytest.MonkeyPatch, limits: Any = None) -> tuple[World, Counter[str]]:
    world = World() if limits is None else World(limits=parse_limits(json.dumps(limits)))
    queries: Counter[str] = Counter()
    for name in QUERIES:
        method = getattr(world.docs, name)

        def count(*args: Any, _name: str = name, _method: Any = method) -> Any:
            queries[_name] += 1
            return _method(*args)

        monkeypatch.setattr(world.docs, name, count)
    return world, queries


def tick(world: World, sleep: Any = None) -> int:
    """One sweeper tick of a minute on the world's clock (`sleep`: the world's wait)."""
    return sweep.sweep(
        world.store,
        world.bus,
        world.pace,
        stale_after=timedelta(minutes=10),
        loop_s=60.0,
        clock=world.clock,
        sleep=sleep or world.wait,
    )


def test_a_tick_with_nothing_waiting_ends_after_one_look(monkeypatch: pytest.MonkeyPatch) -> None:
    world, queries = counted(monkeypatch)
    started = world.clock()
    assert tick(world) == 0
    assert queries == {"stale_receipts": 1, "next_wait": 1}
    assert world.clock() == started  # it slept not at all


def test_a_backlog_waiting_hours_away_costs_one_look_a_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, queries = counted(monkeypatch, SLOW_GMAIL)
    run = unique("backlog")
    world.schedule(request(run, free_leads(40), actions=["email"]))
    world.bus.published.clear()
    queries.clear()
    assert tick(world) == 0
    assert queries == {"stale_receipts": 1, "next_wait": 1}


def test_what_falls_due_within_the_tick_is_published_at_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, queries = counted(monkeypatch, GMAIL)
    run = unique("due")
    body = request(run, free_leads(20), actions=["email"])
    world.schedule(body)
    assert world.bus.wakes == 1  # schedule left waits: it woke the sweeper
    published_now = len(world.bus.published)
    starts = sorted(
        r["waiting"]["until"] for r in world.receipts(run).values() if r["waiting"] is not None
    )
    assert published_now + len(starts) == 20 and starts
    world.bus.published.clear()
    assert tick(world) == len(starts)
    last = max(starts)
    # It ended once the last wait was published: no minute of polling after it.
    assert world.clock() <= parse_time(last)
    assert queries["due_receipts"] <= len(starts) + 1


def test_one_tick_at_a_time_follows_the_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    world, _ = counted(monkeypatch, GMAIL)
    run = unique("one-tick")
    world.schedule(request(run, free_leads(10), actions=["email"]))
    world.bus.published.clear()
    assert world.store.take_tick(
        "another tick", world.clock(), world.clock() + timedelta(seconds=60)
    )
    assert tick(world) == 0 and world.bus.published == []  # that one follows them
    world.wait(61)  # its hold has run out
    assert tick(world) > 0


def test_waits_written_while_a_tick_is_live_go_on_time_without_a_wake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, _ = counted(monkeypatch, GMAIL)
    world.schedule(request(unique("under-way"), free_leads(10), actions=["email"]))
    world.bus.published.clear()
    wakes = world.bus.wakes
    later = unique("written-meanwhile")
    written: list[Any] = []

    def sleep(seconds: float) -> None:
        world.wait(seconds)
        if not written:  # a request arrives while the tick sleeps
            written.append(world.schedule(request(later, free_leads(10), actions=["email"])))

    tick(world, sleep)
    assert world.bus.wakes == wakes  # the live tick saw its waits: no wake
    waited = {k for k, r in world.receipts(later).items() if r["waiting"] is not None}
    published = {(m.lead_doc_id, m.action) for m in world.bus.published if m.run_id == later}
    assert waited and waited <= published


def test_a_wait_a_delivery_writes_while_the_tick_sleeps_is_published_on_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from common.limits import RATE_LIMIT, Limit

    world, _ = counted(monkeypatch, {"gmail": {"units": 1100, "perSeconds": 400}})
    world.schedule(request(unique("far"), free_leads(2), actions=["email"]))  # one waits ~42 s
    parked = unique("parked")
    world.schedule(request(parked, free_leads(1), actions=["drive"]))
    world.bus.published.clear()
    until: list[Any] = []
    sent_at: dict[str, Any] = {}
    publish = world.bus.publish

    def stamped(messages: Any, *args: Any, **kwargs: Any) -> int:
        batch = list(messages)
        for message in batch:
            sent_at.setdefault(message.run_id, world.clock())
        return publish(batch, *args, **kwargs)

    def sleep(seconds: float) -> None:
        if not until:  # a delivery meets Google's limit as the tick goes to sleep: it waits 3 s
            until.append(world.clock() + timedelta(seconds=3))
            wait = Limit(RATE_LIMIT, "drive", until[0])
            world.store.record(parked, "lead-000", "drive", lambda r: r.wait_for(wait))
        world.wait(seconds)

    monkeypatch.setattr(world.bus, "publish", stamped)
    tick(world, sleep)
    assert until and parked in sent_at
    assert sent_at[parked] - until[0] <= timedelta(seconds=2)  # not when the far wait falls due


def test_receipts_waiting_for_a_time_stay_out_of_the_stale_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, _ = counted(monkeypatch, SLOW_GMAIL)
    run = unique("old-backlog")
    world.schedule(request(run, free_leads(40), actions=["email"]))
    world.wait(11 * 60)  # older than the stale query's 10 minutes
    waiting = [k for k, r in world.receipts(run).items() if r["waiting"] is not None]
    assert len(waiting) > 30
    stale = world.docs.stale_receipts(world.clock() - timedelta(minutes=10), 500)
    assert [row for row in stale if row[0] == run and (row[1], row[2]) in waiting] == []
