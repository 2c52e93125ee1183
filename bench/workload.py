"""Schedule requests for the benchmark: every lead has its own free candidate slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadrun.leads import example_request

REQUEST_SIZE = 500


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def first_slot(days_ahead: int = 2) -> datetime:
    """A weekday at least `days_ahead` days from now, 14:00 UTC."""
    day = datetime.now(UTC) + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=14, minute=0, second=0, microsecond=0)


def lead(index: int, start: datetime) -> dict[str, Any]:
    """Lead `index` with one 30-minute candidate at `start`."""
    lead_id = f"lead-{index:05d}"
    return {
        "leadDocId": lead_id,
        "email": f"{lead_id}@acme.test",
        "name": f"Lead {index}",
        "company": "Acme",
        "timeZone": "Europe/Lisbon",
        "candidateSlots": [{"start": _iso(start), "end": _iso(start + timedelta(minutes=30))}],
        "emailSubject": "Our call",
        "emailBody": "Hi, see you {meetingTime}. Join: {meetLink}",
    }


def request(run_id: str, host: str, leads: list[dict[str, Any]]) -> dict[str, Any]:
    """A live schedule request (docs/api.md, "Schedule") with all three actions."""
    return example_request(run_id, host, leads)


def run_requests(
    run_id: str, count: int, size: int = REQUEST_SIZE, host_prefix: str = "host"
) -> list[dict[str, Any]]:
    """`count` leads of one run in requests of `size`, one host calendar per request.

    Leads of a request get consecutive 30-minute slots on their host's calendar, so none
    overlaps another and every booking is a first, fault-free attempt.
    """
    start = first_slot()
    bodies = []
    for first in range(0, count, size):
        host = f"{host_prefix}-{first // size}@example.com"
        leads = [
            lead(i, start + timedelta(minutes=30 * (i - first)))
            for i in range(first, min(count, first + size))
        ]
        bodies.append(request(run_id, host, leads))
    return bodies
