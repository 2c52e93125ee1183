"""Builders for schedule requests and readers of sandbox state, shared by the test tiers."""

from __future__ import annotations

import base64
import email
import uuid
from datetime import UTC, datetime, timedelta
from email.policy import default
from typing import Any

from leadrun.leads import example_request


def next_weekday(days_ahead: int = 2, hour: int = 15, minute: int = 0) -> datetime:
    """A weekday at least `days_ahead` days from now, at hour:minute UTC."""
    day = datetime.now(UTC) + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


def iso(value: datetime) -> str:
    """RFC 3339 with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def slot(start: datetime, minutes: int = 30) -> dict[str, str]:
    """One candidate slot."""
    return {"start": iso(start), "end": iso(start + timedelta(minutes=minutes))}


def unique(prefix: str) -> str:
    """An id nobody else in this test session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def lead(lead_id: str, slots: list[dict[str, str]], **fields: Any) -> dict[str, Any]:
    """A lead with sensible defaults."""
    body: dict[str, Any] = {
        "leadDocId": lead_id,
        "email": f"{lead_id}@acme.test",
        "name": f"Lead {lead_id}",
        "company": "Acme",
        "timeZone": "Europe/Lisbon",
        "candidateSlots": slots,
        "emailSubject": "Our call",
        "emailBody": "Hi, see you {meetingTime}. Join: {meetLink}",
    }
    body.update(fields)
    return body


def request(
    run_id: str, leads: list[dict[str, Any]], host: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A schedule request for `leads` with a host calendar nobody else books."""
    host = host or f"{unique('host')}@example.com"
    body = example_request(run_id, host, leads)
    body.update(fields)
    return body


def free_leads(count: int, prefix: str = "lead", days_ahead: int = 2) -> list[dict[str, Any]]:
    """`count` leads, each with its own free candidate slot."""
    base = next_weekday(days_ahead)
    return [
        lead(f"{prefix}-{i:03d}", [slot(base + timedelta(minutes=30 * i))]) for i in range(count)
    ]


def decode_raw(raw: str) -> email.message.EmailMessage:
    """A sandbox message's `raw` as a parsed message."""
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    return email.message_from_bytes(data, policy=default)  # type: ignore[return-value]


def of_run(state: dict[str, Any], run_id: str, host: str) -> dict[str, list[dict[str, Any]]]:
    """The sandbox resources that belong to one host (tests give each run its own host)."""
    events = [e for e in state["events"] if e.get("calendarId") == host]
    messages = [
        m for m in state["messages"] if decode_raw(m["raw"])["From"].addresses[0].addr_spec == host
    ]
    drafts = [
        d
        for d in state["drafts"]
        if decode_raw(d["message"]["raw"])["From"].addresses[0].addr_spec == host
    ]
    return {"events": events, "messages": messages, "drafts": drafts}


# Every Google method that writes: a dry run or a replay of a settled run calls none of them.
WRITE_METHODS = (
    "calendar.events.insert",
    "gmail.users.messages.send",
    "gmail.users.drafts.create",
    "gmail.users.drafts.send",
    "drive.files.create",
)


def receipts_by_key(client: Any, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """A run's receipts keyed by (leadDocId, action)."""
    rows = client.receipts(run_id)
    return {(lead_id, action): r for lead_id, _, rs in rows for action, r in rs.items()}


def counts_equal_recount(client: Any, run_id: str) -> dict[str, Any]:
    """Guarantee 5 on a settled run: diagnostics equal a recount of its receipts (returned)."""
    funnel: dict[str, Any] = client.diagnostics(run_id).json()
    recount = client.recount(run_id)
    assert funnel["counts"] == {**recount["counts"], "sourced": 0, "filtered": 0}
    assert funnel["reasons"] == recount["reasons"]
    return funnel


def figures(client: Any, run_id: str, waited_s: float) -> None:
    """What the run cost, printed for the record (`pytest -s`): leads, deliveries per lead
    (receipts' attempts), calls Google refused so far in this sandbox."""
    receipts = receipts_by_key(client, run_id)
    leads = len({lead for lead, _ in receipts})
    attempts = sum(int(r.get("attempts") or 0) for r in receipts.values())
    throttled = client.sandbox.state()["throttled"]
    print(
        f"\n{run_id}: {leads} leads, settled {waited_s:.1f} s after the wait began, "
        f"{attempts / max(len(receipts), 1):.2f} deliveries per receipt, refused calls {throttled}"
    )
    # When each action's receipts settled, from the run's first receipt: where the time went.
    times = [(key[1], r["createdAt"], r["updatedAt"]) for key, r in receipts.items()]
    start = min(created for _, created, _ in times)
    for action in sorted({a for a, _, _ in times}):
        ends = sorted((u - start).total_seconds() for a, _, u in times if a == action)
        tries = [int(r.get("attempts") or 0) for k, r in receipts.items() if k[1] == action]
        print(
            f"  {action}: half settled by {ends[len(ends) // 2]:.1f} s, all by {ends[-1]:.1f} s; "
            f"deliveries per receipt {sum(tries) / len(tries):.2f}, at most {max(tries)}"
        )


def receipt_doc(store: Any, run_id: str, lead_doc_id: str, action: str) -> dict[str, Any] | None:
    """A receipt as stored in Firestore: the fields a user reads (docs/api.md, "Receipts")."""
    from common import paths

    path = paths.receipt(run_id, lead_doc_id, action)
    found = store.docs.read([path])[path]
    return None if found is None else dict(found.data)
