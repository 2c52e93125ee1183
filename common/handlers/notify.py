"""Send the confirmation (or, after `no_slot`, draft an availability request) through Gmail.

Gmail has no idempotency key and a 200 does not prove delivery, so every email goes through a
draft checkpoint: create the draft, record its id, send the draft, record the message. On a retry
a sent message is found by its deterministic Message-ID; a draft that is gone was sent. Only the
draft the checkpoint names is sent: a draft that a failed create may have made is deleted instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from googleapiclient.errors import HttpError

from common import flow, keys, mime
from common.handlers.delivery import Later, Outcome, Work
from common.log import log
from common.models import parse_time, stamp
from common.ports import Mailer
from common.receipts import Ending, Status, rejected
from common.slots import format_meeting_time

# The first look again after a search that found nothing; the looks after it double apart.
LOOK_FIRST = timedelta(seconds=5)


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
        Gmail's search is an index that can miss what was made a moment ago. Exactly-once is
        owed to what the lead receives, and only the draft the checkpoint names is ever sent;
        so a try that marked a create and recorded no draft makes another at once, and a draft
        the lost create may have made is removed once search can see it (`_clear_strays`). A
        search must be believed only when a recorded draft is gone (sent, or removed by the
        host): then the delivery looks again as the index catches up (`_look_again`) rather
        than write the email again.
        """
        mine = self.mine
        if mine.get("sent"):
            return self._sent_and_clear(mine["sent"], caught_up=False)
        draft_id = mine.get("draftId")
        if draft_id is not None and not self.gmail.draft_exists(self.sender, draft_id):
            return self._draft_gone(draft_id)
        if draft_id is None and mine.get("creating") and not mine.get("strays"):
            # The create an earlier try marked may have made a draft that no checkpoint names.
            self._checkpoint({"strays": True})
        return self._write(draft_id)

    def _write(self, draft_id: str | None) -> Ending:
        """Create the draft unless one is named, then send it (or leave it for the host)."""
        if draft_id is None:
            draft_id = self._create_draft()
        if not self.letter.send:
            return self._drafted_and_clear(draft_id)
        try:
            message = self.gmail.send_draft(self.sender, draft_id)
        except HttpError as error:
            if int(error.resp.status) == 404:
                return self._draft_gone(draft_id)
            raise
        return self._sent_and_clear(message, caught_up=False)

    def _create_draft(self) -> str:
        """Mark, create, record: a try that finds the mark without a draft id knows a draft may
        exist that no checkpoint names."""
        now = self.work.now.isoformat()
        self._checkpoint({"draftId": None, "creating": now, "unseenSince": None})
        try:
            draft_id = str(self.gmail.create_draft(self.sender, self.raw())["id"])
        except HttpError as error:
            if int(error.resp.status) < 500:
                # Refused (a limit, a bad request): Gmail made nothing, so no stray to look for.
                self._checkpoint({"creating": None})
            raise
        self._checkpoint({"draftId": draft_id, "at": now})
        return draft_id

    def _draft_gone(self, draft_id: str) -> Ending:
        """A recorded draft that is gone was sent (`drafts.send` removes it) or, for a draft
        left to the host, used or removed by the host. A sent message is looked up by its
        Message-ID, again as the index catches up; only once an empty search can be believed
        (`search_settle` after the first) was it removed unsent, and is written again."""
        if not self.letter.send:
            return self.drafted(draft_id)
        found = self.gmail.find_sent(self.sender, self.message_id)
        if found:
            return self._sent_and_clear(found, caught_up=True)
        self._look_again("the sent message is not searchable yet")
        return self._write(None)

    def _sent_and_clear(self, message: dict[str, Any], caught_up: bool) -> Ending:
        """The receipt of a sent email, once no stray draft is left (`caught_up`: the search
        has already seen the sent message)."""
        done = self.sent(message)
        if not self.mine.get("strays"):
            return done
        if not self.mine.get("sent"):
            # A resume must neither send again nor search for what this send made.
            sent = {"id": message.get("id"), "threadId": message.get("threadId")}
            self._checkpoint({"sent": sent, "unseenSince": None})
        if not caught_up:
            caught_up = self.gmail.find_sent(self.sender, self.message_id) is not None
        found = self.gmail.find_drafts(self.sender, self.message_id)
        return self._clear_strays(found, None, caught_up, done)

    def _drafted_and_clear(self, draft_id: str) -> Ending:
        """The receipt of a draft left for the host, once no stray draft is left beside it."""
        done = self.drafted(draft_id)
        if not self.mine.get("strays"):
            return done
        found = self.gmail.find_drafts(self.sender, self.message_id)
        caught_up = any(str(draft["id"]) == draft_id for draft in found)
        return self._clear_strays(found, draft_id, caught_up, done)

    def _clear_strays(
        self,
        found: list[dict[str, Any]],
        keep: str | None,
        caught_up: bool,
        done: Ending,
    ) -> Ending:
        """Delete the drafts carrying this Message-ID but `keep`, then return `done`; unless
        the search did not yet show what this letter made last (`caught_up`), which was made
        after any stray: then look again, as the index catches up."""
        for draft in found:
            if str(draft["id"]) != keep:
                self.gmail.delete_draft(self.sender, str(draft["id"]))
        if not caught_up and not self._look_again("a stray draft may not be searchable yet"):
            log(
                "search did not catch up within the settle time: a stray draft may be left",
                severity="WARNING",
                labels=self.work.delivery.labels,
                messageIdHeader=self.message_id,
            )
        return done

    def _look_again(self, why: str) -> bool:
        """Park the delivery until the next look, while an empty search cannot be believed yet;
        False once it can (`search_settle` after the first empty search).

        Whatever an earlier try made, it made before the first empty search, so the index
        shows it by the time that search is `search_settle` old; the looks before that come
        sooner, doubling apart, so a search that merely lags is seen as soon as it catches up.
        That moment is checkpointed; the time the draft was created is no bound (a draft can
        be sent long after it was made).
        """
        now = self.work.clock()
        first = self.mine.get("unseenSince")
        if first is None:
            self._checkpoint({"unseenSince": stamp(now)})
            since = now
        else:
            since = parse_time(first)
        settle = self.gmail.search_settle
        if now - since >= settle:
            return False
        raise Later("search_lag", why, until=since + min(next_look(now - since), settle))

    def _checkpoint(self, values: dict[str, Any]) -> None:
        """Record progress (merged into the receipt's checkpoint, and into `mine`)."""
        d = self.work.delivery
        self.mine = {**self.mine, "kind": self.letter.kind, **values}
        self.work.receipts.checkpoint(
            d.run_id, d.lead_doc_id, "email", {"kind": self.letter.kind, **values}
        )


def next_look(elapsed: timedelta) -> timedelta:
    """When, after the first empty search, to search again once `elapsed` has passed: looks
    `LOOK_FIRST` apart at first, doubling (5, 15, 35, 75 s, ...)."""
    step = at = LOOK_FIRST
    while at <= elapsed:
        step *= 2
        at += step
    return at


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
