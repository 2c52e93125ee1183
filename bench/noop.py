"""The ceiling's functions: same deploy units, targets and triggers, no work but the messages.

`bench.ceiling` generates a functions directory whose `main.py` files re-export these. They keep
the pipeline's message shape so the same push subscriptions carry the same count per lead:
`schedule` publishes one `lead-calendar` and one `lead-drive` message per lead, `book` publishes
one `lead-notify` message per delivery (with the booking, as the real one carries), and every
subscriber then just acknowledges. Each
delivery appends one byte to `<BENCH_COUNT_DIR>/<K_SERVICE>.count` (O_APPEND, atomic), so the
benchmark reads counts as file sizes and the last delivery's time as the file's mtime.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any

import flask
from cloudevents.http import CloudEvent

from common.bus import Outgoing, PubSubBus

_fd: dict[int, int] = {}
_bus: dict[int, PubSubBus] = {}
_lock = threading.Lock()
# A booking of the same shape and size as the one the real `book` sends on to notify.
_BOOKING: dict[str, Any] = {
    "outcome": "booked",
    "eventId": "0" * 52,
    "htmlLink": "https://calendar.google.com/calendar/event?eid=" + "0" * 60,
    "meetLink": "https://meet.google.com/abc-defg-hij",
    "start": "2026-12-01T10:00:00-05:00",
    "end": "2026-12-01T10:30:00-05:00",
    "calendarId": "host-0@example.com",
    "expanded": False,
}


def _count() -> None:
    """One byte per delivery in this function's count file."""
    pid = os.getpid()
    fd = _fd.get(pid)
    if fd is None:
        with _lock:
            fd = _fd.get(pid)
            if fd is None:
                path = os.path.join(
                    os.environ["BENCH_COUNT_DIR"], f"{os.environ.get('K_SERVICE', 'fn')}.count"
                )
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                _fd[pid] = fd
    os.write(fd, b"x")


def _publisher() -> PubSubBus:
    """The same adapter (and batch settings) the pipeline publishes with, one per process."""
    pid = os.getpid()
    bus = _bus.get(pid)
    if bus is None:
        with _lock:
            bus = _bus.setdefault(pid, PubSubBus(os.environ["GOOGLE_CLOUD_PROJECT"]))
    return bus


def _message(event: CloudEvent) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes, decoded data) of a push delivery."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    message = data.get("message") or {}
    body = json.loads(base64.b64decode(message.get("data") or "") or b"{}")
    return dict(message.get("attributes") or {}), body


def schedule(request: flask.Request) -> flask.Response:
    """Accept the POST and publish what the real schedule publishes for fresh leads: one
    calendar and one drive message per lead."""
    body = json.loads(request.get_data() or b"{}")
    run_id = str(body.get("runId") or "run")
    leads = body.get("leads") or []
    messages = []
    for lead in leads:
        lead_id = str(lead.get("leadDocId"))
        messages += [Outgoing(run_id, lead_id, action) for action in ("calendar", "drive")]
    _publisher().publish(messages)
    accepted = [{"leadDocId": str(lead.get("leadDocId"))} for lead in leads]
    answer = {"runId": run_id, "accepted": accepted, "rejected": []}
    return flask.Response(json.dumps(answer), status=202, mimetype="application/json")


def book(event: CloudEvent) -> None:
    """Acknowledge, and publish the one notify message the real booking publishes."""
    ids, _ = _message(event)
    run_id, lead_id = str(ids.get("runId")), str(ids.get("leadDocId"))
    message = Outgoing(run_id, lead_id, "email", _BOOKING)
    _publisher().publish([message])
    _count()


def notify(event: CloudEvent) -> None:
    """Acknowledge."""
    _count()


def drive(event: CloudEvent) -> None:
    """Acknowledge."""
    _count()


def dead_letter(event: CloudEvent) -> None:
    """Acknowledge."""
    _count()


def diagnostics(request: flask.Request) -> flask.Response:
    """Answer (nothing polls it in the ceiling run)."""
    return flask.Response("{}", status=200, mimetype="application/json")


def control(request: flask.Request) -> flask.Response:
    """Answer (nothing steers the ceiling run)."""
    return flask.Response("{}", status=200, mimetype="application/json")


def sweep(event: CloudEvent) -> None:
    """Acknowledge the scheduler's tick; not a lead delivery, so not counted."""
