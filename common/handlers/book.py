"""Book the first free candidate slot (widening the search when none is free), with a Meet link.

Before inserting, the slot is claimed in Firestore (`calendar_holds`), because freeBusy cannot see a
booking another instance is making at the same moment. The event id is deterministic, so a retry
after Google accepted the insert answers 409 and the existing event is recorded instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from googleapiclient.errors import HttpError

from common import keys
from common.bus import Outgoing, carried_lead
from common.errors import PermanentError
from common.google_apis import CalendarFreeBusy, GoogleCalendar
from common.handlers.delivery import Retry, Work, terminal
from common.models import Slot
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
from common.store import Settlement, SlotHold

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


class Booker:
    """The calendar action for one delivery."""

    def __init__(self, work: Work, calendar: CalendarFreeBusy) -> None:
        self.work = work
        self.calendar = calendar
        host = work.settings.host
        self.subject = host.senderEmail
        self.calendar_id = host.calendarId
        self.host_zone = host.timeZone
        self.rules = rules_for(work)
        self.event_id = keys.event_id(work.delivery.run_id, work.delivery.lead_doc_id)
        self.owner = keys.hold_owner(work.delivery.run_id, work.delivery.lead_doc_id)
        self.calendar_key = keys.calendar_key(self.calendar_id, work.delivery.run_id, work.dry_run)
        self.hold_versions: dict[str, Any] = {}  # of the holds this delivery last claimed

    # -- slot choice -------------------------------------------------------------------
    def _claim(self, meeting: Interval) -> list[Interval]:
        span = self.rules.needs_free(meeting)
        # Claim the buffered span but record the meeting itself, so a lead that meets the
        # conflict applies its own buffers to it.
        claimed = self.work.store.claim_slot(
            self.calendar_key, SlotHold(span.start, span.end), self.owner, HOLD_TTL
        )
        if not claimed.conflicts:
            self.hold_versions = claimed.versions
        return [Interval(c.start, c.end) for c in claimed.conflicts if c.start < c.end]

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

    def booked(self, event: dict[str, Any], expanded: bool) -> dict[str, Any]:
        """The receipt and the notify follow-up for a booked event."""
        external = {
            "eventId": event.get("id"),
            "htmlLink": event.get("htmlLink"),
            "meetLink": meet_link(event),
            "start": (event.get("start") or {}).get("dateTime"),
            "end": (event.get("end") or {}).get("dateTime"),
            "calendarId": self.calendar_id,
            "expanded": expanded,
        }
        self._follow_up({"outcome": "booked", **external})
        return terminal("done", "booked", external=external)

    def _follow_up(self, booking: dict[str, Any]) -> None:
        if "email" in self.work.settings.actions:
            d = self.work.delivery
            # The email receipt's version, as schedule created it, rides along to notify.
            versions = {"email": d.versions["email"]} if "email" in d.versions else None
            lead = carried_lead(self.work.lead_doc) if versions else None
            self.work.follow_ups.append(
                Outgoing(d.run_id, d.lead_doc_id, "email", booking, versions, lead)
            )

    def no_slot(self) -> dict[str, Any]:
        """The receipt when nothing is free: the email action turns into a draft."""
        self._follow_up({"outcome": "no_slot"})
        return terminal(
            self.work.status_done,
            "no_slot",
            reason="no_slot",
            external={"calendarId": self.calendar_id, "expanded": True},
        )

    def run(self) -> dict[str, Any]:
        """Book (or, in a dry run, say what would be booked)."""
        live = isinstance(self.calendar, GoogleCalendar)
        if live and self.work.resumed:
            existing = self.calendar.get_event(self.subject, self.calendar_id, self.event_id)  # type: ignore[attr-defined]
            if existing is not None and existing.get("status") != "cancelled":
                return self.booked(existing, not self._at_a_candidate(existing))
        meeting, expanded = self.choose()
        if meeting is None:
            return self.no_slot()
        hold = SlotHold(*self._span(meeting))
        if not live:
            self._keep(hold)
            external = {
                "start": meeting.start.astimezone(ZoneInfo(self.host_zone)).isoformat(),
                "end": meeting.end.astimezone(ZoneInfo(self.host_zone)).isoformat(),
                "calendarId": self.calendar_id,
                "expanded": expanded,
                "meetLink": None,
            }
            self._follow_up({"outcome": "booked", **external})
            return terminal("simulated", "booked", external=external)
        event = self._insert(meeting, hold)
        return self.booked(event, expanded)

    def _keep(self, hold: SlotHold) -> None:
        """Keep the holds as booked, in the same commit that finishes the receipt."""
        self.work.settle = Settlement(self.calendar_key, hold, self.owner, self.hold_versions)

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

    def _insert(self, meeting: Interval, hold: SlotHold) -> dict[str, Any]:
        calendar: GoogleCalendar = self.calendar  # type: ignore[assignment]
        try:
            event = calendar.insert_event(self.subject, self.calendar_id, self.event_body(meeting))
            self._keep(hold)
            return event
        except HttpError as error:
            if int(error.resp.status) == 409:
                # An earlier attempt made it (or is making it): record that event.
                existing = calendar.get_event(self.subject, self.calendar_id, self.event_id)
                if existing is not None and existing.get("status") == "cancelled":
                    raise PermanentError(
                        "event_cancelled", "this lead's event was deleted from the calendar"
                    ) from error
                if existing is not None:
                    self.work.store.settle_slot(
                        self.calendar_key,
                        hold,
                        self.owner,
                        booked=False,
                        versions=self.hold_versions,
                    )
                    return existing
                raise Retry("event id taken but the event is not readable yet") from error
            if int(error.resp.status) < 500 and int(error.resp.status) != 429:
                self.work.store.settle_slot(
                    self.calendar_key, hold, self.owner, booked=False, versions=self.hold_versions
                )
            raise


def book_effect(
    calendar_for: Callable[[bool], CalendarFreeBusy],
) -> Callable[[Work], dict[str, Any]]:
    """The calendar effect, given how to get a calendar for a run's mode."""

    def effect(work: Work) -> dict[str, Any]:
        return Booker(work, calendar_for(work.dry_run)).run()

    return effect
