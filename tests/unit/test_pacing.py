"""Pacing per host and API (as fast as Google allows and no faster), on the fakes: the
plan is pure; lanes are independent per host; a refusal slows only its own host's lane; the
expected finish (`eta`) comes from the plan. Ordering and counts, never timings."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.lanes import Lanes
from common.limits import Limit
from common.pacing import HEADROOM, LOOKAHEAD, PUBLISHED, LimitsError, parse_limits, plan_lane
from tests.fakes import MemoryDocuments, http_error, rate_limited
from tests.support import free_leads, request, unique
from tests.unit.world import World

T0 = datetime(2030, 1, 7, 15, tzinfo=UTC)
# 1,100 Gmail units a 2 s window: ten confirmations a window, one every 0.21 s at the headroom.
GMAIL = {"gmail": {"units": 1100, "perSeconds": 2}}
CALENDAR = {"calendar": {"requests": 600, "perSeconds": 60}}


def test_google_published_figures_are_the_default_and_a_bad_document_is_refused() -> None:
    assert parse_limits(None).document == PUBLISHED
    gmail = parse_limits(None).interval("gmail")
    assert gmail == timedelta(seconds=110 * 60 / (15000 * HEADROOM))
    assert parse_limits(json.dumps(GMAIL)).interval("drive") is None
    for bad in ("[1]", "{", '{"gmail": {"units": "many"}}', '{"drive": {"writes": true}}'):
        with pytest.raises(LimitsError):
            parse_limits(bad)


def test_a_lane_spaces_its_leads_from_when_it_is_free() -> None:
    plan = plan_lane(3, now=T0, next_free=T0 + timedelta(seconds=5), interval=timedelta(seconds=2))
    assert plan.starts == [T0 + timedelta(seconds=s) for s in (5, 7, 9)]
    assert plan.next_free == T0 + timedelta(seconds=11)
    assert plan_lane(
        1, now=T0, next_free=T0 - timedelta(hours=1), interval=timedelta(0)
    ).starts == [T0]


def test_leads_past_the_daily_cap_start_in_the_next_window() -> None:
    day = timedelta(seconds=30)
    plan = plan_lane(5, now=T0, next_free=T0, interval=timedelta(0), daily=(2, day))
    assert plan.starts == [T0, T0, T0 + day, T0 + day, T0 + 2 * day]
    assert plan.over_daily == 3


def _world(limits: dict[str, object]) -> World:
    return World(limits=parse_limits(json.dumps(limits)))


def test_a_paced_run_waits_in_its_lane_and_sends_in_planned_order() -> None:
    world = _world(GMAIL)
    run, host = unique("paced"), f"{unique('h')}@example.com"
    answer = world.schedule(request(run, free_leads(30), host=host, actions=["email"]))
    assert answer.status == 202
    receipts = world.receipts(run)
    starts = {
        lead: (r.get("waiting") or {}).get("until") or r.get("startAt")
        for (lead, _), r in receipts.items()
    }
    assert sorted(starts, key=lambda lead: starts[lead]) == sorted(starts)  # request order
    waiting = [r for r in receipts.values() if r.get("waiting")]
    assert len(waiting) == 27 and {w["waiting"]["api"] for w in waiting} == {"gmail"}
    last = max(starts.values())
    assert answer.body["eta"][host] > last  # the last start, and its own time after it
    world.pump()
    assert len(world.mailer.sent) == 3  # only what was due at once went
    for _ in range(40):
        world.tick(0.25)
    assert len(world.mailer.sent) == 30 and world.counts_match_receipts(run)
    sent_order = [m["raw"] for m in world.mailer.sent]
    assert len(set(sent_order)) == 30
    assert world.calls.counted["drafts.send"] == 30  # no call refused or repeated


def test_two_hosts_lanes_are_independent() -> None:
    world = _world(GMAIL)
    big, small = f"{unique('big')}@example.com", f"{unique('small')}@example.com"
    world.schedule(request(unique("a"), free_leads(100), host=big, actions=["email"]))
    answer = world.schedule(request(unique("b"), free_leads(3), host=small, actions=["email"]))
    eta_small = datetime.fromisoformat(answer.body["eta"][small].replace("Z", "+00:00"))
    assert eta_small - world.clock() < timedelta(seconds=4)  # not behind the big host's 100
    assert world.lanes.read(small, "gmail").next_free < world.lanes.read(big, "gmail").next_free


def test_a_refusal_slows_only_its_own_hosts_lane_and_it_speeds_up_again() -> None:
    world = _world(GMAIL)
    slow, other = f"{unique('slow')}@example.com", f"{unique('other')}@example.com"
    world.calls.fail("drafts.send", http_error(403, "userRateLimitExceeded", "User Rate Limit"))
    world.schedule(request(unique("s"), free_leads(1), host=slow, actions=["email"]))
    world.pump()
    assert world.lanes.read(slow, "gmail").factor == 0.5
    assert world.lanes.read(slow, "gmail").closed(world.clock()) is not None
    world.schedule(request(unique("o"), free_leads(1), host=other, actions=["email"]))
    world.pump()
    assert world.lanes.read(other, "gmail").factor == 1.0
    for _ in range(20):
        world.tick(1.0)
    assert world.lanes.read(slow, "gmail").factor == 0.5  # nothing used the lane meanwhile
    run = unique("later")
    world.schedule(request(run, free_leads(10), host=slow, actions=["email"]))
    world.pump()
    for _ in range(10):
        world.tick(1.0)
    assert world.lanes.read(slow, "gmail").factor > 0.5  # its leads filled it: it sped up
    assert len(world.mailer.sent) == 12


def test_a_run_past_the_daily_cap_says_how_many_wait_for_the_next_window() -> None:
    world = _world({"gmail": {"sends": 20, "sendsPerSeconds": 30}})
    run, host = unique("cap"), f"{unique('h')}@example.com"
    answer = world.schedule(request(run, free_leads(30), host=host, actions=["email"]))
    assert answer.body["waitingForDailyCap"] == {host: 10}
    waits = [r["waiting"] for r in world.receipts(run).values() if r.get("waiting")]
    assert len(waits) == 10 and {w["reason"] for w in waits} == {"rate_limit"}
    world.pump()
    assert len(world.mailer.sent) == 20
    world.tick(31)
    assert len(world.mailer.sent) == 30


def test_a_due_lead_whose_message_was_lost_is_published_again_once_the_memory_lets_go() -> None:
    """No lead is skipped (docs/api.md, "Receipts"): the sweeper publishes a due lead without a
    write and remembers it; if that message is lost, the lead still waits and goes again."""
    from common.handlers.sweep import Published, resume_due

    world = _world(GMAIL)
    run = unique("lost")
    world.schedule(
        request(run, free_leads(5), host=f"{unique('h')}@example.com", actions=["email"])
    )
    world.bus.published.clear()  # whatever went at once is not the point here
    world.later += timedelta(seconds=10)  # every start is due
    memory = Published(timedelta(milliseconds=50))
    waiting = [r for r in world.receipts(run).values() if r["waiting"]]
    first = resume_due(world.store, world.bus, world.clock(), world.pace, memory)
    assert first == len(waiting) == 2  # the rest went at once: their starts were due
    world.bus.published.clear()  # lost before Pub/Sub had it
    assert resume_due(world.store, world.bus, world.clock(), world.pace, memory) == 0
    world.later += timedelta(milliseconds=60)  # the memory lets go
    assert resume_due(world.store, world.bus, world.clock(), world.pace, memory) == first
    world.pump()
    assert len(world.mailer.sent) == first


def test_a_call_that_goes_through_ends_the_refusal_streak_whatever_it_read_before() -> None:
    """Deliveries read their lane before they call; refusals met by other leads meanwhile
    close the gate with doubling waits. The next call that goes through must end that streak
    (it was judged by the lane as first read, so the waits kept doubling to a minute)."""
    lanes, host = Lanes(MemoryDocuments()), f"{unique('h')}@example.com"
    in_flight = lanes.read(host, "gmail")
    at = T0
    for wait in (1, 2, 4):  # each refused as the gate before it opened
        until = at + timedelta(seconds=wait)
        lanes.close(host, Limit("rate_limit", "gmail", until), at)
        at = until
    assert in_flight.streak == 0 and lanes.read(host, "gmail").streak == 3
    lanes.passed(host, "gmail", at + timedelta(seconds=1), in_use=False)
    assert lanes.read(host, "gmail").streak == 0


def test_calls_in_flight_when_the_gate_closes_do_not_lengthen_its_wait() -> None:
    """Ten calls on their way when Google refuses the first are refused too: one wait, not ten
    doubling ones; a limit of another kind that asks for longer (the daily cap) still stands."""
    lanes, host = Lanes(MemoryDocuments()), f"{unique('h')}@example.com"
    first = lanes.close(host, Limit("rate_limit", "calendar", T0 + timedelta(seconds=1)), T0)
    for k in range(1, 10):  # as `limit_of` words them: doubling with the streak it read
        later = Limit("rate_limit", "calendar", T0 + timedelta(seconds=2**k))
        assert lanes.close(host, later, T0 + timedelta(milliseconds=10 * k)) == first
    lane = lanes.read(host, "calendar")
    assert (lane.streak, lane.factor, lane.closed(T0)) == (1, 0.5, first)
    daily = Limit("daily_limit", "calendar", T0 + timedelta(hours=1))
    assert lanes.close(host, daily, T0 + timedelta(milliseconds=200)) == daily


def test_deliveries_that_met_one_refusal_call_again_an_interval_apart_not_together() -> None:
    """Two deliveries of one process meet the gate a refusal closed, briefly: each waits for it
    in process, then takes its turn in the lane, instead of both calling the moment it opens."""
    from common.handlers.delivery import _Lane

    limits = parse_limits(json.dumps({"drive": {"writes": 3, "perSeconds": 1}}))
    lanes, host = Lanes(MemoryDocuments(), limits), f"{unique('h')}@example.com"
    opens = T0 + timedelta(milliseconds=300)
    lanes.close(host, Limit("rate_limit", "drive", opens), T0)
    slept: list[float] = []
    for _ in range(2):
        _Lane(lanes, host, "drive", lambda: T0, slept.append, start=opens).turn()
    step = limits.interval("drive") / lanes.read(host, "drive").factor  # type: ignore[operator]
    assert slept[0] == pytest.approx(0.3)
    assert slept[1] == pytest.approx(0.3 + step.total_seconds())


def test_leads_spaced_in_a_slowed_lane_come_closer_as_it_speeds_up_again() -> None:
    """A lane slowed to its floor gives back a tenth of its rate a second while calls go
    through: leads spaced then must not keep the floor's pace once it has recovered."""
    interval = timedelta(milliseconds=100)
    plan = plan_lane(60, now=T0, next_free=T0, interval=interval, factor=0.05, speedup=0.1)
    steps = [b - a for a, b in zip(plan.starts, plan.starts[1:], strict=False)]
    assert steps[0] == timedelta(seconds=2)  # the floor: a twentieth of the rate
    assert all(later <= earlier for earlier, later in itertools.pairwise(steps))
    assert steps[-1] == interval  # recovered
    assert plan.next_free - T0 < 59 * timedelta(seconds=2) / 4
    slow = plan_lane(60, now=T0, next_free=T0, interval=interval, factor=0.05)
    assert slow.next_free - T0 == 60 * timedelta(seconds=2)  # without recovery: the floor's pace


