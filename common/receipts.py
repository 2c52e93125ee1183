"""Receipt values and what each one counts for in diagnostics (pure).

Counters move in the same atomic Firestore commit as the receipt transition they count, by the
difference between what the old and the new receipt count for; so a recount of receipts always
equals the counters, whatever was redelivered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
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
    "waiting",
    "failed",
)


def counted_keys(receipt: Mapping[str, Any] | None) -> Counter[str]:
    """The counter fields (`counts.x`) one receipt contributes to: its status and outcome."""
    keys: Counter[str] = Counter()
    if not receipt:
        return keys
    status = receipt.get("status")
    if status in STATUS_COUNTS:
        keys[f"counts.{STATUS_COUNTS[status]}"] += 1
    outcome = receipt.get("outcome")
    if outcome in OUTCOME_COUNTS:
        keys[f"counts.{OUTCOME_COUNTS[outcome]}"] += 1
    if status == "pending" and receipt.get("waiting"):
        keys["counts.waiting"] += 1
    return keys


def tally(receipts: Iterable[Mapping[str, Any] | None]) -> dict[str, int]:
    """How many of a lead's receipts give each reason (kept on the lead as `reasonTally`)."""
    found: Counter[str] = Counter()
    for receipt in receipts:
        if receipt and receipt.get("reason"):
            found[str(receipt["reason"])] += 1
    return dict(sorted(found.items()))


def retally(
    lead_tally: Mapping[str, int], old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> dict[str, int]:
    """A lead's reason tally after one of its receipts changes from `old` to `new`."""
    out = Counter({k: int(v) for k, v in lead_tally.items()})
    out.subtract(tally([old]))
    out.update(tally([new]))
    return {k: v for k, v in sorted(out.items()) if v > 0}


def lead_keys(lead: Mapping[str, Any] | None) -> Counter[str]:
    """The counter fields one lead document contributes to: `accepted` or `rejected`, and each
    distinct reason among its receipts once (CONTRACT §6 v1.1: `reasons` counts leads)."""
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
        listed = list(receipts)
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
        "waiting": None,
    }


def terminal(
    status: str,
    outcome: str | None,
    *,
    reason: str | None = None,
    external: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of a terminal receipt."""
    return {
        "status": status,
        "outcome": outcome,
        "reason": reason,
        "external": external,
        "error": error,
        "waiting": None,
    }


def failed(reason: str, code: str, message: str) -> dict[str, Any]:
    """A `failed` receipt with its reason and error."""
    return terminal("failed", None, reason=reason, error={"code": code, "message": message})


# Lead-level filters of `GET {DIAGNOSTICS_URL}/leads` (CONTRACT §6 v1.2): the facets a receipt
# gives its lead. Kept on the lead as map keys, so a page query filters on them by equality and
# any number of filters combine in one query.
PAUSED = "paused"


def receipt_facets(receipt: Mapping[str, Any] | None) -> list[str]:
    """The facets one receipt gives its lead: `status_<status>`, `reason_<reason>`, and
    `waiting` (held back by a limit) or `paused` while pending."""
    if not receipt:
        return []
    found = [f"status_{receipt.get('status')}"]
    if receipt.get("reason"):
        found.append(f"reason_{receipt['reason']}")
    waiting = receipt.get("waiting")
    if receipt.get("status") == "pending" and isinstance(waiting, Mapping):
        found.append(PAUSED if waiting.get("reason") == PAUSED else "waiting")
    return sorted(found)


def lead_facets(by_action: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """A lead's facet fields from each action's facets: `receiptFacets` (per action, so one
    receipt's change needs no read of its siblings) and `facets` (their union, queried)."""
    kept = {action: sorted(set(found)) for action, found in sorted(by_action.items())}
    union = sorted({facet for found in kept.values() for facet in found})
    return {"receiptFacets": kept, "facets": dict.fromkeys(union, True)}


def facets_of(receipts: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """The facet fields of a lead whose receipts are `receipts` (by action)."""
    return lead_facets({action: receipt_facets(r) for action, r in receipts.items()})


def _plain(value: Any) -> Any:
    """Firestore values as JSON: timestamps become RFC 3339 strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


PUBLIC_FIELDS: tuple[str, ...] = (
    "action",
    "status",
    "outcome",
    "reason",
    "dryRun",
    "attempts",
    "external",
    "error",
    "waiting",
    "revert",
)


def public_receipt(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """A receipt's CONTRACT §4 fields (no lease, checkpoint or pacing internals), JSON-ready."""
    out = {key: _plain(receipt.get(key)) for key in PUBLIC_FIELDS}
    for key in ("createdAt", "updatedAt"):
        if receipt.get(key) is not None:
            out[key] = _plain(receipt[key])
    return out
