"""What `GET {DIAGNOSTICS_URL}/leads` filters and pages on (docs/api.md, "Diagnostics").

A page is one query on the run's leads, ordered by document id, after the last id of the
previous page, with a limit: its cost does not grow with the run. A filter is an equality on the
lead's `facets` map, which the store keeps in the same guarded commit as every receipt change
(`facets_follow`) and schedule writes with each new lead: equalities on several map entries
combine in one query (Firestore allows only one `array-contains` a query), served by merging
the automatic single-field indexes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common.counts import WAITING
from common.receipts import PAUSED, Receipt, Status

FACETS = "facets"
REVERTING = "reverting"
_CURSOR_MARK = "l1."
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def receipt_facets(receipt: Receipt | None) -> list[str]:
    """The facets one receipt gives its lead: `status_<status>`, `reason_<reason>`, and
    `waiting` (held back by a limit) or `paused` while pending, `reverting` while a revert is
    queued (`paused` too, while a pause holds it)."""
    if receipt is None:
        return []
    found = [f"status_{receipt.status.value}"]
    if receipt.reason:
        found.append(f"reason_{receipt.reason}")
    if receipt.to_revert:
        found.append(REVERTING)
    if receipt.held:
        found.append(PAUSED)
    elif receipt.status is Status.PENDING and receipt.waiting is not None:
        found.append("waiting")
    return sorted(found)


def lead_facets(by_action: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """A lead's facet fields from each action's facets: `receiptFacets` (per action, so one
    receipt's change needs no read of its siblings) and `facets` (their union, queried)."""
    kept = {action: sorted(set(found)) for action, found in sorted(by_action.items())}
    union = sorted({facet for found in kept.values() for facet in found})
    return {"receiptFacets": kept, "facets": dict.fromkeys(union, True)}


def facets_of(receipts: Mapping[str, Receipt | None]) -> dict[str, Any]:
    """The facet fields of a lead whose receipts are `receipts` (by action)."""
    return lead_facets({action: receipt_facets(r) for action, r in receipts.items()})


def facets_follow(lead: Mapping[str, Any], action: str, new: Receipt) -> dict[str, Any]:
    """The lead's facet fields once `action`'s receipt is `new`; {} when they stay as they are,
    so a transition that moves no facet does not write the lead."""
    kept = dict(lead.get("receiptFacets") or {})
    found = receipt_facets(new)
    if kept.get(action) == found and FACETS in lead:
        return {}
    return lead_facets({**kept, action: found})


@dataclass(frozen=True)
class LeadFilter:
    """The filters of one `/leads` request; a lead matches when it has every facet named."""

    status: str | None = None
    reason: str | None = None
    waiting: bool = False
    paused: bool = False

    def facets(self) -> list[str]:
        """The facets a matching lead carries."""
        found = []
        if self.status is not None:
            found.append(f"status_{self.status}")
        if self.reason is not None:
            found.append(f"reason_{self.reason}")
        if self.waiting:
            found.append(WAITING)
        if self.paused:
            found.append("paused")
        return found

    def equalities(self) -> dict[tuple[str, ...], Any]:
        """The query's equality filters: field path (as segments) -> value."""
        return {(FACETS, facet): True for facet in self.facets()}


def page_token(after: str) -> str:
    """The opaque token of the page that follows the lead `after`."""
    return _CURSOR_MARK + base64.urlsafe_b64encode(after.encode()).decode().rstrip("=")


def token_after(token: str) -> str:
    """The lead id a page token continues after; ValueError if it is not one of ours."""
    if not token.startswith(_CURSOR_MARK):
        raise ValueError("not a page token")
    body = token[len(_CURSOR_MARK) :]
    try:
        padded = body + "=" * (-len(body) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a page token") from exc
    if not _ID.match(after) or page_token(after) != token:  # one spelling a token
        raise ValueError("not a page token")
    return after


# -- what a user reads of a stored receipt -----------------------------------------------------
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


def _plain(value: Any) -> Any:
    """Firestore values as JSON: timestamps become RFC 3339 strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def public_receipt(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """A stored receipt's public fields (docs/api.md, "Receipts"; no lease, checkpoint or
    pacing bookkeeping), JSON-ready."""
    out = {key: _plain(receipt.get(key)) for key in PUBLIC_FIELDS}
    for key in ("createdAt", "updatedAt"):
        if receipt.get(key) is not None:
            out[key] = _plain(receipt[key])
    return out
