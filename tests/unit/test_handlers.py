"""The handlers on the in-memory fakes: intake planning, booking, notify, drive and
`handle_delivery` (duplicates, resumes, permanent and transient errors). No emulator."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from common import flow, keys, paths
from common.bus import Outgoing
from common.handlers.dead_letter import handle_dead_letter
from common.handlers.delivery import Delivery, Retry
from common.slots import Interval
from tests.fakes import http_error, rate_limited
from tests.support import decode_raw, free_leads, lead, next_weekday, request, slot, unique
from tests.unit.world import World


@pytest.fixture
def world() -> World:
    return World()


def _ok(world: World, body: dict[str, Any]) -> dict[str, Any]:
    answer = world.schedule(body)
    assert answer.status == 202, answer.body
    return answer.body


# -- intake ----------------------------------------------------------------------------------
def test_intake_records_every_lead_and_publishes_calendar_and_drive_not_email(world: World) -> None:
    run = unique("in")
    _ok(world, request(run, free_leads(2)))
    published = sorted((m.lead_doc_id, m.action) for m in world.bus.published)
    assert published == [(f"lead-00{i}", a) for i in range(2) for a in ("calendar", "drive")]
    receipts = world.receipts(run)
    assert {r["status"] for r in receipts.values()} == {"pending"} and len(receipts) == 6
    assert world.store.counters(run)["counts"]["pending"] == 6


def test_a_lead_without_email_is_rejected_with_a_receipt_per_action_and_counted_once(
    world: World,
) -> None:
    run = unique("noemail")
    body = _ok(world, request(run, [lead("quiet", [slot(next_weekday())], email=None)]))
    assert body["rejected"] == [{"leadDocId": "quiet", "reason": "no_email"}]
    assert {r["reason"] for r in world.receipts(run).values()} == {"no_email"}
    assert len(world.receipts(run)) == 3
    assert world.store.counters(run)["reasons"] == {"no_email": 1}  # leads, not receipts
    assert world.counts_match_receipts(run)
    assert world.bus.published == []


def test_the_same_request_again_does_nothing_twice(world: World) -> None:
    run = unique("again")
    body = request(run, free_leads(3))
    _ok(world, body)
    world.pump()
    before = (len(world.calendar.events), len(world.mailer.sent), len(world.drive.folders))
    _ok(world, body)
    assert world.bus.published == []  # every receipt is terminal
    world.pump()
    assert (len(world.calendar.events), len(world.mailer.sent), len(world.drive.folders)) == before
    assert before == (3, 3, 3)
    assert world.counts_match_receipts(run)


def test_a_no_slot_lead_sent_again_with_a_free_slot_is_booked_and_its_draft_followed(
    world: World,
) -> None:
    run = unique("retry")
    body = _fully_busy(world, run, expand_days=0)
    _ok(world, body)
    world.pump()
    assert world.receipts(run)[("l", "email")]["outcome"] == "drafted"
    world.calendar.busy_blocks.clear()
    _ok(world, body)
    world.pump()
    receipts = world.receipts(run)
    assert receipts[("l", "calendar")]["outcome"] == "booked"
    assert receipts[("l", "email")]["outcome"] == "sent"
    assert world.counts_match_receipts(run)


# -- booking ---------------------------------------------------------------------------------
def test_a_booked_lead_gets_its_event_a_confirmation_with_the_meet_link_and_a_folder(
    world: World,
) -> None:
    run = unique("book")
    _ok(world, request(run, free_leads(1)))
    world.pump()
    receipts = world.receipts(run)
    calendar = receipts[("lead-000", "calendar")]
    assert (calendar["status"], calendar["outcome"]) == ("done", "booked")
    link = calendar["external"]["meetLink"]
    assert link and link.startswith("https://meet.test/")
    (sent,) = world.mailer.sent
    assert link in decode_raw(sent["raw"]).get_content()
    assert receipts[("lead-000", "drive")]["outcome"] == "created"
    assert world.counts_match_receipts(run)


def test_a_delivery_reads_its_receipt_once_and_decides_later_changes_on_what_it_left(
    world: World,
) -> None:
    """The claim reads; the checkpoints and the finish of the same delivery decide on what the
    claim left (`documents.Known`), and their guarded commits prove it unchanged."""
    run = unique("once")
    _ok(world, request(run, free_leads(1)))
    world.docs.reads.clear()
    world.pump()
    reads = dict(world.docs.reads)
    assert {r["status"] for r in world.receipts(run).values()} == {"done"}
    # book: claim, then its finish (holds included); notify: claim, two checkpoints (before and
    # after drafts.create) and its finish; drive: claim, a checkpoint (the folder's id), finish.
    for action in ("calendar", "email", "drive"):
        assert reads[paths.receipt(run, "lead-000", action)] == 1, action
    assert world.counts_match_receipts(run)


def test_a_booking_keeps_its_slot_holds_as_booked_until_the_meeting_ends(world: World) -> None:
    """freeBusy cannot see a booking another instance is making: the booked meeting's holds must
    outlive their 5-minute claim, or a lead booking meanwhile could take the same slot."""
    run = unique("keep")
    _ok(world, request(run, free_leads(1), actions=["calendar"]))
    world.pump()
    (event,) = world.calendar.events.values()
    owner = keys.hold_owner(run, "lead-000")
    held = [doc.data for doc in world.docs.docs.values() if doc.data.get("owner") == owner]
    assert held and all(h["booked"] for h in held)
    end = datetime.fromisoformat(event["end"]["dateTime"])
    assert all(h["expiresAt"] >= end for h in held)


def test_leads_wanting_the_same_slot_never_overlap(world: World) -> None:
    run, when = unique("same"), next_weekday(4)
    leads = [lead(f"l{i}", [slot(when), slot(when + timedelta(hours=1))]) for i in range(3)]
    _ok(world, request(run, leads, actions=["calendar"]))
    world.pump()
    starts = sorted(e["start"]["dateTime"] for e in world.calendar.events.values())
    assert len(starts) == len(set(starts)) == 3
    assert sum(r["external"]["expanded"] for r in world.receipts(run).values()) == 1


def test_no_free_slot_leaves_an_availability_draft_not_a_sent_email(world: World) -> None:
    run = unique("full")
    body = _fully_busy(world, run, expand_days=1)
    _ok(world, body)
    world.pump()
    receipts = world.receipts(run)
    assert (receipts[("l", "calendar")]["outcome"], receipts[("l", "email")]["outcome"]) == (
        "no_slot",
        "drafted",
    )
    assert world.mailer.sent == [] and len(world.mailer.drafts) == 1
    assert world.store.counters(run)["reasons"] == {"no_slot": 1}


def test_a_dry_run_has_no_writer_and_records_what_would_happen(world: World) -> None:
    run = unique("dry")
    _ok(world, request(run, free_leads(2), dryRun=True))
    world.pump()
    assert {r["status"] for r in world.receipts(run).values()} == {"simulated"}
    writes = {"events.insert", "drafts.create", "drafts.send", "files.create"}
    assert not writes & set(world.calls.counted)
    assert world.calls.counted["freebusy.query"] == 2


# -- handle_delivery: duplicates, resumes, errors ----------------------------------------------
def test_duplicate_deliveries_act_once(world: World) -> None:
    run = unique("dup")
    _ok(world, request(run, free_leads(2)))
    world.pump(duplicates=3)
    assert (len(world.calendar.events), len(world.mailer.sent), len(world.drive.folders)) == (
        2,
        2,
        2,
    )
    assert world.outcomes.count("duplicate") == 2 * 3 * 2  # two extra deliveries per message
    assert world.counts_match_receipts(run)


def test_an_email_delivered_before_its_booking_is_acknowledged_and_sent_once_booked(
    world: World,
) -> None:
    """A copy of the email (a replay, a duplicate) that comes before the booking must not spend
    Pub/Sub's delivery attempts waiting: it is acknowledged, and book publishes the email."""
    run = unique("early")
    _ok(world, request(run, free_leads(1)))
    early = Outgoing(run, "lead-000", "email")
    assert world.deliver(early) == "later"  # no Retry: the message is acknowledged
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["status"], email["lease"]) == ("pending", None)
    assert email["error"]["code"] == "calendar_pending"
    assert world.mailer.sent == []
    world.pump()
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["status"], email["outcome"], email["error"]) == ("done", "sent", None)
    assert len(world.mailer.sent) == 1 and len(world.calendar.events) == 1
    assert world.counts_match_receipts(run)