def test_a_lane_refused_promptly_steps_down_to_just_under_that_rate_then_probes_slowly() -> None:
    """Drive refuses within its one-second window, so the factor it refused is where its limit
    is: the lane steps down to 0.9 of it (not half), and probes from there a tenth as fast;
    refused again, it steps down again and comes back quickly to 0.9 of where it was refused.
    Calendar refuses once its minute has filled, far past the rate that filled it: the lane
    halves and recovers at one pace."""
    limits = parse_limits(json.dumps({"drive": {"writes": 3, "perSeconds": 1}, **CALENDAR}))
    lanes, host = Lanes(MemoryDocuments(), limits), f"{unique('h')}@example.com"
    factors: dict[str, list[float]] = {}
    for api in ("drive", "calendar"):
        lanes.close(host, Limit("rate_limit", api, T0 + timedelta(milliseconds=100)), T0)
        for second in range(1, 8):
            lanes.passed(host, api, T0 + timedelta(seconds=second), in_use=True)
            factors.setdefault(api, []).append(round(lanes.read(host, api).factor, 3))
    assert factors["drive"] == [0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]
    assert factors["calendar"] == [0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0]
    lanes.close(
        host, Limit("rate_limit", "drive", T0 + timedelta(seconds=9)), T0 + timedelta(seconds=8.5)
    )
    assert round(lanes.read(host, "drive").factor, 4) == round(0.97 * 0.9, 4)
    again = []
    for second in range(10, 14):
        lanes.passed(host, "drive", T0 + timedelta(seconds=second), in_use=True)
        again.append(round(lanes.read(host, "drive").factor, 4))
    # 0.873 is already 0.9 of the refused 0.97: it probes from there.
    assert again == [0.883, 0.893, 0.903, 0.913]
    plan = plan_lane(
        8,
        now=T0,
        next_free=T0,
        interval=timedelta(seconds=1),
        factor=0.5,
        speedup=0.1,
        refused=1.0,
    )
    steps = [round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(plan.starts)]
    # The plan counts on the same recovery: 0.5, 0.6, ... 0.9, then 0.91, 0.92.
    assert steps[:7] == [2.0, 1.667, 1.429, 1.25, 1.111, 1.099, 1.087]


