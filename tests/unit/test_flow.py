"""The flow rules (common/flow.py): the email follows the calendar; what may be tried again."""

from __future__ import annotations

from datetime import datetime

import pytest

from common import flow
from common.limits import Limit
from common.models import parse_time
from common.receipts import Receipt, Status

ALL = ["calendar", "email", "drive"]


def r(status: str, outcome: str | None = None, reason: str | None = None) -> Receipt:
    return Receipt("email", status=Status(status), outcome=outcome, reason=reason)


def at(text: str) -> datetime:
    return parse_time(text)


def test_the_email_is_not_published_while_its_booking_is_open() -> None:
    pending = {a: r("pending") for a in ALL}
    assert flow.publishable(ALL, pending) == ["calendar", "drive"]
    booked = {**pending, "calendar": r("done", "booked")}
    assert flow.publishable(ALL, booked) == ["email", "drive"]
    assert flow.publishable(["email", "drive"], {"email": r("pending")}) == ["email", "drive"]


def test_a_receipt_waiting_for_its_start_is_published_once_that_start_is_due() -> None:
    start = at("2026-12-02T10:00:01.000Z")
    waiting = Receipt("email", waiting=Limit("rate_limit", "gmail", start))
    receipts = {"calendar": r("done", "booked"), "email": waiting, "drive": waiting}
    assert flow.publishable(ALL, receipts) == []
    assert flow.publishable(ALL, receipts, at("2026-12-02T10:00:00.900Z")) == []
    assert flow.publishable(ALL, receipts, at("2026-12-02T10:00:01.000Z")) == ["email", "drive"]
    lead_waits = {"email": "2026-12-02T10:00:01.000Z"}
    assert not flow.email_goes_with_booking(lead_waits, at("2026-12-02T10:00:00.900Z"))
    assert flow.email_goes_with_booking(lead_waits, at("2026-12-02T10:00:01.500Z"))
    assert flow.email_goes_with_booking({}, at("2026-12-02T10:00:00.000Z"))


def test_a_failed_booking_closes_the_email_only_when_the_email_follows_it() -> None:
    ending = flow.email_when_booking_fails(ALL)
    assert ending is not None and (ending.status, ending.reason) == ("rejected", "calendar_failed")
    assert flow.email_when_booking_fails(["calendar", "drive"]) is None


def test_what_the_email_needs_of_the_calendar() -> None:
    assert flow.booking_of(r("pending")) is None
    assert flow.booking_of(None) is None
    booked = Receipt(
        "calendar", status=Status.DONE, outcome="booked", external={"meetLink": "https://meet"}
    )
    assert flow.booking_of(booked) == {
        "outcome": "booked",
        "reason": None,
        "meetLink": "https://meet",
    }
    assert flow.booking_of(r("done", "no_slot", "no_slot")) == {"outcome": "no_slot"}
    assert flow.booking_of(r("failed", None, "dead_lettered")) == {
        "outcome": "failed",
        "reason": "dead_lettered",
    }


@pytest.mark.parametrize(
    ("action", "receipts", "replay", "resubmit"),
    [
        ("drive", {"drive": r("failed", reason="permanent_error")}, True, True),
        ("drive", {"drive": r("done", "created")}, False, False),
        ("drive", {"drive": r("pending")}, False, False),
        ("drive", {"drive": r("rejected", reason="no_email")}, False, True),
        ("calendar", {"calendar": r("done", "no_slot", "no_slot")}, False, True),
        ("calendar", {"calendar": r("done", "booked")}, False, False),
        (
            "email",
            {"calendar": r("failed", reason="x"), "email": r("rejected", reason="calendar_failed")},
            True,
            True,
        ),
        (
            "email",
            {"calendar": r("done", "no_slot", "no_slot"), "email": r("done", "drafted")},
            False,
            True,
        ),
        (
            "email",
            {"calendar": r("done", "booked"), "email": r("done", "drafted")},
            False,
            False,
        ),
        ("email", {"calendar": r("done", "booked"), "email": r("done", "sent")}, False, False),
    ],
)
def test_what_may_be_tried_again(
    action: str, receipts: dict[str, Receipt], replay: bool, resubmit: bool
) -> None:
    assert flow.reopenable(action, receipts, resubmitted=False) is replay
    assert flow.reopenable(action, receipts, resubmitted=True) is resubmit
