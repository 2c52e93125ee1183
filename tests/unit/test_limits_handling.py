"""Google's limits on the fakes: nothing fails or dead-letters, receipts wait and resume; Meet links
are waited for; resumes find what was made by id, not by search. No emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common import errors, limits
from common.handlers import book, notify, sweep
from common.handlers.delivery import Retry
from common.handlers.diagnostics import funnel
from common.models import parse_time, stamp
from common.pacing import BRIEF, parse_limits
from common.slots import Interval
from tests.fakes import http_error, rate_limited
from tests.support import decode_raw, free_leads, lead, next_weekday, request, slot, unique
from tests.unit.world import World

LAG = timedelta(seconds=10)  # how far Gmail's index lags behind (the mailer's settle is 20 s)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(book, "MEET_POLL_FIRST_S", 0.01)
    return World()


def test_a_rate_limit_parks_the_receipt_and_it_resumes_when_due(world: World) -> None:
    run = unique("rate")
    until = datetime.now(UTC) + timedelta(seconds=30)
    world.calls.fail("drafts.send", rate_limited(until))
    world.schedule(request(run, free_leads(1)))
    world.pump()
    email = world.receipts(run)[("lead-000", "email")]
    assert email["status"] == "pending" and email["lease"] is None
    assert email["waiting"]["reason"] == "rate_limit" and email["waiting"]["api"] == "gmail"
    assert limits.retry_after(f"Retry after {email['waiting']['until']}") == until.replace(
        microsecond=until.microsecond // 1000 * 1000
    )
    counts = world.store.counters(run)["counts"]
    assert (counts["waiting"], counts["failed"], counts["pending"]) == (1, 0, 1)
    assert funnel(world.store, run, {}, world.clock())["waitingUntil"] == email["waiting"]["until"]
    assert "waiting" in world.outcomes and world.mailer.sent == []
    assert world.tick(10) == 0  # not due yet
    assert world.tick(25) == 1
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["status"], email["outcome"], email["waiting"]) == ("done", "sent", None)
    assert len(world.mailer.sent) == 1 and world.calls.counted["drafts.create"] == 1
    assert world.store.counters(run)["counts"]["waiting"] == 0
    assert funnel(world.store, run, {}, world.clock())["waitingUntil"] is None
    assert world.counts_match_receipts(run)


def test_a_limit_met_by_one_lead_holds_that_hosts_other_leads_back_without_calling(
    world: World,
) -> None:
    run, host = unique("gate"), f"{unique('h')}@example.com"
    until = datetime.now(UTC) + timedelta(seconds=60)
    world.calls.fail("files.create", http_error(403, "userRateLimitExceeded", "User Rate Limit"))
    world.schedule(request(run, free_leads(5), host=host, actions=["drive"]))
    world.pump()
    assert world.calls.counted["files.create"] == 1  # the others saw the gate, not the wall
    waiting = [r["waiting"] for r in world.receipts(run).values()]
    assert all(w and w["api"] == "drive" and w["reason"] == "rate_limit" for w in waiting)
    other_run = unique("other")
    world.schedule(request(other_run, free_leads(2), actions=["drive"]))  # another host
    world.pump()
    assert {r["outcome"] for r in world.receipts(other_run).values()} == {"created"}
    assert until > datetime.now(UTC)
    world.tick(120)
    assert {r["outcome"] for r in world.receipts(run).values()} == {"created"}
    assert len(world.drive.folders) == 7
    assert world.counts_match_receipts(run)


def test_a_calendar_lockout_waits_with_usage_limits_and_books_after_it(world: World) -> None:
    run = unique("lock")
    lockout = http_error(403, "quotaExceeded", "Calendar usage limits exceeded.")
    world.calls.fail("events.insert", lockout, lockout)
    world.schedule(request(run, free_leads(3), actions=["calendar"]))
    world.pump()
    waiting = {r["waiting"]["reason"] for r in world.receipts(run).values() if r["waiting"]}
    assert waiting == {"usage_limits"}
    for _ in range(12):  # the probe waits double each time the lockout is still there
        world.tick(60)
    receipts = world.receipts(run).values()
    assert {r["outcome"] for r in receipts} == {"booked"}
    assert len(world.calendar.events) == 3 and world.calls.counted["events.insert"] == 5


def test_bookings_held_back_by_a_closed_gate_resume_without_looking_for_an_event(
    world: World,
) -> None:
    run = unique("held")
    world.calls.fail("events.insert", http_error(403, "quotaExceeded", "Calendar usage limits."))
    world.schedule(request(run, free_leads(4), actions=["calendar"]))
    world.pump()
    receipts = world.receipts(run)
    assert world.calls.counted["events.insert"] == 1  # the other three met the gate, not Google
    assert [r["waiting"]["reason"] for r in receipts.values()] == ["usage_limits"] * 4
    for _ in range(6):
        world.tick(60)
    assert {r["outcome"] for r in world.receipts(run).values()} == {"booked"}
    assert len(world.calendar.events) == 4 and world.calls.counted["events.insert"] == 5
    # Only the lead whose insert Google refused looks for an event it might have made.
    assert world.calls.counted["events.get"] == 1


def test_a_booking_whose_earlier_try_may_have_acted_still_looks_after_the_gate(
    world: World,
) -> None:
    run = unique("dirty")
    lockout = http_error(403, "quotaExceeded", "Calendar usage limits.")
    world.schedule(request(run, free_leads(2), actions=["calendar"]))
    first, second = world.bus.published
    world.bus.published.clear()
    world.calls.fail("events.insert", http_error(503, "backendError"), after_effect=True)
    world.calls.fail("events.get", *[http_error(503, "backendError")] * 2)
    with pytest.raises(Retry):  # its event is made, but no try could read it back
        world.deliver(first)
    world.calls.fail("events.insert", lockout)
    assert world.deliver(second) == "waiting"  # the gate closes
    assert world.deliver(first, "m-2") == "waiting"  # held back by the gate
    for _ in range(6):
        world.tick(60)
    receipts = world.receipts(run)
    assert {r["outcome"] for r in receipts.values()} == {"booked"}
    assert receipts[("lead-000", "calendar")]["external"]["expanded"] is False
    # lead-000's event was made once, and found again; lead-001 was refused once.
    assert len(world.calendar.events) == 2 and world.calls.counted["events.insert"] == 3


def test_emails_waiting_for_their_bookings_never_keep_the_sweeper_from_the_bookings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(book, "MEET_POLL_FIRST_S", 0.01)
    monkeypatch.setattr(sweep, "RESUME_AT_MOST", 2)  # fewer than the emails due first
    world = World(limits=parse_limits('{"gmail": {"units": 110, "perSeconds": 1}}'))
    run = unique("starve")
    world.calls.fail("freebusy.query", rate_limited(datetime.now(UTC) + timedelta(seconds=30)))
    world.schedule(request(run, free_leads(4), actions=["calendar", "email"]))
    world.pump()
    waiting = {k: r["waiting"]["until"] for k, r in world.receipts(run).items() if r["waiting"]}
    assert len(waiting) == 7  # four bookings held until +30 s, three emails spaced before that
    world.tick(35)
    for _ in range(3):
        world.tick(1)
    receipts = world.receipts(run)
    assert [receipts[(f"lead-00{i}", "calendar")]["outcome"] for i in range(4)] == ["booked"] * 4
    assert [receipts[(f"lead-00{i}", "email")]["outcome"] for i in range(4)] == ["sent"] * 4


def test_leads_whose_start_comes_while_their_request_is_written_are_published_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Drive at one write a 0.2-s window: a folder every 0.4 s, so starts 0, 0.4, ..., 1.6 s.
    world = World(limits=parse_limits('{"drive": {"writes": 1, "perSeconds": 0.2}}'))
    write = world.store.write_intake

    def slow_write(commits: Any) -> None:
        write(commits)
        world.wait(1.0)  # a big request takes a second to write

    monkeypatch.setattr(world.store, "write_intake", slow_write)
    run = unique("slow-write")
    world.schedule(request(run, free_leads(5), actions=["drive"]))
    # The sweeper's passes during that second looked only past what they had passed: the
    # leads whose start came meanwhile go with the request, not a tick later.
    published = sorted(m.lead_doc_id for m in world.bus.published)
    assert published == ["lead-000", "lead-001", "lead-002", "lead-003"]
    world.pump()
    receipts = world.receipts(run)
    assert [receipts[(f"lead-00{i}", "drive")]["outcome"] for i in range(4)] == ["created"] * 4
    assert receipts[("lead-004", "drive")]["waiting"] is not None  # due 1.6 s: the sweeper's
    assert world.tick(0.5) == 1
    assert world.receipts(run)[("lead-004", "drive")]["outcome"] == "created"
    assert len(world.drive.folders) == 5


def test_a_receipt_published_by_intake_and_again_by_the_sweeper_acts_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Starts 0, 0.4, 0.8, 1.2 s; the request takes a second to write: the last two were written
    # waiting, with starts that came meanwhile, and intake publishes them.
    world = World(limits=parse_limits('{"drive": {"writes": 1, "perSeconds": 0.2}}'))
    write = world.store.write_intake

    def slow_write(commits: Any) -> None:
        write(commits)
        world.wait(1.0)

    monkeypatch.setattr(world.store, "write_intake", slow_write)
    run = unique("twice")
    world.schedule(request(run, free_leads(4), actions=["drive"]))
    # Before any delivery claims them, a tick's first pass looks at everything due: the two
    # waiting receipts intake published are published again (it remembers only its own).
    assert world.tick(0) == 2  # (and delivers everything published)
    assert {r["outcome"] for r in world.receipts(run).values()} == {"created"}
    assert len(world.drive.folders) == 4 and world.calls.counted["files.create"] == 4
    assert world.counts_match_receipts(run)


def test_an_email_whose_start_came_while_its_booking_was_made_goes_with_the_booking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(book, "MEET_POLL_FIRST_S", 0.01)
    # Gmail at one confirmation a second: an email every 2 s, so starts 0, 2 and 4 s.
    world = World(limits=parse_limits('{"gmail": {"units": 110, "perSeconds": 1}}'))
    run = unique("email-due")
    world.schedule(request(run, free_leads(3), actions=["calendar", "email"]))
    world.wait(2.5)  # the bookings are delivered late: lead-001's email start has come
    world.pump()
    receipts = world.receipts(run)
    outcomes = [receipts[(f"lead-00{i}", "email")]["outcome"] for i in range(3)]
    # The sweeper passed lead-001's email over while its booking was open, and does not look
    # back: book publishes it, as it does an email with no start of its own.
    assert outcomes == ["sent", "sent", None]
    assert receipts[("lead-002", "email")]["waiting"] is not None
    assert world.tick(2) == 1
    assert world.receipts(run)[("lead-002", "email")]["outcome"] == "sent"
    assert len(world.mailer.sent) == 3


def test_a_sweeper_pass_cut_short_by_its_limit_is_taken_up_by_the_next_pass(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "RESUME_AT_MOST", 2)  # fewer than the leads that fall due at once
    run = unique("cut-short")
    world.calls.fail("files.create", http_error(403, "userRateLimitExceeded", "User Rate Limit"))
    world.schedule(request(run, free_leads(5), actions=["drive"]))
    world.pump()
    untils = {r["waiting"]["until"] for r in world.receipts(run).values()}
    assert len(untils) == 1  # one held all five back until the gate opens
    world.wait(5)
    # One tick of a few passes: each later pass looks only past what the one before looked at,
    # so what a pass left for lack of room must not count as looked at.
    sweep.sweep(
        world.store,
        world.bus,
        world.pace,
        stale_after=timedelta(minutes=10),
        loop_s=1.0,
        clock=world.clock,
        sleep=world.wait,
    )
    assert sorted(m.lead_doc_id for m in world.bus.published) == [f"lead-00{i}" for i in range(5)]
    world.pump()
    assert {r["outcome"] for r in world.receipts(run).values()} == {"created"}


def test_a_lead_parked_after_its_quick_tries_waits_past_what_the_sweeper_has_passed() -> None:
    # Drive's compressed window is 0.1 s: refusals without "Retry after" wait 0.1, 0.2, 0.4 s.
    world = World(limits=parse_limits('{"drive": {"writes": 3, "perSeconds": 0.1}}'))
    refused = http_error(403, "userRateLimitExceeded", "User Rate Limit")
    world.calls.fail("files.create", refused, refused, refused)
    run = unique("short-park")
    world.schedule(request(run, free_leads(1), actions=["drive"]))
    world.pump()
    parked_at = world.clock()
    folder = world.receipts(run)[("lead-000", "drive")]
    assert world.calls.counted["files.create"] == 3 and folder["waiting"] is not None
    # The sweeper publishes what starts within 0.5 s and never looks back: a start sooner
    # than a second could already be behind its passes, and would wait for the next tick.
    assert folder["waiting"]["until"] == stamp(parked_at + BRIEF)  # as stored: milliseconds
    assert world.tick(1.0) == 1
    assert world.receipts(run)[("lead-000", "drive")]["outcome"] == "created"


def test_what_a_failed_sweeper_pass_took_is_published_by_the_next_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = unique("lost-pass")
    world.calls.fail("files.create", http_error(403, "userRateLimitExceeded", "User Rate Limit"))
    world.schedule(request(run, free_leads(3), actions=["drive"]))
    world.pump()
    world.wait(5)  # the gate has opened: all three are due
    published = sweep.Published(timedelta(minutes=10))
    publish = world.bus.publish

    def unavailable(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("Pub/Sub is unavailable")

    monkeypatch.setattr(world.bus, "publish", unavailable)
    with pytest.raises(RuntimeError):
        sweep.resume_due(world.store, world.bus, world.clock(), world.pace, published)
    monkeypatch.setattr(world.bus, "publish", publish)
    # Not remembered as published: the next pass does not leave them for ten minutes.
    assert sweep.resume_due(world.store, world.bus, world.clock(), world.pace, published) == 3
    world.pump()
    assert {r["outcome"] for r in world.receipts(run).values()} == {"created"}


def test_a_limit_never_fails_or_dead_letters_however_long_it_lasts(world: World) -> None:
    run = unique("long")
    world.calls.fail(
        "drafts.send", *[rate_limited(datetime.now(UTC) + timedelta(hours=h)) for h in (1, 2, 3)]
    )
    world.schedule(request(run, free_leads(1)))
    world.pump()
    for _ in range(4):
        world.tick(3600)
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["status"], email["outcome"]) == ("done", "sent")
    assert len(world.mailer.sent) == 1
    assert world.store.counters(run)["counts"]["failed"] == 0


def test_a_confirmation_waits_for_a_pending_meet_link(world: World) -> None:
    run = unique("meet")
    world.calendar.meet_pending_reads = 3
    world.schedule(request(run, free_leads(2)))
    world.pump()
    receipts = world.receipts(run)
    for lead_id in ("lead-000", "lead-001"):
        link = receipts[(lead_id, "calendar")]["external"]["meetLink"]
        assert link and link.startswith("https://meet.test/")
    assert all(
        m["raw"] and "https://meet.test/" in decode_raw(m["raw"]).get_content()
        for m in world.mailer.sent
    )
    assert len(world.mailer.sent) == 2


def test_a_failed_meet_books_the_event_and_leaves_the_confirmation_as_a_draft(world: World) -> None:
    run = unique("meetfail")
    world.calendar.meet_fails = True
    world.schedule(request(run, free_leads(1)))
    world.pump()
    receipts = world.receipts(run)
    calendar, email = receipts[("lead-000", "calendar")], receipts[("lead-000", "email")]
    assert (calendar["status"], calendar["outcome"], calendar["reason"]) == (
        "done",
        "booked",
        "meet_failed",
    )
    assert (email["status"], email["outcome"], email["reason"]) == (
        "done",
        "drafted",
        "meet_failed",
    )
    assert world.mailer.sent == [] and len(world.mailer.drafts) == 1
    assert world.store.counters(run)["reasons"] == {"meet_failed": 1}


def _email(world: World, run: str) -> dict[str, Any]:
    return world.receipts(run)[("lead-000", "email")]


def _parked(world: World, run: str, after: float) -> dict[str, Any]:
    """The email receipt, waiting for Gmail's search `after` seconds past its first empty one."""
    email = _email(world, run)
    since = parse_time(email["checkpoint"]["unseenSince"])
    assert email["status"] == "pending" and email["outcome"] is None and email["lease"] is None
    assert email["error"]["code"] == "search_lag"
    assert email["waiting"] == {
        "reason": "search_lag",
        "api": "gmail",
        "until": stamp(since + timedelta(seconds=after)),
    }
    return email


