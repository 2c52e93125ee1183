"""What an operator sees of a run: its funnel and one row per lead, built from diagnostics and
receipts (pure). `leadrun status` prints it, `--json` dumps it, `leadrun report` renders it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.lead_pages import public_receipt
from common.receipts import TERMINAL

ACTION_ORDER: tuple[str, ...] = ("calendar", "email", "drive")
# Progress/summary buckets: a terminal receipt's outcome, else its status.
OUTCOME_LABELS: dict[str, str] = {
    "booked": "booked",
    "no_slot": "no slot",
    "sent": "sent",
    "drafted": "drafted",
    "created": "folder",
    "rejected": "rejected",
    "failed": "failed",
}


@dataclass(frozen=True)
class Links:
    """Where a lead's effects can be opened (None when there is none, e.g. in a dry run)."""

    event: str | None = None
    meet: str | None = None
    folder: str | None = None


@dataclass
class LeadRow:
    """One lead: its overall status, what each action did, and its links."""

    lead_doc_id: str
    name: str
    email: str | None
    company: str | None
    status: str  # rejected · failed · waiting · pending · done · simulated · reverted
    outcome: str  # e.g. "booked · sent · created"
    reason: str | None
    receipts: dict[str, dict[str, Any]]
    links: Links
    meeting_start: str | None = None
    expanded: bool = False
    waiting_until: str | None = None  # the latest `waiting.until` of its receipts

    def receipt_reasons(self) -> set[str]:
        """The distinct reason codes among this lead's receipts."""
        return {str(r["reason"]) for r in self.receipts.values() if r.get("reason")}

    def to_json(self) -> dict[str, Any]:
        """The row as `leadrun status --json` prints it."""
        return {
            "leadDocId": self.lead_doc_id,
            "name": self.name,
            "email": self.email,
            "company": self.company,
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "meetingStart": self.meeting_start,
            "expanded": self.expanded,
            "waitingUntil": self.waiting_until,
            "links": {
                "event": self.links.event,
                "meet": self.links.meet,
                "folder": self.links.folder,
            },
            "receipts": self.receipts,
        }


@dataclass
class RunView:
    """A run as diagnostics reports it, with its leads."""

    run_id: str
    dry_run: bool
    counts: dict[str, int]
    reasons: dict[str, int]
    filter_reasons: dict[str, int]
    updated_at: str | None
    leads: list[LeadRow] = field(default_factory=list)
    waiting_until: str | None = None  # diagnostics' `waitingUntil`

    @property
    def submitted(self) -> int:
        """Leads the run received (accepted + rejected)."""
        return int(self.counts.get("accepted", 0)) + int(self.counts.get("rejected", 0))

    def reasons_by_status(self) -> dict[str, Counter[str]]:
        """Leads per reason code of their receipts, split into `rejected`, `failed` and `other`
        (no_slot, meet_failed): a lead counts once per reason in a part, whatever its actions."""
        out: dict[str, Counter[str]] = {
            "rejected": Counter(),
            "failed": Counter(),
            "other": Counter(),
        }
        for row in self.leads:
            found = {
                (str(r["status"]) if r.get("status") in out else "other", str(r["reason"]))
                for r in row.receipts.values()
                if r.get("reason")
            }
            for bucket, reason in found:
                out[bucket][reason] += 1
        return out

    def reason_leads(self) -> Counter[str]:
        """Leads per reason code of their receipts, all actions (docs/api.md, "Diagnostics": a lead
        counts once for each distinct reason among its receipts, as diagnostics' `reasons` does)."""
        return Counter(reason for row in self.leads for reason in row.receipt_reasons())

    def lead_reasons(self) -> Counter[str]:
        """Why leads were rejected at intake, one count per lead."""
        return Counter(row.reason or "unknown" for row in self.leads if row.status == "rejected")

    def failures(self) -> list[tuple[str, str, str, str]]:
        """(leadDocId, action, reason, error message) of every failed receipt."""
        out = []
        for row in self.leads:
            for action in ACTION_ORDER:
                receipt = row.receipts.get(action)
                if receipt and receipt.get("status") == "failed":
                    error = receipt.get("error") or {}
                    out.append(
                        (
                            row.lead_doc_id,
                            action,
                            str(receipt.get("reason") or ""),
                            str(error.get("message") or ""),
                        )
                    )
        return out

    def to_json(self) -> dict[str, Any]:
        """`leadrun status --json`: diagnostics' own fields, then the leads."""
        return {
            "runId": self.run_id,
            "dryRun": self.dry_run,
            "counts": dict(self.counts),
            "reasons": dict(self.reasons),
            "filterReasons": dict(self.filter_reasons),
            "waitingUntil": self.waiting_until,
            "updatedAt": self.updated_at,
            "leads": [row.to_json() for row in self.leads],
        }


def receipt_bucket(receipt: Mapping[str, Any]) -> str | None:
    """The progress bucket of a terminal receipt (outcome, else status); None while pending."""
    if receipt.get("status") not in TERMINAL:
        return None
    return str(receipt.get("outcome") or receipt.get("status"))


