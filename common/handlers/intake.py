"""`POST {SCHEDULE_URL}`: validate, record every lead with its receipts, publish its actions.

Receipts are written (pending or rejected) before anything is published, so no accepted lead can
exist without a receipt; a request sent again publishes only what is still pending, and reopens
what may now succeed (a `no_slot` booking with new candidates, a failed action).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from google.api_core import exceptions as gexc
from pydantic import ValidationError

from common.bus import Outgoing, PubSubBus, carried_lead
from common.config import HostAllowlist
from common.log import log
from common.models import Lead, RunSettings, ScheduleRequest, field_errors, valid_email
from common.receipts import is_terminal, new_receipt
from common.slots import Interval, split_candidates
from common.store import FirestoreStore, IntakeWrite, encode_version, intake_changes, lead_actions

INTAKE_ATTEMPTS = 4


@dataclass
class HttpResult:
    """What an HTTP handler answers: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> HttpResult:
    """A JSON error answer (CONTRACT §3)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return HttpResult(status, {"error": body})


def lead_problem(lead: Lead, settings: RunSettings) -> str | None:
    """Why this lead alone must be rejected, or None."""
    if lead.email is None or not lead.email.strip():
        return "no_email"
    try:
        valid_email(lead.email)
    except ValueError:
        return "invalid_email"
    if "calendar" in settings.actions and lead.candidateSlots:
        valid, _ = split_candidates([Interval(s.start, s.end) for s in lead.candidateSlots])
        if not valid:
            return "invalid_slots"
    return None


def _reopenable(action: str, receipt: dict[str, Any], calendar_reopened: bool) -> bool:
    """Whether a resubmitted lead may try this action again (never one that took effect)."""
    if not is_terminal(receipt):
        return False
    if receipt.get("status") in ("failed", "rejected"):
        return True
    if action == "calendar":
        return receipt.get("outcome") == "no_slot"
    if action == "email":
        return calendar_reopened and receipt.get("outcome") == "drafted"
    return False


@dataclass
class _Plan:
    writes: list[IntakeWrite]
    messages: list[Outgoing]
    accepted: list[dict[str, str]]
    rejected: list[dict[str, str]]
    settings_id: str
    settings: dict[str, Any]


def _lead_doc(
    lead: Lead, actions: list[str], settings_id: str, reason: str | None
) -> dict[str, Any]:
    return {
        "lead": lead.model_dump(mode="json"),
        "actions": actions,
        "settingsId": settings_id,
        "status": "rejected" if reason else "accepted",
        "reason": reason,
    }


def settings_key(settings: dict[str, Any]) -> str:
    """The id of a settings document: its content's digest."""
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _publishable(
    run_id: str, lead_id: str, actions: list[str], receipts: dict[str, Any]
) -> list[Outgoing]:
    """The messages a lead needs for its pending receipts (the email follows the booking)."""
    out = []
    for action in actions:
        if is_terminal(receipts.get(action)):
            continue
        if (
            action == "email"
            and "calendar" in actions
            and not is_terminal(receipts.get("calendar"))
        ):
            continue  # book publishes it with the booking result
        out.append(Outgoing(run_id, lead_id, action))
    return out


def committed_messages(plan: _Plan, created: dict[tuple[str, str], Any]) -> list[Outgoing]:
    """The plan's messages, once its writes are committed: each with the versions of the pending
    receipts the commit created for it, and then with the lead document written in the same
    commit (decision 0006). A calendar message also carries the email receipt's version, for the
    notify message book sends.
    """
    leads = {w.lead_doc_id: w.lead for w in plan.writes if w.lead is not None}
    out = []
    for message in plan.messages:
        wanted = (message.action, "email") if message.action == "calendar" else (message.action,)
        versions = {
            action: encode_version(created[(message.lead_doc_id, action)])
            for action in wanted
            if (message.lead_doc_id, action) in created
        }
        lead = leads.get(message.lead_doc_id) if message.action in versions else None
        out.append(
            replace(
                message,
                versions=versions or None,
                lead=carried_lead(lead) if lead is not None else None,
            )
        )
    return out


