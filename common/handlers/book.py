"""Book the first free candidate slot (widening the search when none is free), with a Meet link.

Before inserting, the slot is claimed in Firestore (`calendar_holds`), because freeBusy cannot see a
booking another instance is making at the same moment. The event id is deterministic, so a retry
after Google accepted the insert answers 409 and the existing event is recorded instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from googleapiclient.errors import HttpError

from common import flow, keys
from common.bus import Outgoing
from common.errors import PermanentError
from common.handlers.delivery import Outcome, Retry, Work
from common.holds import Settlement, SlotHold
from common.models import Slot
from common.ports import Calendar
from common.receipts import Ending, Status, lead_waits
from common.slots import (
    Interval,
    SlotRules,
    Workday,
    candidates_window,
    expanded_window,
    first_free_candidate,
    first_free_expanded,
    split_candidates,
)

HOLD_TTL = timedelta(minutes=5)
MAX_CLAIM_ROUNDS = 60


def rules_for(work: Work) -> SlotRules:
    """The slot rules of this lead's meeting."""
    meeting = work.settings.meeting
    return SlotRules(
        duration=timedelta(minutes=meeting.durationMinutes),
        notice=timedelta(minutes=meeting.minNoticeMinutes),
        buffer_before=timedelta(minutes=meeting.bufferBeforeMinutes),
        buffer_after=timedelta(minutes=meeting.bufferAfterMinutes),
    )


def candidate_intervals(slots: list[Slot]) -> list[Interval]:
    """A lead's candidate slots as intervals."""
    return [Interval(slot.start, slot.end) for slot in slots]


def meet_link(event: dict[str, Any]) -> str | None:
    """The Meet URL of an event, if Google made one."""
    if event.get("hangoutLink"):
        return str(event["hangoutLink"])
    for entry in (event.get("conferenceData") or {}).get("entryPoints") or []:
        if entry.get("entryPointType") == "video":
            return str(entry.get("uri"))
    return None


def conference_status(event: dict[str, Any]) -> str:
    """`pending`, `success` or `failure` of the event's Meet request (`success` once a link
    is there; an event made without a request has nothing to wait for)."""
    if meet_link(event):
        return "success"
    create = (event.get("conferenceData") or {}).get("createRequest") or {}
    return str((create.get("status") or {}).get("statusCode") or "success")


MEET_POLL_FIRST_S = 0.25
MEET_POLL_BUDGET_S = 20.0


