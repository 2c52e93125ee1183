"""How a lead's actions follow one another (pure): the one place for these rules.

- The email follows the calendar: while a lead's calendar action is not settled, its email is not
  published on its own (book publishes it with the booking); a copy that comes early is
  acknowledged and left pending, without spending a delivery attempt.
- When the booking cannot go on (failed, expired, dead-lettered), the email that would carry it is
  closed as `rejected`/`calendar_failed`, so no lead is left with a pending email.
- What may be tried again: a failed action always; on a resubmission (new data), also a rejected
  one, a calendar `no_slot`, and an email that was only drafted or closed because of the booking
  when the booking is tried again. Nothing that took effect is ever reopened.

Intake, sweep, replay, redrive, book, notify and dead-letter all ask here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from common.models import parse_time
from common.pacing import LOOKAHEAD
from common.receipts import Ending, Receipt, Status, rejected

CALENDAR_FAILED = "calendar_failed"
Receipts = Mapping[str, Receipt | None]


def email_follows_calendar(actions: Iterable[str]) -> bool:
    """Whether this lead's email carries its booking (both actions were requested)."""
    wanted = set(actions)
    return "email" in wanted and "calendar" in wanted


def waits_for_calendar(action: str, actions: Iterable[str], receipts: Receipts) -> bool:
    """Whether `action` must not go on its own yet: an email whose booking is not settled."""
    return (
        action == "email"
        and email_follows_calendar(actions)
        and not is_terminal(receipts.get("calendar"))
    )


def publishable(
    actions: Iterable[str], receipts: Receipts, due: datetime | None = None
) -> list[str]:
    """The actions of a lead to publish now: pending (or with a revert queued), not waiting for
    the calendar, and not waiting for their start in the host's lane (the sweeper publishes
    those when due), unless that start is by `due` (None: any wait holds it back). A paused
    action waits for its resume."""
    wanted = list(actions)
    return [
        action
        for action in wanted
        if not ((r := receipts.get(action)) is not None and r.closed)
        and not _waits(receipts.get(action), due)
        and not waits_for_calendar(action, wanted, receipts)
    ]


def due_by(now: datetime) -> datetime:
    """The latest start that is due at `now`: the sweeper publishes what starts within
    `LOOKAHEAD`, and its passes never look back at a start they have passed."""
    return now + LOOKAHEAD


def _waits(receipt: Receipt | None, due: datetime | None) -> bool:
    if receipt is not None and receipt.paused:
        return True  # until resumed
    if receipt is None or receipt.waiting is None:
        return False
    return due is None or receipt.waits_past(due)


def email_when_booking_fails(actions: Iterable[str]) -> Ending | None:
    """How the email ends once the booking has failed (None: no email follows it)."""
    if not email_follows_calendar(actions):
        return None
    return rejected(CALENDAR_FAILED, "the calendar action did not book a meeting")


def booking_of(calendar: Receipt | None) -> dict[str, Any] | None:
    """What the email needs of a settled calendar receipt (None: not settled yet, wait)."""
    if calendar is None or not calendar.terminal:
        return None
    if calendar.outcome == "booked":
        return {"outcome": "booked", "reason": calendar.reason, **(calendar.external or {})}
    if calendar.outcome == "no_slot":
        return {"outcome": "no_slot"}
    return {"outcome": calendar.status.value, "reason": calendar.reason}


def reopenable(action: str, receipts: Receipts, *, resubmitted: bool) -> bool:
    """Whether `action` may be tried again: by an operator's replay or redrive, or (with
    `resubmitted`) because the lead was sent again, possibly with better data."""
    receipt = receipts.get(action)
    if receipt is None or not receipt.terminal:
        return False
    if receipt.status is Status.FAILED:
        return True
    calendar_again = action == "email" and reopenable("calendar", receipts, resubmitted=resubmitted)
    if receipt.status is Status.REJECTED:
        return resubmitted or (calendar_again and receipt.reason == CALENDAR_FAILED)
    if not resubmitted:
        return False
    if action == "calendar":
        return receipt.outcome == "no_slot"
    return calendar_again and receipt.outcome == "drafted"


def email_goes_with_booking(lead_waits: Mapping[str, str], due: datetime) -> bool:
    """Whether book publishes the email with its booking: not when the email waits for a start
    in the host's Gmail lane later than `due` (`lead_waits`: `receipts.lead_waits`); the
    sweeper publishes it at that start, once the booking has settled, and notify reads the
    booking from the calendar receipt. An email whose start came while its booking was being
    made goes now: the sweeper passed it over then, and does not look back."""
    start = lead_waits.get("email")
    return start is None or parse_time(start) <= due


def is_terminal(receipt: Receipt | None) -> bool:
    """Whether a receipt exists and has reached a final status."""
    return receipt is not None and receipt.terminal
