"""Operator actions on a live system: replay a run, seek a subscription, redrive dead letters.

All three lean on the pipeline's guarantees rather than adding their own: every effect is
idempotent (deterministic event ids, Message-IDs, folder tags) and a subscriber that finds a
terminal receipt does nothing, so re-publishing is always safe. What an operator action must
get right is the receipts: a `failed` receipt is reopened to `pending` through
`FirestoreStore.finish`, which moves the diagnostics counters by the difference in the same
transaction, so counts keep equalling receipts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.bus import Outgoing, PubSubBus
from common.receipts import is_terminal
from common.store import FirestoreStore, ReceiptMissing, lead_actions
from common.topology import ACTION_TOPICS

REOPEN_FIELDS: dict[str, Any] = {
    "status": "pending",
    "outcome": None,
    "reason": None,
    "error": None,
}
# An email settled only because its booking failed may go again once the booking is retried.
EMAIL_FOLLOWS_CALENDAR_REASONS = frozenset({"calendar_failed"})


def reopen_receipt(store: FirestoreStore, run_id: str, lead_doc_id: str, action: str) -> bool:
    """Move a receipt back to `pending`, its counters with it; False if there is none."""
    try:
        return store.finish(run_id, lead_doc_id, action, dict(REOPEN_FIELDS), only_if_open=False)
    except ReceiptMissing:
        return False


def _reopenable(action: str, receipts: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether this receipt should be tried again by a replay or a redrive."""
    receipt = receipts.get(action)
    if receipt is None:
        return False
    if receipt.get("status") == "failed":
        return True
    # The email was closed because the booking failed: when the booking is retried, so is it.
    calendar = receipts.get("calendar") or {}
    return (
        action == "email"
        and calendar.get("status") == "failed"
        and receipt.get("status") == "rejected"
        and receipt.get("reason") in EMAIL_FOLLOWS_CALENDAR_REASONS
    )


def messages_for(
    run_id: str, lead_doc_id: str, actions: Iterable[str], receipts: Mapping[str, Any]
) -> list[Outgoing]:
    """What to publish so every open receipt of a lead gets worked on (book publishes the email)."""
    actions = list(actions)
    out: list[Outgoing] = []
    for action in actions:
        if is_terminal(receipts.get(action)) or action not in ACTION_TOPICS:
            continue
        if (
            action == "email"
            and "calendar" in actions
            and not is_terminal(receipts.get("calendar"))
        ):
            continue  # the calendar message is published instead; book sends the email on
        out.append(Outgoing(run_id, lead_doc_id, action))
    return out


@dataclass
class ReplayResult:
    """What a replay did."""

    reopened: list[tuple[str, str]] = field(default_factory=list)  # (leadDocId, action)
    published: list[tuple[str, str]] = field(default_factory=list)


def replay_run(store: FirestoreStore, bus: PubSubBus, run_id: str) -> ReplayResult:
    """Reopen every failed receipt of a run and re-publish every action that is not terminal."""
    result = ReplayResult()
    messages: list[Outgoing] = []
    for lead_id, lead, receipts in store.run_receipts(run_id):
        if lead.get("status") != "accepted":
            continue  # a rejected lead has nothing to do; resubmit it with a fix instead
        actions = lead_actions(lead) or list(receipts)
        current = dict(receipts)
        for action in actions:
            if _reopenable(action, receipts) and reopen_receipt(store, run_id, lead_id, action):
                result.reopened.append((lead_id, action))
                current[action] = {**receipts[action], **REOPEN_FIELDS}
        messages.extend(messages_for(run_id, lead_id, actions, current))
    if messages:
        bus.publish(messages)
    result.published = [(m.lead_doc_id, m.action) for m in messages]
    return result


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
    store: FirestoreStore,
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
    if not is_terminal(receipt):
        result.skipped += 1  # the dead-letter function has not marked it yet
        return "hold"
    if receipt.get("status") != "failed":
        result.settled += 1
        return "ack"
    actions = lead_actions(lead) or [action]
    receipts = {a: r for a in actions if (r := store.get_receipt(run, lead_id, a)) is not None}
    current = dict(receipts)
    for name in actions:
        if (name == action or _reopenable(name, receipts)) and reopen_receipt(
            store, run, lead_id, name
        ):
            current[name] = {**receipts[name], **REOPEN_FIELDS}
    bus.publish(messages_for(run, lead_id, actions, current))  # raises: not acknowledged
    result.redriven.append((run, lead_id, action))
    return "ack"


def redrive_dead_letters(
    store: FirestoreStore,
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