def _drive_429(world: World, seconds: float) -> None:
    world.calls.fail("files.create", rate_limited(world.clock() + timedelta(seconds=seconds)))


def test_leads_parked_again_by_a_closed_gate_are_spaced_anew_when_it_opens() -> None:
    """A lead the sweeper spaced keeps its start; parked again by a gate that closed since, it has
    lost that start, and when the gate opens the leads it held go out spaced, not all at once."""
    world = _world({"drive": {"writes": 10, "perSeconds": 1}})
    run, host = unique("herd"), f"{unique('h')}@example.com"
    _drive_429(world, 5)
    world.schedule(request(run, free_leads(20), host=host, actions=["drive"]))
    world.pump()  # the first lead is refused: the gate closes for 5 s
    world.tick(6)  # the leads due meanwhile are spaced anew behind the gate
    spaced = [r for r in world.receipts(run).values() if r.get("spaced")]
    assert len(spaced) == 15
    _drive_429(world, 20)  # the next call is refused again: the gate closes over them
    for _ in range(12):
        world.tick(0.5)
    held = [r for r in world.receipts(run).values() if r["status"] == "pending"]
    assert len(held) == 15
    assert len({r["waiting"]["until"] for r in held}) == 1  # all parked until the gate opens
    # When it opens, the first few go (what the lookahead holds at the slowed lane's step),
    # the rest a step apart.
    step = world.limits.interval("drive") / world.lanes.read(host, "drive").factor  # type: ignore[operator]
    gone = world.tick(20)
    assert gone == 5 and gone <= 1 + LOOKAHEAD / step < len(held) / 2
    for _ in range(40):
        world.tick(0.5)
    assert {r["outcome"] for r in world.receipts(run).values()} == {"created"}
    assert len(world.drive.folders) == 20


