"""Calendar v3: ``freebusy.query`` and ``events.insert/get/list/delete``.

A user acts on its own calendar only: ``primary`` and its own address name the same calendar, and
an ``events.*`` call on anyone else's answers 404 ``notFound``, as Google does for a calendar that
was not shared with the user. ``freebusy.query`` reads any calendar, as Google lets users of a
domain see each other's free/busy. Calendars are kept under their lower-cased id.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time as clock
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.errors import ApiError, bad_request, not_found
from sandbox.state import ApiCall, Handler, SandboxState

EVENT_ID = re.compile(r"^[0-9a-v]{5,1024}$")
MEET_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def calendar_exists(calendar_id: str) -> bool:
    """Every calendar exists except those whose domain ends in ``.invalid``."""
    return not calendar_id.lower().rstrip(".").endswith(".invalid")


def own_calendar(call: ApiCall) -> str:
    """The calendar an ``events.*`` call acts on (the acting user's); 404 for anyone else's."""
    calendar_id = call.params["calendarId"]
    if not calendar_exists(calendar_id):
        raise not_found()
    if calendar_id == "primary" or calendar_id.strip().lower() == call.user:
        return call.user
    raise not_found()


def calendar_key(calendar_id: str, user: str) -> str:
    """Where a calendar is kept: ``primary`` is ``user``'s own, ids compare case-insensitively."""
    return user if calendar_id == "primary" else calendar_id.strip().lower()


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_time(value: Any, what: str, zone: str | None = None) -> datetime:
    """Parse an RFC 3339 datetime; a value without offset needs ``zone`` (else 400)."""
    if not isinstance(value, str):
        raise bad_request(f"Invalid value for {what}.", "invalid")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(f"Bad Request: invalid {what} '{value}'.", "badRequest") from None
    if parsed.tzinfo is None:
        tz = _zone(zone)
        if tz is None:
            raise bad_request(f"Missing time zone definition for {what}.", "required")
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def format_time(moment: datetime, zone: str | None = None) -> str:
    """RFC 3339 in ``zone`` if it is a known time zone, else UTC with ``Z``."""
    tz = _zone(zone)
    if tz is None or zone in ("UTC", "Etc/UTC"):
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(tz).isoformat(timespec="seconds")


def event_bounds(event: dict[str, Any]) -> tuple[datetime, datetime]:
    """An event's start and end as aware datetimes (all-day events: midnight, event zone)."""
    out: list[datetime] = []
    for key in ("start", "end"):
        when = event.get(key) or {}
        zone = when.get("timeZone")
        if when.get("dateTime"):
            out.append(parse_time(when["dateTime"], f"{key} time", zone))
        elif when.get("date"):
            try:
                day = date.fromisoformat(when["date"])
            except ValueError:
                raise bad_request(f"Invalid {key} date.", "invalid") from None
            out.append(datetime.combine(day, time(0), _zone(zone) or UTC))
        else:
            raise bad_request(f"Missing {key} time.", "required")
    return out[0], out[1]


def _cached_bounds(state: SandboxState, event: dict[str, Any]) -> tuple[datetime, datetime]:
    """`event_bounds`, remembered by the event's start and end as written (a freeBusy query
    would otherwise parse every event of the calendar again)."""
    start, end = event.get("start") or {}, event.get("end") or {}
    key = tuple(
        when.get(part) for when in (start, end) for part in ("dateTime", "date", "timeZone")
    )
    found = state.bounds_cache.get(key)
    if found is None:
        found = event_bounds(event)
        if len(state.bounds_cache) > 100_000:
            state.bounds_cache.clear()
        state.bounds_cache[key] = found
    return found


def meet_code(request_id: str) -> str:
    """A deterministic ``abc-defg-hij`` Meet code for a conference request id."""
    digest = hashlib.sha256(request_id.encode()).digest()
    letters = "".join(MEET_ALPHABET[b % 26] for b in digest[:10])
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:10]}"


def _conference(create: dict[str, Any]) -> dict[str, Any]:
    request_id = create.get("requestId")
    if not request_id:
        raise bad_request("Invalid conference create request: missing requestId.", "invalid")
    kind = (create.get("conferenceSolutionKey") or {}).get("type")
    if kind != "hangoutsMeet":
        raise bad_request("Invalid conference type value.", "invalid")
    code = meet_code(str(request_id))
    uri = f"https://meet.google.com/{code}"
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": kind},
            "status": {"statusCode": "success"},
        },
        "entryPoints": [
            {"entryPointType": "video", "uri": uri, "label": f"meet.google.com/{code}"}
        ],
        "conferenceSolution": {
            "key": {"type": "hangoutsMeet"},
            "name": "Google Meet",
            "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png",
        },
        "conferenceId": code,
    }


def _pending(conference: dict[str, Any]) -> dict[str, Any]:
    """What Google answers while a conference is being made: the request, status ``pending``."""
    request = dict(conference["createRequest"])
    return {"createRequest": {**request, "status": {"statusCode": "pending"}}}


