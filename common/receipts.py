"""Receipt values and what each one counts for in diagnostics (pure).

Counters move in the same atomic Firestore commit as the receipt transition they count, by the
difference between what the old and the new receipt count for; so a recount of receipts always
equals the counters, whatever was redelivered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from common.models import TERMINAL

# receipt outcome -> diagnostics count name (CONTRACT §6)
OUTCOME_COUNTS: dict[str, str] = {
    "booked": "booked",
    "no_slot": "noSlot",
    "sent": "sent",
    "drafted": "drafted",
    "created": "foldersCreated",
}
# receipt status -> diagnostics count name
STATUS_COUNTS: dict[str, str] = {"pending": "pending", "simulated": "simulated", "failed": "failed"}

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
    "failed",
)


def counted_keys(receipt: Mapping[str, Any] | None) -> Counter[str]:
    """The counter fields (`counts.x`, `reasons.y`) one receipt contributes to."""
    keys: Counter[str] = Counter()
    if not receipt:
        return keys
    status = receipt.get("status")
    if status in STATUS_COUNTS:
        keys[f"counts.{STATUS_COUNTS[status]}"] += 1
    outcome = receipt.get("outcome")
    if outcome in OUTCOME_COUNTS:
        keys[f"counts.{OUTCOME_COUNTS[outcome]}"] += 1
    reason = receipt.get("reason")
    if reason:
        keys[f"reasons.{reason}"] += 1
    return keys


def lead_keys(lead: Mapping[str, Any] | None) -> Counter[str]:
    """The counter fields one lead document contributes to (`accepted` or `rejected`)."""
    keys: Counter[str] = Counter()
    if lead and lead.get("status") in ("accepted", "rejected"):
        keys[f"counts.{lead['status']}"] += 1
    return keys


def delta(old: Counter[str], new: Counter[str]) -> dict[str, int]:
    """What to add to each counter field when `old` becomes `new` (zeros left out)."""
    out: dict[str, int] = {}
    for key in set(old) | set(new):
        change = new.get(key, 0) - old.get(key, 0)
        if change:
            out[key] = change
    return out


def recount(receipts: list[Mapping[str, Any]], leads: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Diagnostics recomputed from receipts and leads: what the counters must equal."""
    total: Counter[str] = Counter()
    for receipt in receipts:
        total.update(counted_keys(receipt))
    for lead in leads:
        total.update(lead_keys(lead))
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


def is_terminal(receipt: Mapping[str, Any] | None) -> bool:
    """Whether a receipt has reached a final status."""
    return receipt is not None and receipt.get("status") in TERMINAL


def new_receipt(
    action: str,
    *,
    dry_run: bool,
    status: str = "pending",
    reason: str | None = None,
) -> dict[str, Any]:
    """A receipt as first written by schedule (pending, or rejected with its reason)."""
    return {
        "action": action,
        "status": status,
        "outcome": None,
        "reason": reason,
        "dryRun": dry_run,
        "attempts": 0,
        "external": None,
        "error": None,
    }