def test_two_overlapping_sweeper_passes_publish_a_due_lead_once() -> None:
    """A tick's last pass may still run when the next tick's first one starts: both read the
    same due leads, and each lead is published by one of them."""
    import contextlib
    import threading

    from common.handlers.sweep import Published, resume_due

    world = _world(GMAIL)
    run = unique("overlap")
    world.schedule(
        request(run, free_leads(6), host=f"{unique('h')}@example.com", actions=["email"])
    )
    world.bus.published.clear()
    world.later += timedelta(seconds=10)  # every start is due
    waiting = sorted(lead for (lead, _), r in world.receipts(run).items() if r.get("waiting"))
    both_read, both_decided = threading.Barrier(2), threading.Barrier(2)
    store_due, lane_read = world.store.due_receipts, world.lanes.read

    def due_after_both_read(*args: Any) -> Iterator[Any]:
        rows = list(store_due(*args))
        both_read.wait(timeout=5)
        return iter(rows)

    def read_once_both_decided(*args: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_decided.wait(timeout=1)  # the other pass took nothing: it never comes
        return lane_read(*args)

    world.store.due_receipts = due_after_both_read  # type: ignore[method-assign]
    world.lanes.read = read_once_both_decided  # type: ignore[method-assign]
    memory = Published(timedelta(minutes=1))
    passes = [
        threading.Thread(
            target=resume_due, args=(world.store, world.bus, world.clock(), world.pace, memory)
        )
        for _ in range(2)
    ]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join(timeout=10)
    assert len(waiting) == 3
    assert sorted(m.lead_doc_id for m in world.bus.published) == waiting  # each once


def test_a_folder_takes_its_turn_after_its_checkpoint_right_before_the_create() -> None:
    """Drive counts writes a second: a commit between the turn and the create would move the
    create by the commit's latency, and a create a little early in a full window is refused."""
    from dataclasses import replace

    world = _world({"drive": {"writes": 10, "perSeconds": 1}})
    events: list[str] = []
    checkpoint, create = world.store.checkpoint, world.drive.create_folder

    def logged(name: str, call: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            events.append(name)
            return call(*args, **kwargs)

        return run

    world.store.checkpoint = logged("checkpoint", checkpoint)  # type: ignore[method-assign]
    world.drive.create_folder = logged("create", create)  # type: ignore[method-assign]
    world.deps = replace(world.deps, sleep=logged("turn", world.wait))
    run = unique("turn")
    world.schedule(
        request(run, free_leads(4), host=f"{unique('h')}@example.com", actions=["drive"])
    )
    world.pump()
    for _ in range(10):
        world.tick(0.25)
    assert len(world.drive.folders) == 4
    assert events.count("turn") == events.count("create") == 4
    for i, name in enumerate(events):
        if name == "turn":
            assert events[i - 1] == "checkpoint" and events[i + 1] == "create"