@pytest.mark.parametrize(
    ("method", "action"),
    [("events.insert", "calendar"), ("drafts.send", "email"), ("files.create", "drive")],
)
def test_a_failure_after_google_acted_is_resumed_without_a_second_effect(
    world: World, method: str, action: str
) -> None:
    run = unique("after")
    world.calls.fail(method, http_error(503, "backendError"), after_effect=True)
    _ok(world, request(run, free_leads(1)))
    world.pump()
    assert (len(world.calendar.events), len(world.mailer.sent), len(world.drive.folders)) == (
        1,
        1,
        1,
    )
    receipt = world.receipts(run)[("lead-000", action)]
    assert receipt["status"] == "done" and receipt["lease"] is None
    assert world.counts_match_receipts(run)


def test_transient_errors_past_the_quick_tries_release_the_lease_and_ask_for_a_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    run = unique("flaky")
    world.calls.fail("files.create", *[http_error(503, "backendError")] * 3)
    _ok(world, request(run, free_leads(1), actions=["drive"]))
    (message,) = world.bus.published
    with pytest.raises(Retry):
        world.deliver(message)
    receipt = world.receipts(run)[("lead-000", "drive")]
    assert receipt["status"] == "pending" and receipt["lease"] is None
    assert receipt["error"]["code"] == "transient"
    assert world.deliver(message, "m-2") == "created"  # the redelivery goes on at once
    assert world.receipts(run)[("lead-000", "drive")]["attempts"] == 2