def _outcome_text(receipt: Mapping[str, Any]) -> str:
    """`booked`; `booked (reverting)` while an undo's revert is queued; `booked (reverted)`."""
    text = str(receipt.get("outcome") or receipt.get("status"))
    if receipt.get("status") == "reverted":
        return f"{text} (reverted)" if receipt.get("outcome") else text
    if receipt.get("revert"):
        return f"{text} (reverting)"
    return text


def lead_row(lead_id: str, lead: Mapping[str, Any], receipts: Mapping[str, Any]) -> LeadRow:
    """One lead's row from its document and receipts."""
    submitted = lead.get("lead") or {}
    actions = [a for a in ACTION_ORDER if a in receipts]
    statuses = [str(receipts[a].get("status")) for a in actions]
    waits = [
        receipts[a]["waiting"]
        for a in actions
        if receipts[a].get("status") == "pending" and receipts[a].get("waiting")
    ]
    if lead.get("status") == "rejected":
        status = "rejected"
    elif "failed" in statuses:
        status = "failed"
    elif waits:
        status = "waiting"  # held back by Google's limits; resumes by itself
    elif "pending" in statuses or not statuses:
        status = "pending"
    elif "simulated" in statuses:
        status = "simulated"
    elif "reverted" in statuses:
        status = "reverted"  # an undo took back what the lead's actions made
    else:
        status = "done"
    outcome = " · ".join(_outcome_text(receipts[a]) for a in actions)
    reason = lead.get("reason")
    if not reason and waits:
        reason = ", ".join(sorted({f"{w.get('api')} {w.get('reason')}" for w in waits}))
    if not reason:
        reason = next(
            (receipts[a].get("reason") for a in actions if receipts[a].get("reason")), None
        )
    calendar = (receipts.get("calendar") or {}).get("external") or {}
    drive = (receipts.get("drive") or {}).get("external") or {}
    return LeadRow(
        lead_doc_id=lead_id,
        name=str(submitted.get("name") or ""),
        email=submitted.get("email"),
        company=submitted.get("company"),
        status=status,
        outcome=outcome if lead.get("status") != "rejected" else "",
        reason=str(reason) if reason else None,
        receipts={a: public_receipt(receipts[a]) for a in actions},
        links=Links(
            event=calendar.get("htmlLink"),
            meet=calendar.get("meetLink"),
            folder=drive.get("webViewLink"),
        ),
        meeting_start=calendar.get("start"),
        expanded=bool(calendar.get("expanded"))
        and (receipts.get("calendar") or {}).get("outcome") == "booked",
        waiting_until=max((str(w.get("until")) for w in waits), default=None),
    )


def page_rows(
    leads: Iterable[Mapping[str, Any]],
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """`build_view` rows from `GET /leads` entries: each lead as `lead_row` reads a lead
    document. A lead whose every receipt is `rejected` was rejected at intake (an accepted
    lead's email is rejected only after its booking ended otherwise)."""
    rows = []
    for entry in leads:
        receipts = dict(entry.get("receipts") or {})
        rejected = bool(receipts) and all(r.get("status") == "rejected" for r in receipts.values())
        reasons = sorted({str(r["reason"]) for r in receipts.values() if r.get("reason")})
        lead = {
            "lead": {key: entry.get(key) for key in ("email", "name", "company")},
            "status": "rejected" if rejected else "accepted",
            "reason": reasons[0] if rejected and reasons else None,
        }
        rows.append((str(entry["leadDocId"]), lead, receipts))
    return rows


def build_view(
    funnel: Mapping[str, Any], rows: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]]
) -> RunView:
    """The operator's view of a run from its diagnostics answer and `run_receipts` rows."""
    return RunView(
        run_id=str(funnel["runId"]),
        dry_run=bool(funnel.get("dryRun")),
        counts={k: int(v) for k, v in (funnel.get("counts") or {}).items()},
        reasons={k: int(v) for k, v in (funnel.get("reasons") or {}).items()},
        filter_reasons={k: int(v) for k, v in (funnel.get("filterReasons") or {}).items()},
        updated_at=funnel.get("updatedAt"),
        leads=[lead_row(lead_id, lead, receipts) for lead_id, lead, receipts in rows],
        waiting_until=funnel.get("waitingUntil"),
    )


def tally(
    rows: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
) -> tuple[int, int, Counter[str]]:
    """(receipts, terminal receipts, receipts by bucket) of `run_receipts` rows: terminal ones
    by outcome, and `waiting` for pending ones that Google's limits hold back (not terminal)."""
    total = 0
    buckets: Counter[str] = Counter()
    for _, _, receipts in rows:
        for receipt in receipts.values():
            total += 1
            bucket = receipt_bucket(receipt)
            if bucket is not None:
                buckets[bucket] += 1
            elif receipt.get("waiting"):
                buckets["waiting"] += 1
    return total, sum(buckets.values()) - buckets["waiting"], buckets