def _sent(world: World, run: str) -> dict[str, Any]:
    """The email receipt, sent once: exactly what a sent confirmation records."""
    email = _email(world, run)
    (message,) = world.mailer.sent
    assert {k: email[k] for k in ("status", "outcome", "reason", "error", "waiting")} == {
        "status": "done",
        "outcome": "sent",
        "reason": None,
        "error": None,
        "waiting": None,
    }
    assert email["external"] == {"messageId": message["id"], "threadId": message["threadId"]}
    assert world.counts_match_receipts(run)
    return email


def test_a_sent_message_search_cannot_see_yet_is_looked_for_again_as_the_index_catches_up(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """drafts.send acts, then fails: the draft is gone and the message not searchable for 10 s.
    The receipt waits for the sweeper, 5 s and then 15 s after the first empty search, not for
    the settle time, and the second look finds the message: no second send."""
    run = unique("lag")
    world.calls.fail("drafts.send", http_error(503, "backendError"), after_effect=True)
    world.mailer.search_lag = LAG
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    world.schedule(request(run, free_leads(1)))
    world.pump()
    assert len(world.mailer.sent) == 1 and world.outcomes[-1] == "waiting"
    _parked(world, run, after=5)
    assert world.store.counters(run)["counts"]["waiting"] == 1 and world.counts_match_receipts(run)
    assert world.tick(4) == 0  # not due yet
    assert world.tick(1.2) == 1  # looked again: the index is still behind
    _parked(world, run, after=15)
    assert world.tick(10) == 1
    email = _sent(world, run)
    assert world.calls.counted["drafts.send"] == 1 and world.calls.counted["drafts.create"] == 1
    assert world.calls.counted["messages.list"] == 3
    assert email["checkpoint"]["draftId"] == "d1" and "strays" not in email["checkpoint"]


def test_a_create_that_failed_after_acting_makes_another_draft_at_once_and_deletes_the_first(
    world: World,
) -> None:
    """drafts.create acts, then fails. The next try does not wait for the search: it makes a
    draft of its own and sends that one, then deletes the first draft once search shows it (the
    search shows it once it shows the sent message, made after it)."""
    run = unique("stray")
    world.calls.fail("drafts.create", http_error(500, "backendError"), after_effect=True)
    world.mailer.search_lag = LAG
    world.schedule(request(run, free_leads(1), actions=["email"]))
    world.pump()
    assert len(world.mailer.sent) == 1 and list(world.mailer.drafts) == ["d1"]
    email = _parked(world, run, after=5)
    assert email["checkpoint"]["strays"] is True and email["checkpoint"]["draftId"] == "d2"
    assert email["checkpoint"]["sent"] == {"id": "m3", "threadId": "t1"}
    assert world.tick(5.2) == 1
    _parked(world, run, after=15)
    assert list(world.mailer.drafts) == ["d1"]  # not searchable yet: still there
    assert world.tick(10) == 1
    _sent(world, run)
    assert world.mailer.drafts == {}
    assert world.calls.counted["drafts.create"] == 2 and world.calls.counted["drafts.send"] == 1
    assert world.calls.counted["drafts.delete"] == 1


def test_a_create_that_made_nothing_is_made_again_at_once_and_settles_in_the_same_delivery(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 before acting looks like one after: the next try makes the draft at once; the
    search (not lagging) shows the sent message, so no stray is there to wait for."""
    run = unique("none")
    world.calls.fail("drafts.create", http_error(500, "backendError"))  # failed before acting
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    world.schedule(request(run, free_leads(1), actions=["email"]))
    world.pump()
    assert world.outcomes == ["sent"]
    email = _sent(world, run)
    assert email["attempts"] == 1 and world.mailer.drafts == {}
    assert world.calls.counted["drafts.create"] == 2 and world.calls.counted["drafts.delete"] == 0
    assert (world.calls.counted["messages.list"], world.calls.counted["drafts.list"]) == (1, 1)


def test_a_refused_create_leaves_no_stray_to_look_for(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4xx means Gmail made nothing: the resumed try neither searches nor deletes."""
    run = unique("bad")
    world.calls.fail("drafts.create", http_error(400, "failedPrecondition"), after_effect=False)
    world.calls.fail("drafts.create", http_error(503, "backendError"))
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    world.schedule(request(run, free_leads(1), actions=["email"]))
    world.pump()
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["status"], email["reason"]) == ("failed", "permanent_error")
    assert world.calls.counted["messages.list"] == world.calls.counted["drafts.list"] == 0


def test_a_draft_removed_unsent_is_written_again_only_once_search_has_settled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The named draft is gone and no sent message ever shows up (the host removed it): the
    looks come 5, 15 s after the first empty search and at the settle time (20 s here), when
    the empty search is believed and the email written again, once."""
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    run = unique("gone")
    world.calls.fail("drafts.send", http_error(404, "notFound", "Requested entity was not found."))
    world.schedule(request(run, free_leads(1), actions=["email"]))
    world.pump()
    world.mailer.drafts.clear()  # the host deleted it
    _parked(world, run, after=5)
    assert world.tick(5.2) == 1
    _parked(world, run, after=15)
    assert world.tick(10) == 1
    _parked(world, run, after=20)  # the settle time, not the next doubling
    assert world.mailer.sent == []
    assert world.tick(5) == 1
    email = _sent(world, run)
    assert world.calls.counted["drafts.create"] == 2 and email["checkpoint"]["draftId"] == "d2"


def test_a_stray_beside_a_draft_left_for_the_host_is_deleted_and_the_named_one_kept(
    world: World,
) -> None:
    """An availability request (no slot) is a draft the host sends: after a create that acted
    and failed, the stray is deleted as soon as search shows the draft the checkpoint names."""
    run, host, when = unique("avail"), f"{unique('h')}@example.com", next_weekday(3)
    body = request(run, [lead("lead-000", [slot(when)])], host=host)
    body["fallback"] = {"expandDays": 0}
    world.calendar.busy_blocks[host] = [
        Interval(when - timedelta(days=30), when + timedelta(days=30))
    ]
    world.calls.fail("drafts.create", http_error(500, "backendError"), after_effect=True)
    world.schedule(body)
    world.pump()
    email = world.receipts(run)[("lead-000", "email")]
    assert {k: email[k] for k in ("status", "outcome", "error", "waiting", "external")} == {
        "status": "done",
        "outcome": "drafted",
        "error": None,
        "waiting": None,
        "external": {"draftId": "d2"},
    }
    assert list(world.mailer.drafts) == ["d2"] and world.mailer.sent == []
    assert world.counts_match_receipts(run)


def test_the_looks_again_double_apart() -> None:
    looks = [notify.next_look(timedelta(seconds=s)).total_seconds() for s in (0, 4.9, 5, 15, 40)]
    assert looks == [5, 5, 15, 35, 75]


def test_a_resumed_folder_is_found_by_its_reserved_id_not_by_search(world: World) -> None:
    run = unique("fid")
    world.calls.fail("files.create", http_error(503, "backendError"), after_effect=True)
    world.schedule(request(run, free_leads(1), actions=["drive"]))
    world.pump()
    drive = world.receipts(run)[("lead-000", "drive")]
    assert (
        drive["outcome"] == "created"
        and drive["checkpoint"]["folderId"] == drive["external"]["folderId"]
    )
    assert len(world.drive.folders) == 1
    assert world.calls.counted["files.get"] == 1 and world.calls.counted["files.list"] == 0


def _message(run: str, action: str) -> object:
    from common.bus import Outgoing

    return Outgoing(run, "lead-000", action)


def test_a_draft_sent_long_after_it_was_made_is_not_sent_again_while_search_lags(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The draft is made at once; its send meets a rate limit and goes 35 s later, and fails
    after Gmail sent it. The search that follows cannot see the message yet: the time the draft
    was made is no bound for the index, so the delivery looks again instead of sending again."""
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    run = unique("late")
    world.mailer.search_lag = LAG
    world.calls.fail("drafts.send", rate_limited(datetime.now(UTC) + timedelta(seconds=30)))
    world.calls.fail("drafts.send", http_error(503, "backendError"), after_effect=True)
    world.schedule(request(run, free_leads(1), actions=["email"]))
    world.pump()
    assert world.receipts(run)[("lead-000", "email")]["waiting"]["reason"] == "rate_limit"
    assert world.tick(35) == 1
    _parked(world, run, after=5)
    assert len(world.mailer.sent) == 1
    assert world.tick(5.2) == 1
    _parked(world, run, after=15)
    assert world.tick(10) == 1
    _sent(world, run)
    assert world.calls.counted["drafts.create"] == 1


def test_a_refusal_without_retry_after_waits_first_the_apis_window_then_doubles() -> None:
    now = datetime.now(UTC)
    refused = http_error(429, "rateLimitExceeded", "Rate Limit Exceeded")
    window = timedelta(milliseconds=100)  # Drive's window, compressed tenfold
    waits = [errors.classify(refused, "drive", now, streak, window).limit for streak in (0, 2)]
    assert all(w is not None and w.reason == "rate_limit" for w in waits)
    first, third = (w.until - now for w in waits if w is not None)
    assert window <= first <= window * 1.2 and window * 4 <= third <= window * 4.8


def test_a_draft_create_google_refused_is_made_again_when_due_without_a_search(
    world: World,
) -> None:
    """A refusal (429) means Gmail made nothing: the resumed delivery creates the draft at once
    instead of searching for it and waiting out the index's lag (ten minutes in production)."""
    run = unique("refused")
    world.calls.fail("drafts.create", rate_limited(datetime.now(UTC) + timedelta(seconds=5)))
    world.schedule(request(run, free_leads(1), actions=["email"]))
    world.pump()
    assert world.receipts(run)[("lead-000", "email")]["waiting"]["reason"] == "rate_limit"
    assert world.tick(6) == 1
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["status"], email["outcome"]) == ("done", "sent") and len(world.mailer.sent) == 1
    assert world.calls.counted["drafts.list"] == 0 and "later" not in world.outcomes
