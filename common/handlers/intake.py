"""`POST {SCHEDULE_URL}`: validate, record every lead with its receipts, publish its actions.

Receipts are written (pending or rejected) before anything is published, so no accepted lead can
exist without a receipt; a request sent again publishes only what is still pending, and reopens
what may now succeed (a `no_slot` booking with new candidates, a failed action).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from common import flow, paths
from common.bus import Outgoing
from common.config import HostAllowlist
from common.documents import SERVER_TIME, Changed, Commit, Write
from common.log import log
from common.models import Lead, RunSettings, ScheduleRequest, field_errors, valid_email
from common.ports import Bus
from common.receipts import new_receipt, tally
from common.slots import Interval, split_candidates
from common.store import Store, StoredLead, created, lead_actions, lead_change

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


@dataclass
class IntakePlan:
    """What schedule will write and publish for a request, decided from what is stored."""

    commits: list[Commit]
    messages: list[Outgoing]
    accepted: list[dict[str, str]]
    rejected: list[dict[str, str]]


def _lead_doc(
    lead: Lead,
    actions: list[str],
    settings_id: str,
    reason: str | None,
    receipts: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    return {
        "lead": lead.model_dump(mode="json"),
        "actions": actions,
        "settingsId": settings_id,
        "status": "rejected" if reason else "accepted",
        "reason": reason,
        "reasonTally": tally(receipts.values()),
    }


def settings_key(settings: dict[str, Any]) -> str:
    """The id of a settings document: its content's digest."""
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _messages(
    run_id: str, lead_id: str, actions: list[str], receipts: Mapping[str, Any]
) -> list[Outgoing]:
    return [Outgoing(run_id, lead_id, action) for action in flow.publishable(actions, receipts)]


def _new_lead(
    run_id: str, lead: Lead, actions: list[str], settings_id: str, reason: str | None, dry_run: bool
) -> Commit:
    """A lead seen for the first time: its document and a receipt per action, all new."""
    status = "rejected" if reason else "pending"
    receipts = {a: new_receipt(a, dry_run=dry_run, status=status, reason=reason) for a in actions}
    doc = _lead_doc(lead, actions, settings_id, reason, receipts)
    writes = [created(paths.lead(run_id, lead.leadDocId), doc)]
    writes += [created(paths.receipt(run_id, lead.leadDocId, a), r) for a, r in receipts.items()]
    return Commit(writes, run_id, lead_change(None, doc, {}, receipts))


def _reopen(
    run_id: str, lead: Lead, stored: StoredLead, settings_id: str, dry_run: bool
) -> tuple[Commit | None, dict[str, dict[str, Any]], list[str]]:
    """A lead sent again: reopen what may now succeed (`flow.reopenable`), rewrite the lead
    with what was sent; the commit (None: nothing to reopen), its receipts now, its actions."""
    old_lead = stored.lead.data
    old = {a: doc.data for a, doc in stored.receipts.items()}
    actions = lead_actions(old_lead) or list(old)
    reopened: dict[str, dict[str, Any]] = {}
    for action in actions:
        if action not in old or flow.reopenable(action, old, resubmitted=True):
            attempts = int((old.get(action) or {}).get("attempts") or 0)
            reopened[action] = {
                **new_receipt(action, dry_run=dry_run),
                "attempts": attempts,
                "lease": None,
            }
    current = {**old, **reopened}
    if not reopened:
        return None, current, actions
    doc = _lead_doc(lead, actions, settings_id, None, current)
    lead_path = paths.lead(run_id, lead.leadDocId)
    writes = [Write(lead_path, {**doc, "updatedAt": SERVER_TIME}, stored.lead.version)]
    for action, receipt in reopened.items():
        path = paths.receipt(run_id, lead.leadDocId, action)
        if action in stored.receipts:
            writes.append(
                Write(path, {**receipt, "updatedAt": SERVER_TIME}, stored.receipts[action].version)
            )
        else:
            writes.append(created(path, receipt))
    return Commit(writes, run_id, lead_change(old_lead, doc, old, reopened)), current, actions


def plan_intake(store: Store, request: ScheduleRequest) -> IntakePlan:
    """Decide, from what is stored, what to write and publish for each lead."""
    settings = request.settings()
    settings_doc = settings.model_dump(mode="json")
    settings_id = settings_key(settings_doc)
    actions: list[str] = list(settings.actions)
    run_id = request.runId
    existing = store.stored_leads(run_id, [lead.leadDocId for lead in request.leads], actions)
    # Content-addressed: writing it again writes the same thing, so it needs no guard.
    plan = IntakePlan(
        [Commit([Write(paths.run_settings(run_id, settings_id), settings_doc)])], [], [], []
    )
    for lead in request.leads:
        reason = lead_problem(lead, settings)
        lead_id = lead.leadDocId
        stored = existing.get(lead_id)
        if stored is None:
            plan.commits.append(
                _new_lead(run_id, lead, actions, settings_id, reason, request.dryRun)
            )
            if reason is None:
                receipts = {a: new_receipt(a, dry_run=request.dryRun) for a in actions}
                plan.messages.extend(_messages(run_id, lead_id, actions, receipts))
        elif reason is not None:
            # A lead already on record is never clobbered by a worse copy of itself.
            plan.rejected.append({"leadDocId": lead_id, "reason": reason})
            continue
        else:
            commit, current, stored_actions = _reopen(
                run_id, lead, stored, settings_id, request.dryRun
            )
            if commit is not None:
                plan.commits.append(commit)
            elif stored.lead.data.get("status") == "rejected":
                plan.rejected.append(
                    {"leadDocId": lead_id, "reason": str(stored.lead.data.get("reason"))}
                )
                continue
            plan.messages.extend(_messages(run_id, lead_id, stored_actions, current))
        if reason:
            plan.rejected.append({"leadDocId": lead_id, "reason": reason})
        else:
            plan.accepted.append({"leadDocId": lead_id})
    return plan


def handle_schedule(
    store: Store,
    bus: Bus,
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
            store.write_intake(plan.commits)
            break
        except Changed:
            # A concurrent copy of this request wrote first: look again at what is stored.
            if attempt == INTAKE_ATTEMPTS - 1:
                return error(503, "unavailable", "the run is being changed concurrently; retry")
    try:
        published = bus.publish(plan.messages, traceparent=traceparent)
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
