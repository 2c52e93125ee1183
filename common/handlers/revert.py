"""Undo what an action made (docs/api.md, "Control": `undo`): one revert an action, a Google call
paced in the host's lane like the call that made it, claimed and recorded as any delivery.

Each revert is idempotent: Google keeps a deleted event (a second delete answers 410), a trashed
folder stays trashed, a deleted draft is gone; what was gone already is `already_gone`. A reverted
booking gives back its slot holds in the same commit as its receipt, so a later run can book it.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from common.handlers.book import Booker
from common.handlers.delivery import Effect, Outcome, Work
from common.holds import Settlement, SlotHold
from common.slots import Interval

GONE = "already_gone"


def _reverted(work: Work, effect: str, keep: Settlement | None = None) -> Outcome:
    at = work.clock()
    return Outcome(lambda r: r.reverted(at, effect), keep=keep)


def _external(work: Work) -> dict[str, Any]:
    return dict(work.claim.receipt.external or {})


def unbook(work: Work) -> Outcome:
    """Delete the booked event (its attendee gets Google's cancellation) and free its slot."""
    calendar = work.tools.calendar
    assert calendar is not None  # a dry run made nothing, and queues no revert
    booker = Booker(work)
    made = _external(work)
    calendar_id = str(made.get("calendarId") or booker.calendar_id)
    free = None
    with contextlib.suppress(KeyError, TypeError, ValueError):  # no times kept: no holds to free
        meeting = Interval(
            datetime.fromisoformat(made["start"]), datetime.fromisoformat(made["end"])
        )
        span = booker.rules.needs_free(meeting)
        free = Settlement(booker.calendar_key, SlotHold(span.start, span.end), booker.owner, False)
    work.turn()
    cancelled = calendar.cancel_event(booker.subject, calendar_id, str(made["eventId"]))
    return _reverted(work, "event_cancelled" if cancelled else GONE, free)


def undraft(work: Work) -> Outcome:
    """Delete the draft the email action left (a sent email cannot be recalled: never queued)."""
    mailer = work.tools.mailer
    assert mailer is not None
    work.turn()
    deleted = mailer.delete_draft(work.settings.host.senderEmail, str(_external(work)["draftId"]))
    return _reverted(work, "draft_deleted" if deleted else GONE)


def trash(work: Work) -> Outcome:
    """Move the lead's folder to the trash (its owner can restore it for 30 days)."""
    drive = work.tools.drive
    assert drive is not None
    work.turn()
    trashed = drive.trash_folder(work.settings.host.senderEmail, str(_external(work)["folderId"]))
    return _reverted(work, "folder_trashed" if trashed else GONE)


REVERTS: dict[str, Effect] = {"calendar": unbook, "email": undraft, "drive": trash}
