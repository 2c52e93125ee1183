"""What each receipt counts for in diagnostics (pure).

Counters move in the same atomic Firestore commit as the receipt transition they count, by the
difference between what the old and the new receipt count for; so a recount of receipts always
equals the counters, whatever was redelivered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from common.receipts import Receipt, Status

# receipt outcome -> diagnostics count name (docs/api.md, "Diagnostics")
OUTCOME_COUNTS: dict[str, str] = {
    "booked": "booked",
    "no_slot": "noSlot",
    "sent": "sent",
    "drafted": "drafted",
    "created": "foldersCreated",
}
# receipt status -> diagnostics count name
STATUS_COUNTS: dict[str, str] = {
    Status.PENDING: "pending",
    Status.SIMULATED: "simulated",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
    Status.REVERTED: "reverted",
}
WAITING = "waiting"  # the count of pending receipts held back by Google's limits
PAUSED = "paused"  # the count of pending receipts their owner paused

COUNT_NAMES: tuple[str, ...] = (
    "sourced",
    "filtered",
    "accepted",
    "rejected",
    "booked",
    "noSlot",
    "sent",
    "drafted",
    "foldersCreated",
    "simulated",
    "pending",
    WAITING,
    PAUSED,
    "failed",
    "cancelled",
    "reverted",
)


def counted_keys(receipt: Receipt | None) -> Counter[str]:
    """The counter fields (`counts.x`) one receipt contributes to: its status and outcome."""
    keys: Counter[str] = Counter()
    if receipt is None:
        return keys
    if receipt.status in STATUS_COUNTS:
        keys[f"counts.{STATUS_COUNTS[receipt.status]}"] += 1
    if receipt.outcome in OUTCOME_COUNTS:
        keys[f"counts.{OUTCOME_COUNTS[receipt.outcome]}"] += 1
    if receipt.status is Status.PENDING and receipt.paused:
        keys[f"counts.{PAUSED}"] += 1
    elif receipt.status is Status.PENDING and receipt.waiting is not None:
        keys[f"counts.{WAITING}"] += 1
    return keys


def tally(receipts: Iterable[Receipt | None]) -> dict[str, int]:
    """How many of a lead's receipts give each reason (kept on the lead as `reasonTally`)."""
    found: Counter[str] = Counter()
    for receipt in receipts:
        if receipt is not None and receipt.reason:
            found[receipt.reason] += 1
    return dict(sorted(found.items()))


def retally(
    lead_tally: Mapping[str, int], old: Receipt | None, new: Receipt | None
) -> dict[str, int]:
    """A lead's reason tally after one of its receipts changes from `old` to `new`."""
    out = Counter({k: int(v) for k, v in lead_tally.items()})
    out.subtract(tally([old]))
    out.update(tally([new]))
    return {k: v for k, v in sorted(out.items()) if v > 0}


def lead_keys(lead: Mapping[str, Any] | None) -> Counter[str]:
    """The counter fields one lead document contributes to: `accepted` or `rejected`, and each
    distinct reason among its receipts once (docs/api.md, "Diagnostics": `reasons` counts leads)."""
    keys: Counter[str] = Counter()
    if lead and lead.get("status") in ("accepted", "rejected"):
        keys[f"counts.{lead['status']}"] += 1
    for reason, count in ((lead or {}).get("reasonTally") or {}).items():
        if count > 0:
            keys[f"reasons.{reason}"] += 1
    return keys


def delta(old: Counter[str], new: Counter[str]) -> Counter[str]:
    """What to add to each counter field when `old` becomes `new` (zeros left out)."""
    out: Counter[str] = Counter()
    for key in set(old) | set(new):
        change = new.get(key, 0) - old.get(key, 0)
        if change:
            out[key] = change
    return out


def recount(
    rows: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]],
) -> dict[str, Any]:
    """Diagnostics recomputed from each lead and its receipts: what the counters must equal.

    Reasons are counted from the receipts themselves, not from the lead's tally, so a recount
    checks the tally too.
    """
    total: Counter[str] = Counter()
    for lead, receipts in rows:
        listed = [Receipt.from_doc(doc) for doc in receipts]
        for receipt in listed:
            total.update(counted_keys(receipt))
        total.update(lead_keys({"status": lead.get("status"), "reasonTally": tally(listed)}))
    return fold(total)


def fold(flat: Mapping[str, int]) -> dict[str, Any]:
    """`{"counts.booked": 2, "reasons.no_slot": 1}` -> `{"counts": {...}, "reasons": {...}}`."""
    counts = {name: 0 for name in COUNT_NAMES if name not in ("sourced", "filtered")}
    reasons: dict[str, int] = {}
    for key, value in flat.items():
        group, _, name = key.partition(".")
        if group == "counts":
            counts[name] = counts.get(name, 0) + int(value)
        elif group == "reasons" and value:
            reasons[name] = reasons.get(name, 0) + int(value)
    return {"counts": counts, "reasons": {k: v for k, v in sorted(reasons.items()) if v}}
