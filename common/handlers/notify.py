"""Send the confirmation (or, after `no_slot`, draft an availability request) through Gmail.

Gmail has no idempotency key and a 200 does not prove delivery, so every email goes through a
draft checkpoint: create the draft, record its id, send the draft, record the message. On a retry
a sent message is found by its deterministic Message-ID; a draft that is gone was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from googleapiclient.errors import HttpError

from common import flow, keys, mime
from common.handlers.delivery import Later, Outcome, Work
from common.models import parse_time, stamp
from common.ports import Mailer
from common.receipts import Ending, Status, rejected
from common.slots import format_meeting_time


@dataclass(frozen=True)
class Letter:
    """An email to a lead, and whether it is sent or left as a draft for the host."""

    kind: str  # "confirmation" | "availability" | "message"
    send: bool
    to: str
    subject: str
    body: str
    reason: str | None = None  # why a letter that would be sent is left as a draft


def booking_for(work: Work) -> dict[str, Any] | None:
    """The booking this email follows: the message's copy, else the settled calendar receipt."""
    if not flow.email_follows_calendar(work.settings.actions):
        return None
    d = work.delivery
    if d.booking:
        return d.booking  # what book decided, published with the event it made
    booking = flow.booking_of(work.receipts.get_receipt(d.run_id, d.lead_doc_id, "calendar"))
    if booking is None:
        # A copy that came before its booking (a replay, a duplicate): book publishes the
        # email once it has booked, so this one is acknowledged, not retried.
        raise Later("calendar_pending", "the calendar action has not settled yet")
    return booking


def compose(work: Work, booking: dict[str, Any] | None) -> Letter | Ending:
    """The letter to write, or a terminal receipt when there is nothing to write."""
    lead, settings = work.lead, work.settings
    assert lead.email  # schedule rejects leads without one
    if booking is None:
        body = mime.fill_body(lead.emailBody, "", "")
        return Letter(
            "message", True, lead.email, lead.emailSubject or settings.meeting.title, body
        )
    if booking["outcome"] == "booked":
        zone = ZoneInfo(lead.timeZone or settings.host.timeZone)
        when = format_meeting_time(parse_time(str(booking["start"])), zone)
        link = str(booking.get("meetLink") or "")
        body = mime.confirmation_text(lead.emailBody, when, link)
        subject = lead.emailSubject or settings.meeting.title
        if booking.get("reason") == "meet_failed":
            # Never send a confirmation without its join link: the host finishes it by hand.
            return Letter("confirmation", False, lead.email, subject, body, "meet_failed")
        return Letter("confirmation", True, lead.email, subject, body)
    if booking["outcome"] == "no_slot":
        if not settings.fallback.draftIfNoSlot:
            return rejected("no_slot")
        subject = f"{settings.meeting.title}: finding a time"
        body = mime.availability_text(lead.name, settings.host.name, settings.meeting.title)
        return Letter("availability", False, lead.email, subject, body)
    return rejected(flow.CALENDAR_FAILED, "no meeting was booked")


