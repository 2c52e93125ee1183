"""Re-publish actions whose message was lost: the safety net under "no lead without a receipt".

Pub/Sub redelivers what it was given, but a message can still be lost before it gets there (a
publish that never happened after a crash, an emulator that drops a push). Every tick the sweeper
looks for receipts still `pending` long after their last change, with no live lease, and publishes
their action again. Doing so is always safe: a terminal receipt acknowledges a duplicate, and every
effect is idempotent.

It also brings back receipts parked by one of Google's limits once their `waiting.until` is past:
a parked delivery acknowledged its message (a nack would spend a Pub/Sub delivery attempt), so
the tick is what resumes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common import flow
from common.bus import Outgoing
from common.log import log
from common.ports import Bus
from common.store import Store, lead_actions


def resume_due(store: Store, bus: Bus, now: datetime, limit: int = 500) -> int:
    """Publish every waiting action whose wait is over; returns how many."""
    messages = [
        Outgoing(run_id, lead_doc_id, action)
        for run_id, lead_doc_id, action in store.due_receipts(now, limit)
        if store.resume(run_id, lead_doc_id, action, now)
    ]
    if messages:
        bus.publish(messages)
    return len(messages)


def sweep_stale(store: Store, bus: Bus, stale_after: timedelta, limit: int = 500) -> int:
    """Resume what waited for Google's limits, then publish again every stale pending action
    (at most `limit` of each a sweep); returns how many were published."""
    now = datetime.now(UTC)
    resumed = resume_due(store, bus, now, limit)
    stale = store.stale_receipts(now - stale_after, now, limit)
    messages = []
    for run_id, lead_doc_id, action in stale:
        if action == "email":
            lead = store.get_lead(run_id, lead_doc_id) or {}
            calendar = store.get_receipt(run_id, lead_doc_id, "calendar")
            if flow.waits_for_calendar(action, lead_actions(lead), {"calendar": calendar}):
                continue  # book publishes the email once the booking settles
        messages.append(Outgoing(run_id, lead_doc_id, action))
    if messages:
        bus.publish(messages)
        for message in messages:
            store.touch_receipt(message.run_id, message.lead_doc_id, message.action)
    log(
        "sweep",
        outcome="republished" if messages or resumed else "nothing stale",
        republished=len(messages),
        stale=len(stale),
        resumed=resumed,
    )
    return len(messages) + resumed