class Booker:
    """The calendar action for one delivery."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.calendar = work.tools.freebusy
        host = work.settings.host
        self.subject = host.senderEmail
        self.calendar_id = host.calendarId
        self.host_zone = host.timeZone
        self.rules = rules_for(work)
        self.event_id = keys.event_id(work.delivery.run_id, work.delivery.lead_doc_id)
        self.owner = keys.hold_owner(work.delivery.run_id, work.delivery.lead_doc_id)
        self.calendar_key = keys.calendar_key(self.calendar_id, work.delivery.run_id, work.dry_run)

    # -- slot choice -------------------------------------------------------------------
    def _claim(self, meeting: Interval) -> list[Interval]:
        span = self.rules.needs_free(meeting)
        # Claim the buffered span but record the meeting itself, so a lead that meets the
        # conflict applies its own buffers to it.
        conflicts = self.work.holds.claim(
            self.calendar_key,
            SlotHold(span.start, span.end),
            self.owner,
            HOLD_TTL,
            self.work.clock(),
        )
        return [Interval(c.start, c.end) for c in conflicts if c.start < c.end]

    def _reserve(self, pick: Callable[[list[Interval]], Interval | None]) -> Interval | None:
        holds: list[Interval] = []
        for _ in range(MAX_CLAIM_ROUNDS):
            meeting = pick(holds)
            if meeting is None:
                return None
            conflicts = self._claim(meeting)
            if not conflicts:
                return meeting
            holds.extend(conflicts)
        raise Retry("too many concurrent claims on this calendar; retry later")

    def choose(self) -> tuple[Interval | None, bool]:
        """The meeting interval to book and whether the expanded search found it."""
        lead, fallback, now = self.work.lead, self.work.settings.fallback, self.work.now
        valid, _ = split_candidates(candidate_intervals(lead.candidateSlots))
        window = candidates_window(valid, self.rules, now)
        if window is not None:
            busy = self.calendar.busy(self.subject, self.calendar_id, window, self.host_zone)
            meeting = self._reserve(
                lambda holds: first_free_candidate(valid, busy, holds, self.rules, now)
            )
            if meeting is not None:
                return meeting, False
        start, end = fallback.workday()
        workday = Workday(ZoneInfo(self.host_zone), start, end, fallback.expandDays)
        wide = expanded_window(valid, workday, self.rules, now)
        if wide is None:
            return None, False
        busy = self.calendar.busy(self.subject, self.calendar_id, wide, self.host_zone)
        meeting = self._reserve(
            lambda holds: first_free_expanded(valid, busy, holds, workday, self.rules, now)
        )
        return meeting, meeting is not None

    # -- booking -----------------------------------------------------------------------
    def event_body(self, meeting: Interval) -> dict[str, Any]:
        """The event as inserted: the host's zone, the lead as attendee, a Meet request."""
        settings, lead = self.work.settings, self.work.lead
        zone = ZoneInfo(self.host_zone)
        attendee: dict[str, Any] = {"email": lead.email}
        if lead.name:
            attendee["displayName"] = lead.name
        return {
            "id": self.event_id,
            "summary": settings.meeting.title,
            "description": settings.meeting.description,
            "start": {
                "dateTime": meeting.start.astimezone(zone).isoformat(),
                "timeZone": self.host_zone,
            },
            "end": {
                "dateTime": meeting.end.astimezone(zone).isoformat(),
                "timeZone": self.host_zone,
            },
            "attendees": [attendee],
            "conferenceData": {
                "createRequest": {
                    "requestId": keys.conference_request_id(
                        self.work.delivery.run_id, self.work.delivery.lead_doc_id
                    ),
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            },
            "extendedProperties": {
                "private": {
                    "leadrunRunId": self.work.delivery.run_id,
                    "leadrunLeadDocId": self.work.delivery.lead_doc_id,
                }
            },
        }

    def booked(self, event: dict[str, Any], expanded: bool, keep: Settlement | None) -> Outcome:
        """The receipt and the notify follow-up for a booked event, once its Meet conference
        has settled: the confirmation goes out with the link, or (if Meet failed) stays a draft."""
        event = self._settled_meet(event)
        reason = "meet_failed" if conference_status(event) == "failure" else None
        external = {
            "eventId": event.get("id"),
            "htmlLink": event.get("htmlLink"),
            "meetLink": meet_link(event),
            "start": (event.get("start") or {}).get("dateTime"),
            "end": (event.get("end") or {}).get("dateTime"),
            "calendarId": self.calendar_id,
            "expanded": expanded,
        }
        return Outcome(
            Ending(Status.DONE, "booked", reason=reason, external=external),
            self._follow_up({"outcome": "booked", "reason": reason, **external}),
            keep,
        )

    def _settled_meet(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event once Google has made its conference (Meet answers `pending` at first):
        read again with backoff; still pending after the budget, ask for a redelivery, which
        finds the event by its id and goes on waiting."""
        calendar = self.work.tools.calendar
        wait, waited = MEET_POLL_FIRST_S, 0.0
        while calendar is not None and conference_status(event) == "pending":
            if waited >= MEET_POLL_BUDGET_S:
                raise Retry("the Meet conference is still pending")
            self.work.sleep(wait)
            waited += wait
            wait = min(wait * 2, 4.0)
            event = calendar.get_event(self.subject, self.calendar_id, self.event_id) or event
        return event

    def _follow_up(self, booking: dict[str, Any]) -> tuple[Outgoing, ...]:
        """The email message that carries this booking, if the lead has an email action that
        may go now."""
        if not flow.email_follows_calendar(self.work.settings.actions):
            return ()
        d = self.work.delivery
        # The lead keeps when each of its waiting receipts starts: no read of the email's.
        waits = lead_waits(self.work.lead_doc)
        if not flow.email_goes_with_booking(waits, flow.due_by(self.work.clock())):
            return ()
        return (Outgoing(d.run_id, d.lead_doc_id, "email", booking),)

    def no_slot(self) -> Outcome:
        """The receipt when nothing is free: the email action turns into a draft."""
        fields = Ending(
            self.work.status_done,
            "no_slot",
            reason="no_slot",
            external={"calendarId": self.calendar_id, "expanded": True},
        )
        return Outcome(fields, self._follow_up({"outcome": "no_slot"}))

    def run(self) -> Outcome:
        """Book (or, in a dry run, say what would be booked)."""
        self.work.turn()  # every Calendar request counts, the first read as much as the insert
        live = self.work.tools.calendar
        if live is not None and self.work.resumed:
            existing = live.get_event(self.subject, self.calendar_id, self.event_id)
            if existing is not None and existing.get("status") != "cancelled":
                return self.booked(existing, not self._at_a_candidate(existing), None)
        meeting, expanded = self.choose()
        if meeting is None:
            return self.no_slot()
        hold = SlotHold(*self._span(meeting))
        keep = Settlement(self.calendar_key, hold, self.owner, booked=True)
        if live is None:
            zone = ZoneInfo(self.host_zone)
            external = {
                "start": meeting.start.astimezone(zone).isoformat(),
                "end": meeting.end.astimezone(zone).isoformat(),
                "calendarId": self.calendar_id,
                "expanded": expanded,
                "meetLink": None,
            }
            follow_ups = self._follow_up({"outcome": "booked", **external})
            return Outcome(Ending(Status.SIMULATED, "booked", external=external), follow_ups, keep)
        return self._insert(live, meeting, expanded, keep)

    def _at_a_candidate(self, event: dict[str, Any]) -> bool:
        """Whether an existing event starts at one of the lead's candidates (else: expanded)."""
        start = (event.get("start") or {}).get("dateTime")
        if not start:
            return False
        at = datetime.fromisoformat(start)
        return any(slot.start == at for slot in self.work.lead.candidateSlots)

    def _span(self, meeting: Interval) -> tuple[Any, Any]:
        span = self.rules.needs_free(meeting)
        return span.start, span.end

    def _release(self, keep: Settlement) -> None:
        self.work.holds.settle(replace(keep, booked=False))

    def _insert(
        self, calendar: Calendar, meeting: Interval, expanded: bool, keep: Settlement
    ) -> Outcome:
        """Insert the event and keep its holds; on 409, record the event an earlier try made
        (and give back the holds of this try's choice, which may be another slot)."""
        try:
            event = calendar.insert_event(self.subject, self.calendar_id, self.event_body(meeting))
            return self.booked(event, expanded, keep)
        except HttpError as error:
            status = int(error.resp.status)
            if status == 409:
                # An earlier attempt made it (or is making it): record that event.
                existing = calendar.get_event(self.subject, self.calendar_id, self.event_id)
                if existing is not None and existing.get("status") == "cancelled":
                    raise PermanentError(
                        "event_cancelled", "this lead's event was deleted from the calendar"
                    ) from error
                if existing is not None:
                    self._release(keep)
                    return self.booked(existing, not self._at_a_candidate(existing), None)
                raise Retry("event id taken but the event is not readable yet") from error
            if status < 500 and status != 429:
                self._release(keep)
            raise


def book(work: Work) -> Outcome:
    """The calendar effect."""
    return Booker(work).run()
