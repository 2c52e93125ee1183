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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.counts import WAITING
from common.receipts import Receipt, lead_facets, receipt_facets

FACETS = "facets"
_CURSOR_MARK = "l1."
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


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
