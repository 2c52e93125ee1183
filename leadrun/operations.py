"""Operator tools on Pub/Sub: seek a subscription, redrive dead letters.

Steering a run (pause, resume, cancel, replay) is not here: it goes through `CONTROL_URL` like
any client (leadrun.cli), so the function's owner check and its brake apply to operators too.

Both tools lean on the pipeline's guarantees rather than adding their own: every effect is
idempotent (deterministic event ids, Message-IDs, folder tags) and a subscriber that finds a
terminal receipt does nothing, so re-publishing is always safe. What an operator action must
get right is the receipts: a `failed` receipt is reopened to `pending` through
`Store.reopen`, which moves the diagnostics counters by the difference in the same
atomic commit, so counts keep equalling receipts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common import flow
from common.bus import Outgoing, PubSubBus
from common.receipts import Receipt, Status
from common.runs import ReceiptMissing, lead_actions
from common.store import Store
from common.topology import ACTION_TOPICS


def reopen_receipt(store: Store, run_id: str, lead_doc_id: str, action: str) -> bool:
    """Move a receipt back to `pending`, its counters with it; False if there is none."""
    try:
        return store.reopen(run_id, lead_doc_id, action)
    except ReceiptMissing:
        return False


def _reopen_all(
    store: Store,
    run_id: str,
    lead_id: str,
    actions: list[str],
    receipts: Mapping[str, Receipt],
    also: str | None = None,
) -> tuple[dict[str, Receipt], list[str]]:
    """Reopen what `flow.reopenable` allows (and `also`); the receipts now, and what reopened."""
    current = dict(receipts)
    reopened = []
    for action in actions:
        wanted = action == also or flow.reopenable(action, receipts, resubmitted=False)
        if wanted and reopen_receipt(store, run_id, lead_id, action):
            current[action] = receipts[action].reopen()
            reopened.append(action)
    return current, reopened


def messages_for(
    run_id: str, lead_doc_id: str, actions: Iterable[str], receipts: Mapping[str, Receipt]
) -> list[Outgoing]:
    """What to publish so every open receipt of a lead gets worked on (book publishes the email)."""
    return [
        Outgoing(run_id, lead_doc_id, action)
        for action in flow.publishable(actions, receipts)
        if action in ACTION_TOPICS
    ]


# -- dead letters -----------------------------------------------------------------------------
@dataclass
class RedriveResult:
    """What a redrive did with the dead letters it pulled."""

    redriven: list[tuple[str, str, str]] = field(default_factory=list)  # (runId, lead, action)
    settled: int = 0  # dead letters whose receipt had meanwhile ended well: acknowledged only
    skipped: int = 0  # not this run's, or still being marked: left for later
    dropped: int = 0  # not a lead action message (no receipt): acknowledged and dropped


def _dead_letter_ids(message: Any) -> tuple[str, str, str] | None:
    attributes = dict(message.attributes)
    ids = (attributes.get("runId"), attributes.get("leadDocId"), attributes.get("action"))
    if not all(ids):
        try:
            data = json.loads(message.data or b"{}")
        except ValueError:
            return None
        ids = (data.get("runId"), data.get("leadDocId"), data.get("action"))
    if not all(isinstance(part, str) and part for part in ids):
        return None
    return str(ids[0]), str(ids[1]), str(ids[2])


def _redrive_one(
    store: Store,
    bus: PubSubBus,
    message: Any,
    run_id: str | None,
    result: RedriveResult,
) -> str:
    """Handle one dead letter: "ack" (done with it) or "hold" (leave it queued)."""
    ids = _dead_letter_ids(message)
    if ids is None or ids[2] not in ACTION_TOPICS:
        result.dropped += 1
        return "ack"
    run, lead_id, action = ids
    if run_id is not None and run != run_id:
        result.skipped += 1
        return "hold"
    lead = store.get_lead(run, lead_id)
    receipt = store.get_receipt(run, lead_id, action)
    if lead is None or receipt is None:
        result.dropped += 1
        return "ack"
    if not receipt.terminal:
        result.skipped += 1  # the dead-letter function has not marked it yet
        return "hold"
    if receipt.status is not Status.FAILED:
        result.settled += 1
        return "ack"
    actions = lead_actions(lead) or [action]
    receipts = {a: r for a in actions if (r := store.get_receipt(run, lead_id, a)) is not None}
    current, _ = _reopen_all(store, run, lead_id, actions, receipts, also=action)
    bus.publish(messages_for(run, lead_id, actions, current))  # raises: not acknowledged
    result.redriven.append((run, lead_id, action))
    return "ack"


def redrive_dead_letters(
    store: Store,
    bus: PubSubBus,
    subscriber: Any,
    subscription_path: str,
    *,
    run_id: str | None = None,
    max_messages: int = 1000,
    batch: int = 100,
) -> RedriveResult:
    """Pull dead letters, reopen their receipts and re-publish them to their action's topic.

    A message is acknowledged only after its republish was accepted. A dead letter whose
    receipt is still open (the dead-letter function has not marked it yet) is released for a
    later redrive rather than raced.
    """
    result = RedriveResult()
    seen = 0
    # Messages left alone are released only at the end: held until then, they do not come back
    # in the next pull, so the loop reaches every other message.
    held: list[str] = []
    try:
        while seen < max_messages:
            answer = subscriber.pull(
                request={
                    "subscription": subscription_path,
                    "max_messages": min(batch, max_messages - seen),
                },
                timeout=10,
            )
            received = list(answer.received_messages)
            if not received:
                break
            seen += len(received)
            ack: list[str] = []
            for item in received:
                verdict = _redrive_one(store, bus, item.message, run_id, result)
                (held if verdict == "hold" else ack).append(item.ack_id)
            if ack:
                subscriber.acknowledge(request={"subscription": subscription_path, "ack_ids": ack})
    finally:
        if held:
            subscriber.modify_ack_deadline(
                request={
                    "subscription": subscription_path,
                    "ack_ids": held,
                    "ack_deadline_seconds": 0,
                }
            )
    return result


# -- seek -------------------------------------------------------------------------------------
def parse_seek_target(value: str) -> datetime | str:
    """An RFC 3339 time (with an offset) to seek to, else the name of a snapshot."""
    text = value.strip()
    if "T" in text.upper() and any(ch.isdigit() for ch in text[:4]):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                raise ValueError(f"{value!r} has no UTC offset (add Z or +hh:mm)")
            return moment
    return text


def seek_subscription(subscriber: Any, subscription_path: str, target: datetime | str) -> None:
    """Seek a subscription to a time or a snapshot (acknowledged messages are retained)."""
    request: dict[str, Any] = {"subscription": subscription_path}
    if isinstance(target, datetime):
        request["time"] = target
    else:
        project = subscription_path.split("/")[1]
        request["snapshot"] = (
            target if target.startswith("projects/") else f"projects/{project}/snapshots/{target}"
        )
    subscriber.seek(request=request)


def subscription_path(project: str, name: str) -> str:
    """`projects/P/subscriptions/NAME` (a full path is kept as it is)."""
    return name if name.startswith("projects/") else f"projects/{project}/subscriptions/{name}"