def test_transient_errors_forever_end_dead_lettered_and_close_the_email(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    run = unique("dead")
    world.calls.fail("events.insert", *[http_error(503, "backendError")] * 100)
    _ok(world, request(run, free_leads(1)))
    world.pump()
    receipts = world.receipts(run)
    assert (
        receipts[("lead-000", "calendar")]["reason"],
        receipts[("lead-000", "email")]["reason"],
    ) == (
        "dead_lettered",
        flow.CALENDAR_FAILED,
    )
    assert world.mailer.sent == [] and receipts[("lead-000", "drive")]["outcome"] == "created"
    assert world.counts_match_receipts(run)


def test_a_dead_copy_of_a_message_leaves_a_receipt_a_delivery_holds_or_parked_on_its_course(
    world: World,
) -> None:
    """Pub/Sub gave up on a copy (it met the lease of the delivery working on the receipt, ten
    times): the receipt is that delivery's, or waits for a time the sweeper publishes it at."""
    run = unique("copy")
    world.calls.fail("files.create", rate_limited(world.clock() + timedelta(minutes=5)))
    _ok(world, request(run, free_leads(2), actions=["drive"]))
    world.pump()  # lead-000 meets the limit and waits; lead-001's lane is held back with it
    parked = world.receipts(run)[("lead-000", "drive")]
    assert parked["status"] == "pending" and parked["waiting"]["api"] == "drive"
    copy = Delivery(run, "lead-000", "drive", "m-copy", world.clock())
    assert handle_dead_letter(world.store, copy, "10", world.clock()) == "duplicate"
    assert world.receipts(run)[("lead-000", "drive")] == parked

    held = Delivery(run, "lead-001", "drive", "m-held", world.clock())
    world.store.claim(run, "lead-001", "drive", "another-delivery", world.clock())
    assert handle_dead_letter(world.store, held, "10", world.clock()) == "duplicate"
    assert world.receipts(run)[("lead-001", "drive")]["status"] == "pending"

    world.tick(20 * 60)  # the wait and the lease are over: each goes on, and ends once
    receipts = world.receipts(run)
    assert {receipts[(lead, "drive")]["status"] for lead in ("lead-000", "lead-001")} == {"done"}
    assert len(world.drive.folders) == 2 and world.counts_match_receipts(run)


def test_a_permanent_error_fails_the_receipt_with_its_reason_and_closes_the_email(
    world: World,
) -> None:
    run = unique("perm")
    world.calls.fail("events.insert", http_error(403, "forbiddenForNonOrganizer", "not allowed"))
    _ok(world, request(run, free_leads(1)))
    world.pump()
    receipts = world.receipts(run)
    calendar = receipts[("lead-000", "calendar")]
    assert (calendar["status"], calendar["reason"]) == ("failed", "permanent_error")
    assert calendar["error"]["code"] == "http_403_forbiddenForNonOrganizer"
    assert receipts[("lead-000", "email")]["status"] == "rejected"
    assert world.store.counters(run)["reasons"] == {"calendar_failed": 1, "permanent_error": 1}
    assert world.deliveries == 2  # the email message was never published; drive's was
    assert world.counts_match_receipts(run)


def test_a_message_for_an_unknown_run_is_dropped(world: World) -> None:
    from common.bus import Outgoing

    assert world.deliver(Outgoing(unique("ghost"), "l", "drive")) == "dropped"


def test_an_event_id_is_the_idempotency_key_of_a_booking(world: World) -> None:
    run = unique("key")
    _ok(world, request(run, free_leads(1), actions=["calendar"]))
    world.pump()
    ((_, event_id),) = world.calendar.events
    assert event_id == keys.event_id(run, "lead-000")


def _fully_busy(world: World, run: str, expand_days: int) -> dict[str, Any]:
    """A one-lead request whose host is busy for a month around the lead's only candidate."""
    host, when = f"{unique('h')}@example.com", next_weekday(3)
    body = request(run, [lead("l", [slot(when)])], host=host)
    body["fallback"] = {"expandDays": expand_days}
    month = Interval(when - timedelta(days=30), when + timedelta(days=30))
    world.calendar.busy_blocks[host] = [month]
    return body


def test_a_draft_no_checkpoint_names_is_never_sent_and_a_send_that_acted_is_not_repeated(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """drafts.create and then drafts.send both fail after acting: the second try makes and sends
    a draft of its own (the first one is deleted, never sent); the third must find that send,
    not write again."""
    monkeypatch.setattr("common.handlers.delivery.QUICK_BACKOFF_S", 0.0)
    run = unique("twice")
    world.calls.fail("drafts.create", http_error(503, "backendError"), after_effect=True)
    world.calls.fail("drafts.send", http_error(503, "backendError"), after_effect=True)
    _ok(world, request(run, free_leads(1), actions=["email"]))
    world.pump()
    assert len(world.mailer.sent) == 1 and world.mailer.drafts == {}
    assert world.calls.counted["drafts.create"] == 2 and world.calls.counted["drafts.delete"] == 1
    email = world.receipts(run)[("lead-000", "email")]
    assert (email["outcome"], email["attempts"]) == ("sent", 1)
