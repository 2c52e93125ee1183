"""Booking on the stack: no double booking, the expanded search, drafts, retrying no_slot."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from leadrun.client import LeadRunClient
from tests.support import (
    decode_raw,
    iso,
    lead,
    next_weekday,
    of_run,
    receipts_by_key,
    request,
    slot,
    unique,
)

pytestmark = pytest.mark.integration


def _span(event: dict) -> tuple[datetime, datetime]:
    return (
        datetime.fromisoformat(event["start"]["dateTime"]),
        datetime.fromisoformat(event["end"]["dateTime"]),
    )


def test_twenty_leads_sharing_three_slots_never_overlap(client: LeadRunClient) -> None:
    run_id = unique("race")
    start = next_weekday(3, hour=15)  # 10:00 in New York
    shared = [slot(start), slot(start + timedelta(hours=1)), slot(start + timedelta(hours=2))]
    body = request(run_id, [lead(f"lead-{i:02d}", shared) for i in range(20)], actions=["calendar"])
    host = body["host"]["calendarId"]
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=120)
    events = of_run(client.sandbox.state(), run_id, host)["events"]
    assert len(events) == 20 and funnel["counts"]["booked"] == 20
    spans = sorted(_span(e) for e in events)
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end <= next_start, "two meetings overlap"
    starts = [s for s, _ in spans]
    for candidate in shared:
        assert starts.count(datetime.fromisoformat(candidate["start"])) == 1
    receipts = receipts_by_key(client, run_id)
    expanded = [r for r in receipts.values() if r["external"]["expanded"]]
    assert len(expanded) == 17


def test_busy_candidates_book_in_the_expanded_window(client: LeadRunClient) -> None:
    run_id = unique("wide")
    start = next_weekday(3, hour=15)
    body = request(run_id, [lead("busy", [slot(start)])])
    host = body["host"]["calendarId"]
    client.sandbox.busy(host, iso(start - timedelta(hours=1)), iso(start + timedelta(hours=1)))
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    calendar = receipts_by_key(client, run_id)[("busy", "calendar")]
    assert calendar["outcome"] == "booked" and calendar["external"]["expanded"] is True
    booked = datetime.fromisoformat(calendar["external"]["start"])
    assert (
        not start - timedelta(hours=1) - timedelta(minutes=30) < booked < start + timedelta(hours=1)
    )
    assert receipts_by_key(client, run_id)[("busy", "email")]["outcome"] == "sent"


def test_nothing_free_drafts_an_availability_request(client: LeadRunClient) -> None:
    run_id = unique("full")
    start = next_weekday(3, hour=15)
    body = request(run_id, [lead("full", [slot(start)])])
    body["fallback"]["expandDays"] = 2
    host = body["host"]["calendarId"]
    client.sandbox.busy(host, iso(start - timedelta(days=1)), iso(start + timedelta(days=7)))
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=60)
    receipts = receipts_by_key(client, run_id)
    assert receipts[("full", "calendar")]["outcome"] == "no_slot"
    assert receipts[("full", "calendar")]["reason"] == "no_slot"
    assert receipts[("full", "email")]["outcome"] == "drafted"
    mine = of_run(client.sandbox.state(), run_id, host)
    assert mine["events"] == [] and mine["messages"] == []
    (draft,) = mine["drafts"]
    assert draft["id"] == receipts[("full", "email")]["external"]["draftId"]
    assert decode_raw(draft["message"]["raw"])["To"].addresses[0].addr_spec == "full@acme.test"
    assert funnel["counts"]["noSlot"] == 1 and funnel["counts"]["drafted"] == 1


def test_no_slot_without_drafting_rejects_the_email(client: LeadRunClient) -> None:
    run_id = unique("nodraft")
    start = next_weekday(3, hour=15)
    body = request(run_id, [lead("x", [slot(start)])])
    body["fallback"] = {"expandDays": 0, "draftIfNoSlot": False}
    client.sandbox.busy(body["host"]["calendarId"], iso(start), iso(start + timedelta(hours=1)))
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    email = receipts_by_key(client, run_id)[("x", "email")]
    assert (email["status"], email["reason"]) == ("rejected", "no_slot")


def test_no_slot_lead_sent_again_with_free_slots_is_booked_and_confirmed(
    client: LeadRunClient,
) -> None:
    run_id = unique("again")
    start = next_weekday(3, hour=15)
    body = request(run_id, [lead("retry", [slot(start)])])
    body["fallback"]["expandDays"] = 0
    host = body["host"]["calendarId"]
    client.sandbox.busy(host, iso(start), iso(start + timedelta(minutes=30)))
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    assert receipts_by_key(client, run_id)[("retry", "calendar")]["outcome"] == "no_slot"

    free = start + timedelta(hours=2)
    body["leads"][0]["candidateSlots"] = [slot(free)]
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=60)
    receipts = receipts_by_key(client, run_id)
    assert receipts[("retry", "calendar")]["outcome"] == "booked"
    assert datetime.fromisoformat(receipts[("retry", "calendar")]["external"]["start"]) == free
    assert receipts[("retry", "email")]["outcome"] == "sent"
    mine = of_run(client.sandbox.state(), run_id, host)
    assert len(mine["events"]) == 1 and len(mine["messages"]) == 1
    assert funnel["counts"]["noSlot"] == 0 and funnel["counts"]["booked"] == 1
    assert funnel["counts"]["sent"] == 1 and funnel["counts"]["drafted"] == 0
    assert funnel["counts"] == {**client.recount(run_id)["counts"], "sourced": 0, "filtered": 0}

    # Once booked, sending it again never books twice.
    body["leads"][0]["candidateSlots"] = [slot(free + timedelta(hours=1))]
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=30)
    assert len(of_run(client.sandbox.state(), run_id, host)["events"]) == 1
