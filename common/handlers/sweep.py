"""Re-publish actions whose message was lost: the safety net under "no lead without a receipt".

Pub/Sub redelivers what it was given, but a message can still be lost before it gets there (a
publish that never happened after a crash, an emulator that drops a push). Every few minutes the
sweeper looks for receipts still `pending` long after their last change, with no live lease, and
publishes their action again. Doing so is always safe: a terminal receipt acknowledges a duplicate,
and every effect is idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common import flow
from common.bus import Outgoing
from common.log import log
from common.ports import Bus
from common.store import Store, lead_actions


def sweep_stale(store: Store, bus: Bus, stale_after: timedelta, limit: int = 500) -> int:
    """Publish again every stale pending action (at most `limit` a sweep); returns how many."""
    now = datetime.now(UTC)
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
        outcome="republished" if messages else "nothing stale",
        republished=len(messages),
        stale=len(stale),
    )
    return len(messages)
