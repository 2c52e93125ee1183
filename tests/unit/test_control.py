"""Steering a run on the fakes and a clock that stands still (docs/api.md, "Control"): the brake
is part of the guarded change that claims a receipt, a resumed lead is planned from now, a
cancel ends what is open, and counts equal receipts throughout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from common.handlers.control import handle_control
from common.handlers.intake import HttpResult
from common.models import parse_time, stamp
from common.pacing import LEAD_SECONDS, parse_limits
from common.store import Store
from tests.fakes import Interleaved
from tests.support import free_leads, request, unique
from tests.unit.world import World

# 1,100 Gmail units a 2 s window: a confirmation every 110 * 2 / (1100 * 0.95) s in the lane.
GMAIL = {"gmail": {"units": 1100, "perSeconds": 2}}


def control(
    world: World, run_id: str, command: str, uid: str = "alice", **fields: Any
) -> HttpResult:
    body = json.dumps({"runId": run_id, "command": command, **fields}).encode()
    return handle_control(world.store, world.bus, world.pace, uid, body, world.clock())


def statuses(world: World, run_id: str) -> dict[tuple[str, str], tuple[str, Any]]:
    return {
        key: (r["status"], (r["waiting"] or {}).get("reason"))
        for key, r in world.receipts(run_id).items()
    }


def made(world: World) -> int:
    """Everything the fakes hold that a run made."""
    return len(world.calendar.events) + len(world.mailer.sent) + len(world.drive.folders)


def test_a_paused_run_makes_nothing_and_its_receipts_say_paused() -> None:
    world = World()
    run = unique("pause")
    assert world.schedule(request(run, free_leads(3))).status == 202
    answer = control(world, run, "pause")
    assert answer.status == 200
    assert (answer.body["state"], answer.body["affected"], answer.body["inFlight"]) == (
        "paused",
        9,
        [],
    )
    world.pump()  # the messages schedule published are delivered: each is acknowledged
    assert made(world) == 0 and world.outcomes == ["paused"] * 6  # calendar and drive, 3 each
    assert set(statuses(world, run).values()) == {("pending", "paused")}
    counts = world.store.counters(run)["counts"]
    assert (counts["paused"], counts["pending"], counts["waiting"]) == (9, 9, 0)
    assert world.counts_match_receipts(run)
    assert control(world, run, "pause").body["affected"] == 0  # repeating changes nothing


def test_pause_then_resume_ends_every_action_as_if_never_paused() -> None:
    world = World()
    run = unique("resume")
    world.schedule(request(run, free_leads(3)))
    control(world, run, "pause")
    world.pump()
    answer = control(world, run, "resume")
    assert (answer.body["state"], answer.body["affected"]) == ("active", 9)
    world.pump()
    assert {s for s, _ in statuses(world, run).values()} == {"done"}
    assert (len(world.calendar.events), len(world.mailer.sent), len(world.drive.folders)) == (
        3,
        3,
        3,
    )
    assert world.counts_match_receipts(run)


def test_a_claim_refuses_a_paused_receipt_even_when_the_delivery_read_it_active() -> None:
    """The pause commits between the claim's read and its commit: the claim's guarded commit
    fails, it decides again on what the pause left, and takes no lease."""
    world = World()
    run = unique("race")
    world.schedule(request(run, free_leads(1), actions=["drive"]))
    message = world.bus.published.pop(0)
    racing = Interleaved(world.docs, lambda: control(world, run, "pause"))
    world.deps = world.deps.__class__(
        **{**world.deps.__dict__, "receipts": Store(racing, lease_s=60)}  # type: ignore[arg-type]
    )
    assert world.deliver(message) == "paused"
    assert racing.between is None  # the pause did get in between
    assert made(world) == 0
    assert statuses(world, run) == {("lead-000", "drive"): ("pending", "paused")}


def test_an_action_a_delivery_holds_is_in_flight_and_finishes_its_delivery() -> None:
    world = World()
    run = unique("flight")
    world.schedule(request(run, free_leads(2), actions=["drive"]))
    first = world.bus.published[0]
    claimed = world.store.claim(run, first.lead_doc_id, "drive", "someone", world.clock())
    answer = control(world, run, "pause")
    assert answer.body["inFlight"] == [{"leadDocId": first.lead_doc_id, "action": "drive"}]
    assert answer.body["affected"] == 2
    # That delivery finishes: its effect is recorded; the other lead stays paused.
    world.store.finish(run, first.lead_doc_id, "drive", _done(claimed.receipt.action))
    world.pump()
    assert statuses(world, run) == {
        ("lead-000", "drive"): ("done", None),
        ("lead-001", "drive"): ("pending", "paused"),
    }
    assert world.counts_match_receipts(run)


def test_a_cancelled_run_ends_what_is_open_and_refuses_more() -> None:
    world = World()
    run = unique("cancel")
    body = request(run, free_leads(3))
    world.schedule(body)
    world.pump()  # everything done
    world.schedule({**body, "leads": free_leads(2, prefix="late")})
    answer = control(world, run, "cancel")
    assert (answer.body["state"], answer.body["affected"]) == ("cancelled", 6)
    world.pump()
    assert made(world) == 9  # the three first leads' events, emails and folders; nothing more
    late = {k: v for k, v in statuses(world, run).items() if k[0].startswith("late")}
    assert set(late.values()) == {("cancelled", None)}
    assert world.store.counters(run)["counts"]["cancelled"] == 6
    assert world.counts_match_receipts(run)
    again = world.schedule(body)
    assert (again.status, again.body["error"]["code"]) == (409, "run_cancelled")
    for command in ("pause", "resume", "replay"):
        assert control(world, run, command).status == 409
    assert control(world, run, "cancel").body["affected"] == 0


def test_cancelling_some_leads_leaves_the_rest_of_the_run_going() -> None:
    world = World()
    run = unique("some")
    world.schedule(request(run, free_leads(4)))
    answer = control(world, run, "cancel", leadDocIds=["lead-002", "lead-003"])
    assert (answer.body["state"], answer.body["affected"]) == ("active", 6)
    world.pump()
    found = statuses(world, run)
    assert {found[(f"lead-00{i}", a)][0] for i in (0, 1) for a in ("calendar", "drive")} == {"done"}
    assert {found[(f"lead-00{i}", a)][0] for i in (2, 3) for a in ("calendar", "drive")} == {
        "cancelled"
    }
    assert len(world.calendar.events) == 2 and len(world.drive.folders) == 2
    assert world.counts_match_receipts(run)


def test_a_resumed_lead_is_planned_in_its_hosts_lane_from_now() -> None:
    world = World(limits=parse_limits(json.dumps(GMAIL)))
    run = unique("planned")
    world.schedule(request(run, free_leads(4), actions=["email"]))
    control(world, run, "pause")
    world.bus.published.clear()
    world.later += timedelta(hours=1)
    now = world.clock()
    answer = control(world, run, "resume")
    interval = world.limits.interval("gmail")
    assert interval is not None
    starts = sorted(
        r.planned or now
        for lead in ("lead-000", "lead-001", "lead-002", "lead-003")
        if (r := world.store.get_receipt(run, lead, "email")) is not None
    )
    # As stored: RFC 3339 with milliseconds.
    assert starts == [parse_time(stamp(now + interval * i)) for i in range(4)]
    assert list(answer.body["eta"].values()) == [stamp(now + interval * 3 + LEAD_SECONDS)]


def test_replay_reopens_failed_receipts_and_publishes_what_is_open_but_not_paused() -> None:
    world = World()
    run = unique("replay")
    world.calls.fail("files.create", *[_refused()] * 2)  # each lead's first create
    world.schedule(request(run, free_leads(2), actions=["drive"]))
    world.pump()
    assert {s for s, _ in statuses(world, run).values()} == {"failed"}
    answer = control(world, run, "replay", leadDocIds=["lead-000"])
    assert answer.body["affected"] == 1
    world.pump()
    assert statuses(world, run) == {
        ("lead-000", "drive"): ("done", None),
        ("lead-001", "drive"): ("failed", None),
    }
    assert world.counts_match_receipts(run)


def test_bad_and_foreign_commands_change_nothing() -> None:
    world = World()
    run = unique("hostile")
    world.schedule(request(run, free_leads(1)))
    before = world.receipts(run)
    cases = [
        ({"command": "explode"}, 400),
        ({"command": "pause", "leadDocIds": ["not a lead id!"]}, 400),
        ({"command": "pause", "leadDocIds": ["lead-999"]}, 400),
        ({"command": "pause", "leadDocIds": []}, 400),
        ({"command": "undo", "leadDocIds": ["lead-999"]}, 400),
        ({"command": "pause", "preview": True}, 400),
        ({"command": "pause", "extra": 1}, 400),
    ]
    for fields, status in cases:
        assert control(world, run, **fields).status == status, fields
    assert control(world, run, "pause", uid="mallory").status == 403
    assert control(world, unique("nothing"), "pause").status == 404
    assert world.receipts(run) == before
    assert world.store.get_run(run).get("state") is None  # type: ignore[union-attr]


def _done(action: str) -> Any:
    from common.receipts import Ending, Status

    return Ending(Status.DONE, "created", external={"folderId": "f-made-before-the-pause"})


def _refused() -> Any:
    from tests.fakes import http_error

    return http_error(400, "badRequest", "Invalid parent")


def test_leads_written_while_a_pause_takes_hold_follow_it() -> None:
    """Schedule read the run active; the pause committed before schedule wrote its new lead and
    paged the leads without it: schedule sees the pause after its write and pauses that lead."""
    world = World()
    run = unique("race-intake")
    body = request(run, free_leads(1), actions=["drive"])
    world.schedule(body)
    world.pump()
    racing = Interleaved(world.docs, lambda: control(world, run, "pause"))
    world.store = Store(racing, lease_s=60)  # type: ignore[arg-type]
    world.schedule({**body, "leads": free_leads(1, prefix="late")})
    assert racing.between is None  # the pause got in between
    world.pump()
    assert len(world.drive.folders) == 1  # the first lead's, from before the pause
    assert statuses(world, run)[("late-000", "drive")] == ("pending", "paused")
    assert world.counts_match_receipts(run)


def test_a_paused_then_cancelled_action_whose_delivery_died_ends_cancelled() -> None:
    world = World()
    run = unique("died")
    world.schedule(request(run, free_leads(1), actions=["drive"]))
    message = world.bus.published.pop(0)
    world.store.claim(run, "lead-000", "drive", "dies", world.clock())
    assert control(world, run, "pause").body["inFlight"] == [
        {"leadDocId": "lead-000", "action": "drive"}
    ]
    assert control(world, run, "cancel").body["inFlight"] == [
        {"leadDocId": "lead-000", "action": "drive"}
    ]
    world.later += timedelta(seconds=61)  # the lease the dead delivery held runs out
    world.deliver(message)  # a redelivery
    assert statuses(world, run) == {("lead-000", "drive"): ("cancelled", None)}
    assert made(world) == 0 and world.counts_match_receipts(run)


def test_a_paused_wait_leaves_no_start_on_its_lead() -> None:
    world = World(limits=parse_limits(json.dumps(GMAIL)))
    run = unique("lead-waits")
    world.schedule(request(run, free_leads(12), actions=["email"]))
    assert world.store.waiting_until(run) is not None  # the later leads wait for their starts
    control(world, run, "pause")
    assert world.store.waiting_until(run) is None  # a paused lead waits for its resume only
    control(world, run, "resume")
    world.pump()
    for _ in range(40):
        world.tick(0.25)
    assert {s for s, _ in statuses(world, run).values()} == {"done"}
    assert world.store.waiting_until(run) is None


def test_replay_in_a_paused_run_keeps_what_it_reopens_paused() -> None:
    world = World()
    run = unique("replay-paused")
    world.calls.fail("files.create", _refused())
    world.schedule(request(run, free_leads(1), actions=["drive"]))
    world.pump()
    control(world, run, "pause")
    assert control(world, run, "replay").body["affected"] == 0  # reopened, but not published
    world.pump()
    assert made(world) == 0
    assert statuses(world, run) == {("lead-000", "drive"): ("pending", "paused")}
    control(world, run, "resume")
    world.pump()
    assert statuses(world, run) == {("lead-000", "drive"): ("done", None)}
    assert world.counts_match_receipts(run)


def test_paused_receipts_do_not_crowd_the_stale_sweep_out() -> None:
    """The stale sweep takes a few hundred pending receipts a tick, oldest first: a paused run,
    never touched until resumed, must not fill that window and hide a lost message."""
    world = World()
    paused_run, lost_run = f"a-{unique('paused')}", f"b-{unique('lost')}"
    world.schedule(request(paused_run, free_leads(3), actions=["drive"]))
    control(world, paused_run, "pause")
    world.schedule(request(lost_run, free_leads(1), actions=["drive"]))
    world.bus.published.clear()  # every message lost before Pub/Sub had it
    later = datetime.now(UTC) + timedelta(days=1)
    found = world.store.stale_receipts(later, world.clock(), limit=1)
    assert [row[:3] for row in found] == [(lost_run, "lead-000", "drive")]


def _settled(world: World, run: str, leads: list[dict[str, Any]], **fields: Any) -> None:
    assert world.schedule(request(run, leads, **fields)).status == 202
    world.pump()


def test_undo_previews_then_reverts_each_thing_a_run_made_once() -> None:
    world = World()
    run = unique("undo")
    _settled(world, run, free_leads(3))
    before, calls = world.receipts(run), dict(world.calls.counted)
    preview = control(world, run, "undo", preview=True)
    assert preview.status == 200
    assert (preview.body["toRevert"], preview.body["unrecallable"]) == (
        {"events": 3, "folders": 3, "drafts": 0},
        {"sent": 3},
    )
    assert preview.body["state"] == "active" and world.store.get_run(run).get("state") is None  # type: ignore[union-attr]
    assert world.receipts(run) == before and world.bus.published == []
    assert dict(world.calls.counted) == calls

    answer = control(world, run, "undo")
    assert (answer.body["state"], answer.body["affected"], answer.body["toRevert"]) == (
        "cancelled",
        6,
        {"events": 3, "folders": 3, "drafts": 0},
    )
    world.pump()
    receipts = world.receipts(run)
    for (_, action), receipt in receipts.items():
        if action == "email":  # a sent email cannot be recalled
            assert (receipt["status"], receipt["outcome"], receipt["revert"]) == (
                "done",
                "sent",
                None,
            )
            continue
        effect = {"calendar": "event_cancelled", "drive": "folder_trashed"}[action]
        assert (receipt["status"], receipt["revert"]["effect"]) == ("reverted", effect)
        assert receipt["outcome"] == before[(_, action)]["outcome"]  # what it was stays told
        assert receipt["external"] == before[(_, action)]["external"]
    assert {e["status"] for e in world.calendar.events.values()} == {"cancelled"}
    assert all(f["trashed"] for f in world.drive.folders) and len(world.mailer.sent) == 3
    assert world.store.counters(run)["counts"]["reverted"] == 6
    assert world.counts_match_receipts(run)

    again = control(world, run, "undo")
    world.pump()
    assert (again.body["affected"], again.body["toRevert"]) == (
        0,
        {"events": 0, "folders": 0, "drafts": 0},
    )
    assert (world.calls.counted["events.delete"], world.calls.counted["files.update"]) == (3, 3)
    assert world.receipts(run) == receipts


def test_undo_deletes_an_availability_draft_and_leaves_a_no_slot_booking_as_it_was() -> None:
    from tests.unit.test_handlers import _fully_busy

    world = World()
    run = unique("undo-draft")
    body = _fully_busy(world, run, expand_days=1)
    assert world.schedule(body).status == 202
    world.pump()
    assert len(world.mailer.drafts) == 1
    answer = control(world, run, "undo")
    assert answer.body["toRevert"] == {"events": 0, "folders": 1, "drafts": 1}
    world.pump()
    receipts = world.receipts(run)
    assert receipts[("l", "email")]["revert"]["effect"] == "draft_deleted"
    assert (receipts[("l", "calendar")]["status"], receipts[("l", "calendar")]["revert"]) == (
        "done",
        None,
    )
    assert world.mailer.drafts == {}
    assert world.counts_match_receipts(run)


def test_a_reverted_booking_gives_its_slot_back_to_the_next_run() -> None:
    world = World()
    host = f"{unique('host')}@example.com"
    first, second = unique("undo-first"), unique("undo-second")
    leads = free_leads(1)
    _settled(world, first, leads, host=host)
    booked = world.receipts(first)[("lead-000", "calendar")]["external"]["start"]
    control(world, first, "undo")
    world.pump()
    _settled(world, second, leads, host=host)
    again = world.receipts(second)[("lead-000", "calendar")]
    assert (again["outcome"], again["external"]["start"]) == ("booked", booked)


def test_a_revert_that_google_took_before_failing_is_not_made_twice() -> None:
    world = World()
    run = unique("undo-fault")
    _settled(world, run, free_leads(2))
    world.calls.fail("events.delete", _unavailable(), after_effect=True)
    control(world, run, "undo")
    world.pump()
    receipts = world.receipts(run)
    effects = sorted(r["revert"]["effect"] for (_, a), r in receipts.items() if a == "calendar")
    assert effects == ["already_gone", "event_cancelled"]  # the delete it made counts once
    assert {e["status"] for e in world.calendar.events.values()} == {"cancelled"}
    assert world.counts_match_receipts(run)


def _unavailable() -> Any:
    from tests.fakes import http_error

    return http_error(503, "backendError", "Backend Error")


def test_a_dry_runs_undo_reverts_nothing_and_says_so() -> None:
    world = World()
    run = unique("undo-dry")
    _settled(world, run, free_leads(2), dryRun=True)
    before = world.receipts(run)
    answer = control(world, run, "undo")
    assert (answer.body["affected"], answer.body["toRevert"], answer.body["unrecallable"]) == (
        0,
        {"events": 0, "folders": 0, "drafts": 0},
        {"sent": 0},
    )
    assert world.receipts(run) == before and world.store.get_run(run).get("state") is None  # type: ignore[union-attr]


def test_what_a_delivery_in_flight_makes_during_an_undo_is_reverted_after_it() -> None:
    world = World()
    run = unique("undo-flight")
    world.schedule(request(run, free_leads(2), actions=["drive"]))
    answers: list[HttpResult] = []
    create = world.drive.create_folder

    def undo_meanwhile(*args: Any) -> dict[str, Any]:
        if not answers:  # the undo lands while the first delivery makes its folder
            answers.append(control(world, run, "undo"))
        return create(*args)

    world.drive.create_folder = undo_meanwhile  # type: ignore[method-assign]
    world.pump()
    (answer,) = answers
    assert answer.body["inFlight"] == [{"leadDocId": "lead-000", "action": "drive"}]
    receipts = world.receipts(run)
    assert (
        receipts[("lead-000", "drive")]["status"],
        receipts[("lead-001", "drive")]["status"],
    ) == (
        "reverted",
        "cancelled",
    )
    assert [f.get("trashed") for f in world.drive.folders] == [True]
    assert world.counts_match_receipts(run)


def test_a_revert_held_back_by_googles_limit_keeps_what_it_undoes_and_goes_on_later() -> None:
    from tests.fakes import http_error

    world = World()
    run = unique("undo-limit")
    _settled(world, run, free_leads(1), actions=["calendar"])
    booked = world.store.counters(run)["counts"]["booked"]
    world.calls.fail("events.delete", http_error(403, "rateLimitExceeded", "Rate Limit Exceeded"))
    control(world, run, "undo")
    world.pump()
    held = world.receipts(run)[("lead-000", "calendar")]
    assert (held["status"], held["outcome"], held["waiting"]["reason"]) == (
        "done",
        "booked",
        "rate_limit",
    )
    assert world.store.counters(run)["counts"]["booked"] == booked == 1
    world.tick(120)
    ended = world.receipts(run)[("lead-000", "calendar")]
    assert (ended["status"], ended["outcome"], ended["revert"]["effect"]) == (
        "reverted",
        "booked",
        "event_cancelled",
    )
    assert world.counts_match_receipts(run)


def test_a_booking_revert_that_dies_leaves_the_drafts_revert_going() -> None:
    world = World(max_deliveries=3)
    world.calendar.meet_fails = True  # the confirmation is left as a draft for the host
    run = unique("undo-dead")
    _settled(world, run, free_leads(1), actions=["calendar", "email"])
    assert world.receipts(run)[("lead-000", "email")]["outcome"] == "drafted"
    world.calls.fail("events.delete", *[_unavailable() for _ in range(30)])
    control(world, run, "undo")
    world.pump()
    receipts = world.receipts(run)
    calendar, email = receipts[("lead-000", "calendar")], receipts[("lead-000", "email")]
    assert (calendar["status"], calendar["error"]["code"]) == ("done", "dead_lettered")
    assert (email["status"], email["revert"]["effect"]) == ("reverted", "draft_deleted")
    assert world.mailer.drafts == {}
    assert world.counts_match_receipts(run)


def test_a_pause_holds_the_reverts_a_lead_level_undo_queued_until_resumed() -> None:
    world = World()
    run = unique("undo-pause")
    _settled(world, run, free_leads(3))
    undone = control(world, run, "undo", leadDocIds=["lead-001"])
    assert (undone.body["state"], undone.body["toRevert"]["events"]) == ("active", 1)
    paused = control(world, run, "pause")  # before any revert is delivered
    assert (paused.body["state"], paused.body["affected"]) == ("paused", 2)
    world.pump()
    assert world.calls.counted["events.delete"] == world.calls.counted["files.update"] == 0
    lead = {a: r for (lead_id, a), r in world.receipts(run).items() if lead_id == "lead-001"}
    for action in ("calendar", "drive"):
        assert (lead[action]["status"], lead[action]["waiting"]["reason"]) == ("done", "paused")
    later = world.clock() + timedelta(days=1)  # nothing for the sweeper to publish meanwhile
    assert [row for row in world.store.due_receipts(later) if row[0] == run] == []
    assert [
        row for row in world.store.stale_receipts(later, world.clock(), 10) if row[0] == run
    ] == []
    assert control(world, run, "pause").body["affected"] == 0

    resumed = control(world, run, "resume")
    assert (resumed.body["state"], resumed.body["affected"]) == ("active", 2)
    world.pump()
    assert world.calls.counted["events.delete"] == world.calls.counted["files.update"] == 1
    after = {a: r for (lead_id, a), r in world.receipts(run).items() if lead_id == "lead-001"}
    assert {after[a]["status"] for a in ("calendar", "drive")} == {"reverted"}
    assert after["calendar"]["waiting"] is None
    assert world.counts_match_receipts(run)


def test_an_undo_lets_go_the_reverts_a_pause_holds() -> None:
    world = World()
    run = unique("undo-again")
    _settled(world, run, free_leads(2))
    control(world, run, "undo", leadDocIds=["lead-000"])
    control(world, run, "pause", leadDocIds=["lead-000"])
    world.pump()
    assert world.calls.counted["events.delete"] == 0
    again = control(world, run, "undo", leadDocIds=["lead-000"])
    assert (again.body["affected"], again.body["toRevert"]) == (
        2,
        {"events": 1, "folders": 1, "drafts": 0},
    )
    world.pump()
    assert world.calls.counted["events.delete"] == world.calls.counted["files.update"] == 1
    lead = {a: r for (lead_id, a), r in world.receipts(run).items() if lead_id == "lead-000"}
    assert {a: r["status"] for a, r in lead.items()} == {
        "calendar": "reverted",
        "email": "done",
        "drive": "reverted",
    }
    assert world.counts_match_receipts(run)