class Sender:
    """The email action for one delivery, on a live mailbox."""

    def __init__(self, work: Work, gmail: Mailer, letter: Letter) -> None:
        self.work, self.gmail, self.letter = work, gmail, letter
        host = work.settings.host
        self.sender = host.senderEmail
        self.message_id = keys.message_id_header(
            work.delivery.run_id, work.delivery.lead_doc_id, letter.kind, self.sender
        )
        checkpoint = work.claim.receipt.checkpoint
        # What earlier tries recorded for this letter (a checkpoint of another kind is stale).
        self.mine: dict[str, Any] = (
            dict(checkpoint) if checkpoint.get("kind") == letter.kind else {}
        )

    def raw(self) -> str:
        """The RFC 2822 message, base64url."""
        host, lead = self.work.settings.host, self.work.lead
        message = mime.build_message(
            sender=self.sender,
            sender_name=host.name,
            to=self.letter.to,
            to_name=lead.name,
            subject=self.letter.subject,
            body=self.letter.body,
            message_id=self.message_id,
            date=self.work.now,
        )
        return mime.to_raw(message)

    def sent(self, message: dict[str, Any]) -> Ending:
        """The receipt of a sent email."""
        return Ending(
            Status.DONE,
            "sent",
            external={
                "messageId": message.get("id"),
                "threadId": message.get("threadId"),
            },
        )

    def drafted(self, draft_id: str) -> Ending:
        """The receipt of a draft left for the host."""
        return Ending(
            Status.DONE, "drafted", reason=self.letter.reason, external={"draftId": draft_id}
        )

    def run(self) -> Ending:
        """Create, checkpoint and send the draft, resuming whatever an earlier attempt did.

        A resume trusts the checkpoint and `drafts.get` (by id: consistent), not a search:
        Gmail's search is an index that can miss what was made a moment ago. A search is made
        only when a try may have made something no checkpoint names: it marked that it was
        creating a draft and did not record it, or a recorded draft is gone (sent, or removed
        by the host). A search that finds nothing is believed only once the index has had
        time to catch up with it (see `_settled_absent`); until then the delivery waits rather
        than write again.
        """
        mine = self.mine
        draft_id = mine.get("draftId")
        if draft_id is not None:
            if not self.gmail.draft_exists(self.sender, draft_id):
                return self._draft_gone(draft_id)
        elif mine.get("creating"):
            found = self.gmail.find_sent(self.sender, self.message_id) if self.letter.send else None
            if found:
                return self.sent(found)
            draft = self.gmail.find_draft(self.sender, self.message_id)
            if draft:
                draft_id = str(draft["id"])
                self._checkpoint({"draftId": draft_id, "at": mine["creating"], "unseenSince": None})
            elif not self._settled_absent():
                raise Later("search_lag", "a draft an earlier try made may not be searchable yet")
        if draft_id is None:
            draft_id = self._create_draft()
        if not self.letter.send:
            return self.drafted(draft_id)
        try:
            return self.sent(self.gmail.send_draft(self.sender, draft_id))
        except HttpError as error:
            if int(error.resp.status) == 404:
                return self._draft_gone(draft_id)
            raise

    def _settled_absent(self) -> bool:
        """Whether a search that found nothing can be believed.

        Whatever an earlier try made, it made before this search, so the index shows it by the
        time the first empty search is `search_settle` old. That moment is checkpointed; the
        time the draft was created is no bound (a draft can be sent long after it was made).
        """
        first = self.mine.get("unseenSince")
        if first is None:
            self._checkpoint({"unseenSince": stamp(self.work.clock())})
            return False
        return self.work.clock() - parse_time(first) >= self.gmail.search_settle

    def _create_draft(self) -> str:
        """Mark, create, record: a try that finds the mark without a draft id knows a draft may
        exist that no checkpoint names."""
        now = self.work.now.isoformat()
        self._checkpoint({"draftId": None, "creating": now, "unseenSince": None})
        try:
            draft_id = str(self.gmail.create_draft(self.sender, self.raw())["id"])
        except HttpError as error:
            if int(error.resp.status) < 500:
                # Refused (a limit, a bad request): Gmail made nothing. Without the mark, the
                # resumed try creates at once instead of waiting out the search's lag.
                self._checkpoint({"creating": None})
            raise
        self._checkpoint({"draftId": draft_id, "at": now})
        return draft_id

    def _checkpoint(self, values: dict[str, Any]) -> None:
        """Record progress (merged into the receipt's checkpoint, and into `mine`)."""
        d = self.work.delivery
        self.mine = {**self.mine, "kind": self.letter.kind, **values}
        self.work.receipts.checkpoint(
            d.run_id, d.lead_doc_id, "email", {"kind": self.letter.kind, **values}
        )

    def _draft_gone(self, draft_id: str) -> Ending:
        """A recorded draft that is gone was sent (`drafts.send` removes it) or, for a draft
        left to the host, used or removed by the host. A sent message is looked up by its
        Message-ID; until an empty search can be believed, wait rather than write the email
        again; past that, it was removed unsent, and is written again."""
        if not self.letter.send:
            return self.drafted(draft_id)
        found = self.gmail.find_sent(self.sender, self.message_id)
        if found:
            return self.sent(found)
        if not self._settled_absent():
            raise Later("search_lag", "the sent message is not searchable yet")
        return self.sent(self.gmail.send_draft(self.sender, self._create_draft()))


def simulated(letter: Letter) -> Ending:
    """What a dry run records instead of writing to Gmail."""
    outcome = "sent" if letter.send else "drafted"
    return Ending(
        Status.SIMULATED,
        outcome,
        reason=letter.reason,
        external={"to": letter.to, "subject": letter.subject, "body": letter.body},
    )


def notify(work: Work) -> Outcome:
    """The email effect: compose, then write it (or, in a dry run, say what would be written)."""
    letter = compose(work, booking_for(work))
    if not isinstance(letter, Letter):
        return Outcome(letter)
    if work.tools.mailer is None:
        return Outcome(simulated(letter))
    work.turn()  # Gmail's units are counted over a minute: the turn can come before the mark
    return Outcome(Sender(work, work.tools.mailer, letter).run())