def _failed(conference: dict[str, Any]) -> dict[str, Any]:
    """A conference Google could not make: status ``failure``, no link, no entry points."""
    request = dict(conference["createRequest"])
    return {"createRequest": {**request, "status": {"statusCode": "failure"}}}


def _show_conference(event: dict[str, Any], conference: dict[str, Any]) -> None:
    event["conferenceData"] = conference
    event.pop("hangoutLink", None)
    for entry in conference.get("entryPoints", []):
        if entry.get("entryPointType") == "video":
            event["hangoutLink"] = entry["uri"]
            break


def settle_conference(event: dict[str, Any], now: float | None = None) -> None:
    """Show a pending conference's outcome once its time has come (called under the lock)."""
    due = event.get("_conferenceDue")
    if due is None or (clock.time() if now is None else now) < due:
        return
    _show_conference(event, event.pop("_conferenceOutcome"))
    del event["_conferenceDue"]


def settle_conferences(state: SandboxState) -> None:
    """Settle every conference that is due (before ``GET /_sandbox/state``)."""
    with state.lock:
        now = clock.time()
        for events in state.events.values():
            for event in events.values():
                settle_conference(event, now)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def events_insert(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``calendar.events.insert``: client ids, 409 ``duplicate``, Meet links."""
    calendar_id = own_calendar(call)
    body: dict[str, Any] = dict(call.body or {})
    event_id = body.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.match(event_id)):
        raise bad_request("Invalid resource id value.", "invalid")
    start, end = event_bounds(body)
    if end < start:
        raise bad_request("The specified time range is empty.", "timeRangeEmpty")
    conference = None
    if call.query.get("conferenceDataVersion", 0) >= 1 and body.get("conferenceData"):
        create = body["conferenceData"].get("createRequest")
        conference = _conference(create) if create else body["conferenceData"]
    body.pop("conferenceData", None)
    body.pop("hangoutLink", None)
    with state.lock:
        events = state.events.setdefault(calendar_id, {})
        if event_id is None:
            event_id = secrets.token_hex(13)
        if event_id in events:
            raise ApiError(409, "The requested identifier already exists.", "duplicate")
        stamp = _now()
        seq = state.next_sequence()
        eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
        event: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": f'"{3000000000000000 + seq}"',
            **body,
            "id": event_id,
            "status": body.get("status") or "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
            "created": stamp,
            "updated": stamp,
            "creator": {"email": calendar_id, "self": True},
            "organizer": {"email": calendar_id, "self": True},
            "iCalUID": body.get("iCalUID") or f"{event_id}@google.com",
            "sequence": body.get("sequence", 0),
            "reminders": body.get("reminders") or {"useDefault": True},
            "eventType": body.get("eventType") or "default",
            "calendarId": calendar_id,
            "user": call.user,
        }
        if body.get("attendees"):
            event["attendees"] = [
                {**a, "responseStatus": a.get("responseStatus") or "needsAction"}
                for a in body["attendees"]
            ]
        if conference is not None:
            _make_conference(state, event, conference)
        events[event_id] = event
        state.event_order.append((calendar_id, event_id))
        return _public(event)


def _make_conference(
    state: SandboxState, event: dict[str, Any], conference: dict[str, Any]
) -> None:
    """Attach a new conference: made at once, or pending for ``meetPendingSeconds`` (limits)."""
    limits = state.limits
    made = conference
    if "createRequest" in conference and limits.meet_fails:
        made = _failed(conference)
    if "createRequest" in conference and limits.meet_pending_s > 0:
        event["_conferenceDue"] = clock.time() + limits.meet_pending_s
        event["_conferenceOutcome"] = made
        _show_conference(event, _pending(conference))
        return
    _show_conference(event, made)


# what state shows of an event beside Google's fields (the delete's sendUpdates among them)
_BOOKKEEPING = frozenset({"calendarId", "user", "sendUpdates"})


def _public(event: dict[str, Any]) -> dict[str, Any]:
    """An event as Google answers it: no sandbox bookkeeping (calendar, user, private keys)."""
    return {k: v for k, v in event.items() if k not in _BOOKKEEPING and not k.startswith("_")}


def events_get(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``calendar.events.get``: 404 ``notFound`` for an unknown calendar or event; a deleted
    event is answered with ``status: "cancelled"``, as Google answers it."""
    calendar_id, event_id = own_calendar(call), call.params["eventId"]
    with state.lock:
        event = state.events.get(calendar_id, {}).get(event_id)
        if event is None:
            raise not_found()
        settle_conference(event)
        return _public(event)


def events_delete(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``calendar.events.delete``: marks the event cancelled, as Google keeps a deleted event
    (its id stays taken, a second delete answers 410 ``deleted``); state records the
    ``sendUpdates`` it was deleted with (``none`` when the call named none, Google's default)."""
    calendar_id, event_id = own_calendar(call), call.params["eventId"]
    send_updates = call.query.get("sendUpdates")
    if send_updates is None:  # the deprecated boolean, still honoured by Google
        send_updates = "all" if call.query.get("sendNotifications") else "none"
    with state.lock:
        event = state.events.get(calendar_id, {}).get(event_id)
        if event is None:
            raise not_found()
        if event.get("status") == "cancelled":
            raise ApiError(410, "Resource has been deleted", "deleted")
        event["status"] = "cancelled"
        event["updated"] = _now()
        event["sequence"] = int(event.get("sequence") or 0) + 1
        event["etag"] = f'"{3000000000000000 + state.next_sequence()}"'
        event["sendUpdates"] = send_updates
    return {}


def _matches_text(event: dict[str, Any], text: str) -> bool:
    words = [event.get(k) or "" for k in ("summary", "description", "location")]
    words += [a.get("email", "") for a in event.get("attendees") or []]
    haystack = " ".join(str(w) for w in words).lower()
    return all(term in haystack for term in text.lower().split())


def events_list(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``calendar.events.list`` with ``timeMin``/``timeMax``/``q``/``iCalUID``/``showDeleted``."""
    calendar_id = own_calendar(call)
    q = call.query
    lo = parse_time(q["timeMin"], "timeMin") if "timeMin" in q else None
    hi = parse_time(q["timeMax"], "timeMax") if "timeMax" in q else None
    with state.lock:
        events = list(state.events.get(calendar_id, {}).values())
        items: list[dict[str, Any]] = []
        for event in events:
            if event.get("status") == "cancelled" and not q.get("showDeleted"):
                continue
            if "iCalUID" in q and event.get("iCalUID") != q["iCalUID"]:
                continue
            if "q" in q and not _matches_text(event, q["q"]):
                continue
            start, end = event_bounds(event)
            if (lo is not None and end <= lo) or (hi is not None and start >= hi):
                continue
            settle_conference(event)
            items.append(_public(event))
    if q.get("orderBy") == "startTime":
        items.sort(key=lambda e: event_bounds(e)[0])
    offset = int(q.get("pageToken") or 0) if str(q.get("pageToken") or "0").isdigit() else 0
    size = int(q.get("maxResults") or 250)
    page = items[offset : offset + size]
    answer: dict[str, Any] = {
        "kind": "calendar#events",
        "summary": calendar_id,
        "updated": _now(),
        "timeZone": q.get("timeZone") or "UTC",
        "accessRole": "owner",
        "items": page,
    }
    if offset + size < len(items):
        answer["nextPageToken"] = str(offset + size)
    return answer


def _merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def freebusy_query(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``calendar.freebusy.query``: merged busy intervals clipped to the window."""
    body: dict[str, Any] = call.body or {}
    if not body.get("timeMin"):
        raise bad_request("Missing timeMin.", "required")
    if not body.get("timeMax"):
        raise bad_request("Missing timeMax.", "required")
    lo, hi = parse_time(body["timeMin"], "timeMin"), parse_time(body["timeMax"], "timeMax")
    if hi <= lo:
        raise bad_request("The specified time range is empty.", "timeRangeEmpty")
    zone = body.get("timeZone")
    calendars: dict[str, Any] = {}
    with state.lock:
        for item in body.get("items") or []:
            calendar_id = str(item.get("id", ""))
            if not calendar_exists(calendar_id):
                calendars[calendar_id] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            key = calendar_key(calendar_id, call.user)
            spans = list(state.busy.get(key, []))
            for event in state.events.get(key, {}).values():
                if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                    continue
                spans.append(_cached_bounds(state, event))
            clipped = [(max(s, lo), min(e, hi)) for s, e in spans if s < hi and e > lo]
            calendars[calendar_id] = {
                "busy": [
                    {"start": format_time(s, zone), "end": format_time(e, zone)}
                    for s, e in _merge([c for c in clipped if c[0] < c[1]])
                ]
            }
    return {
        "kind": "calendar#freeBusy",
        "timeMin": format_time(lo),
        "timeMax": format_time(hi),
        "calendars": calendars,
    }


def add_busy(state: SandboxState, calendar_id: str, start: str, end: str) -> None:
    """``POST /_sandbox/busy``: add a busy block to a calendar (named by its address: there is
    no acting user here to say whose ``primary`` is meant)."""
    if calendar_id == "primary":
        raise bad_request("busy needs the calendar's address, not primary", "invalid")
    begin, finish = parse_time(start, "start"), parse_time(end, "end")
    if finish <= begin:
        raise bad_request("end must be after start", "timeRangeEmpty")
    with state.lock:
        state.busy.setdefault(calendar_key(calendar_id, ""), []).append((begin, finish))
        state.busy_raw.append({"calendarId": calendar_id, "start": start, "end": end})


HANDLERS: dict[str, Handler] = {
    "calendar.freebusy.query": freebusy_query,
    "calendar.events.insert": events_insert,
    "calendar.events.get": events_get,
    "calendar.events.list": events_list,
    "calendar.events.delete": events_delete,
}