def plan_intake(store: FirestoreStore, request: ScheduleRequest) -> _Plan:
    """Decide, from what is stored, what to write and publish for each lead."""
    settings = request.settings()
    settings_doc = settings.model_dump(mode="json")
    actions: list[str] = list(settings.actions)
    existing = store.snapshot_leads(
        request.runId, [lead.leadDocId for lead in request.leads], actions
    )
    plan = _Plan([], [], [], [], settings_key(settings_doc), settings_doc)
    for lead in request.leads:
        reason = lead_problem(lead, settings)
        lead_id = lead.leadDocId
        if lead_id not in existing:
            status = "rejected" if reason else "pending"
            receipts = {
                a: new_receipt(a, dry_run=request.dryRun, status=status, reason=reason)
                for a in actions
            }
            doc = _lead_doc(lead, actions, plan.settings_id, reason)
            plan.writes.append(
                IntakeWrite(
                    lead_id, doc, False, receipts, {}, intake_changes(None, doc, {}, receipts)
                )
            )
            if reason is None:
                plan.messages.extend(_publishable(request.runId, lead_id, actions, receipts))
        else:
            lead_snap, receipt_snaps = existing[lead_id]
            old_lead = lead_snap.to_dict() or {}
            old_receipts = {a: snap.to_dict() or {} for a, snap in receipt_snaps.items()}
            if reason is not None:
                # A lead already on record is never clobbered by a worse copy of itself.
                plan.rejected.append({"leadDocId": lead_id, "reason": reason})
                continue
            stored_actions = lead_actions(old_lead) or actions
            reopened: dict[str, dict[str, Any]] = {}
            calendar_reopened = "calendar" in old_receipts and _reopenable(
                "calendar", old_receipts["calendar"], False
            )
            for action in stored_actions:
                old = old_receipts.get(action)
                if old is None or _reopenable(action, old, calendar_reopened):
                    attempts = int((old or {}).get("attempts") or 0)
                    reopened[action] = {
                        **new_receipt(action, dry_run=request.dryRun),
                        "attempts": attempts,
                        "lease": None,
                    }
            current = {**old_receipts, **reopened}
            if reopened:
                doc = _lead_doc(lead, stored_actions, plan.settings_id, None)
                times = {a: receipt_snaps[a].update_time for a in reopened if a in receipt_snaps}
                # Receipts still pending from before get a new version with the new lead
                # document, so no message carrying the old lead can claim them unread.
                touched = {
                    a: snap.update_time
                    for a, snap in receipt_snaps.items()
                    if a not in reopened and not is_terminal(old_receipts[a])
                }
                plan.writes.append(
                    IntakeWrite(
                        lead_id,
                        doc,
                        True,
                        reopened,
                        times,
                        intake_changes(old_lead, doc, old_receipts, reopened),
                        touched,
                    )
                )
            if old_lead.get("status") == "rejected" and not reopened:
                plan.rejected.append({"leadDocId": lead_id, "reason": str(old_lead.get("reason"))})
                continue
            plan.messages.extend(_publishable(request.runId, lead_id, stored_actions, current))
        if reason:
            plan.rejected.append({"leadDocId": lead_id, "reason": reason})
        else:
            plan.accepted.append({"leadDocId": lead_id})
    return plan


def handle_schedule(
    store: FirestoreStore,
    bus: PubSubBus,
    uid: str,
    body: bytes,
    trace: str | None = None,
    *,
    hosts: HostAllowlist,
    traceparent: str | None = None,
) -> HttpResult:
    """Validate and accept a schedule request (CONTRACT §3).

    Everything that can refuse the whole request (shape, limits, the host allowlist) is checked
    before the first write, so a refused request leaves nothing behind.
    """
    try:
        request = ScheduleRequest.model_validate_json(body)
    except ValidationError as exc:
        details = [d.model_dump() for d in field_errors(exc)]
        return error(400, "invalid_request", "the request is not valid", details)
    refusal = hosts.refusal(request.host.calendarId, request.host.senderEmail)
    if refusal is not None:
        field_name, message = refusal
        log(
            f"host refused: {message}",
            severity="WARNING",
            trace=trace,
            labels={"runId": request.runId},
            uid=uid,
        )
        return error(403, "forbidden", message, [{"field": field_name, "message": message}])
    run = store.open_run(request.runId, uid, request.dryRun)
    if run.get("ownerUid") != uid:
        return error(403, "forbidden", "this run belongs to another user")
    if bool(run.get("dryRun")) != request.dryRun:
        mode = "a dry run" if run.get("dryRun") else "a live run"
        return error(409, "run_mode_conflict", f"run {request.runId} is {mode}")
    for attempt in range(INTAKE_ATTEMPTS):
        plan = plan_intake(store, request)
        try:
            created = store.write_intake(
                request.runId, plan.writes, (plan.settings_id, plan.settings)
            )
            break
        except (gexc.Conflict, gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Aborted):
            # A concurrent copy of this request wrote first: look again at what is stored.
            if attempt == INTAKE_ATTEMPTS - 1:
                return error(503, "unavailable", "the run is being changed concurrently; retry")
    try:
        published = bus.publish(committed_messages(plan, created), traceparent=traceparent)
    except Exception as exc:
        log(
            f"publish failed: {exc!r}",
            severity="ERROR",
            trace=trace,
            labels={"runId": request.runId},
        )
        return error(
            503,
            "unavailable",
            "leads are recorded but not all were queued; send the same request again",
        )
    store.touch_run(request.runId)
    counts = Counter(m.action for m in plan.messages)
    log(
        "schedule accepted",
        trace=trace,
        labels={"runId": request.runId},
        accepted=len(plan.accepted),
        rejected=len(plan.rejected),
        published=published,
        byAction=dict(counts),
        dryRun=request.dryRun,
    )
    return HttpResult(
        202, {"runId": request.runId, "accepted": plan.accepted, "rejected": plan.rejected}
    )
