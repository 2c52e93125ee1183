"""`POST {SCHEDULE_URL}`: validate, record every lead with its receipts, publish its actions.

Receipts are written (pending or rejected) before anything is published, so no accepted lead can
exist without a receipt; a request sent again publishes only what is still pending, and reopens
what may now succeed (a `no_slot` booking with new candidates, a failed action).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from common import flow, paths
from common.api_schema import ErrorCode, error_body
from common.bus import Outgoing
from common.config import HostAllowlist
from common.counts import tally
from common.documents import SERVER_TIME, Changed, Commit, Write
from common.lanes import Lanes
from common.lead_pages import facets_of
from common.limits import ACTION_API
from common.log import log
from common.models import Lead, RunSettings, ScheduleRequest, field_errors, stamp, valid_email
from common.pacing import LEAD_SECONDS, Limits
from common.ports import Bus
from common.receipts import Receipt, Status, changes, lead_wait_fields, waits_of
from common.runs import StoredLead, lead_actions, run_state
from common.slots import Interval, split_candidates
from common.store import Store, created, lead_change

INTAKE_ATTEMPTS = 4


@dataclass
class HttpResult:
    """What an HTTP handler answers: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def error(
    status: int, code: ErrorCode, message: str, details: list[dict[str, str]] | None = None
) -> HttpResult:
    """A JSON error answer (docs/api.md, "Schedule")."""
    return HttpResult(status, error_body(code, message, details))


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


@dataclass(frozen=True)
class Pace:
    """What intake paces to: the hosts' lanes and the limits they run under."""

    lanes: Lanes
    limits: Limits
    clock: Callable[[], datetime]  # the wiring's (`common.clock`), or a test's


class Starts:
    """Hands out each new pending receipt's start in its host's lane, in request order.

    Without reservations it only counts what the plan asks for (the first pass); with them, a
    receipt due within `LOOKAHEAD` is published now with its `startAt` (its delivery waits for
    that moment), and a later one is created `waiting` for it (the sweeper publishes it then).
    """

    def __init__(
        self,
        now: datetime | None = None,
        reserved: Mapping[str, list[datetime]] | None = None,
        host: str | None = None,
        *,
        paused: bool = False,
    ):
        self.paused = paused
        self.now = now
        self.reserved = reserved
        self.host = host
        self.wanted: Counter[str] = Counter()

    def take(self, receipt: Receipt) -> Receipt:
        """The next pending receipt of its action, with its start in the host's lane (paused,
        in a paused run)."""
        if self.paused:
            return receipt.pause()
        api = ACTION_API[receipt.action]
        index = self.wanted[api]
        self.wanted[api] += 1
        starts = (self.reserved or {}).get(api)
        if not starts or self.now is None or self.host is None:
            return receipt
        return receipt.planned_at(self.host, api, starts[min(index, len(starts) - 1)], self.now)


@dataclass
class IntakePlan:
    """What schedule will write and publish for a request, decided from what is stored."""

    run_id: str
    commits: list[Commit]
    accepted: list[dict[str, str]]
    rejected: list[dict[str, str]]
    # Each accepted lead's actions and receipts as they will be stored: what to publish.
    written: list[tuple[str, list[str], Mapping[str, Receipt]]] = field(default_factory=list)

    def waits(self) -> bool:
        """Whether it leaves a receipt waiting for a start (the sweeper publishes it then)."""
        return any(
            r.waiting is not None and not r.paused
            for _, _, receipts in self.written
            for r in receipts.values()
        )

    def messages(self, due: datetime) -> list[Outgoing]:
        """What to publish once the request is written (`flow.publishable`), counting a
        receipt that waits for a start by `due`: that start came while the request was being
        written, and the sweeper's passes, which never look back, may have passed it already."""
        return [
            Outgoing(self.run_id, lead_id, action)
            for lead_id, actions, receipts in self.written
            for action in flow.publishable(actions, receipts, due)
        ]


def wake(store: Store, bus: Bus, run_id: str, now: datetime) -> None:
    """Wake the sweeper for waits just written, unless a tick is live (it looks at them within
    `sweep.NAP_AT_MOST`); if waking fails, the next scheduled tick publishes them, late by up
    to its period."""
    try:
        if not store.tick_live(now):
            bus.wake()
    except Exception as exc:
        log(f"sweeper not woken: {exc!r}", severity="WARNING", labels={"runId": run_id})


def _lead_doc(
    lead: Lead,
    actions: list[str],
    settings_id: str,
    reason: str | None,
    receipts: Mapping[str, Receipt],
) -> dict[str, Any]:
    return {
        "lead": lead.model_dump(mode="json"),
        "actions": actions,
        "settingsId": settings_id,
        "status": "rejected" if reason else "accepted",
        "reason": reason,
        "reasonTally": tally(receipts.values()),
        **lead_wait_fields(waits_of(receipts)),
        **facets_of(receipts),
    }


def settings_key(settings: dict[str, Any]) -> str:
    """The id of a settings document: its content's digest."""
    encoded = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _new_lead(
    run_id: str,
    lead: Lead,
    actions: list[str],
    settings_id: str,
    reason: str | None,
    dry_run: bool,
    starts: Starts,
) -> tuple[Commit, dict[str, Receipt]]:
    """A lead seen for the first time: its document and a receipt per action, all new."""
    receipts = {
        a: Receipt(a, dry_run, Status.REJECTED, reason=reason)
        if reason
        else starts.take(Receipt(a, dry_run))
        for a in actions
    }
    doc = _lead_doc(lead, actions, settings_id, reason, receipts)
    writes = [created(paths.lead(run_id, lead.leadDocId), doc)]
    writes += [
        created(paths.receipt(run_id, lead.leadDocId, a), r.to_doc()) for a, r in receipts.items()
    ]
    return Commit(writes, run_id, lead_change(None, doc, {}, receipts)), receipts


def _reopen(
    run_id: str, lead: Lead, stored: StoredLead, settings_id: str, dry_run: bool, starts: Starts
) -> tuple[Commit | None, dict[str, Receipt], list[str]]:
    """A lead sent again: reopen what may now succeed (`flow.reopenable`), rewrite the lead
    with what was sent; the commit (None: nothing to reopen), its receipts now, its actions."""
    old_lead = stored.lead.data
    old = {a: Receipt.from_doc(doc.data) for a, doc in stored.receipts.items()}
    actions = lead_actions(old_lead) or list(old)
    reopened: dict[str, Receipt] = {}
    for action in actions:
        if action not in old or flow.reopenable(action, dict(old), resubmitted=True):
            earlier = old.get(action) or Receipt(action, dry_run)
            reopened[action] = starts.take(earlier.anew(dry_run))
    current = {**old, **reopened}
    if not reopened:
        return None, current, actions
    doc = _lead_doc(lead, actions, settings_id, None, current)
    lead_path = paths.lead(run_id, lead.leadDocId)
    writes = [Write(lead_path, {**doc, "updatedAt": SERVER_TIME}, stored.lead.version)]
    for action, receipt in reopened.items():
        path = paths.receipt(run_id, lead.leadDocId, action)
        if action in stored.receipts:
            fields = changes(old[action], receipt)
            writes.append(
                Write(path, {**fields, "updatedAt": SERVER_TIME}, stored.receipts[action].version)
            )
        else:
            writes.append(created(path, receipt.to_doc()))
    return Commit(writes, run_id, lead_change(old_lead, doc, old, reopened)), current, actions


def plan_intake(
    store: Store,
    request: ScheduleRequest,
    starts: Starts | None = None,
    existing: Mapping[str, StoredLead] | None = None,
) -> IntakePlan:
    """Decide, from what is stored (`existing`, else read), what to write and publish for each
    lead, each pending receipt with its start from `starts` (none: published at once)."""
    settings = request.settings()
    settings_doc = settings.model_dump(mode="json")
    settings_id = settings_key(settings_doc)
    actions: list[str] = list(settings.actions)
    run_id = request.runId
    starts = starts or Starts()
    if existing is None:
        existing = stored_for(store, request)
    # Content-addressed: writing it again writes the same thing, so it needs no guard.
    plan = IntakePlan(
        run_id, [Commit([Write(paths.run_settings(run_id, settings_id), settings_doc)])], [], []
    )
    for lead in request.leads:
        reason = lead_problem(lead, settings)
        lead_id = lead.leadDocId
        stored = existing.get(lead_id)
        if stored is None:
            commit, receipts = _new_lead(
                run_id, lead, actions, settings_id, reason, request.dryRun, starts
            )
            plan.commits.append(commit)
            if reason is None:
                plan.written.append((lead_id, actions, receipts))
        elif reason is not None:
            # A lead already on record is never clobbered by a worse copy of itself.
            plan.rejected.append({"leadDocId": lead_id, "reason": reason})
            continue
        else:
            reopen, current, stored_actions = _reopen(
                run_id, lead, stored, settings_id, request.dryRun, starts
            )
            if reopen is not None:
                plan.commits.append(reopen)
            elif stored.lead.data.get("status") == "rejected":
                plan.rejected.append(
                    {"leadDocId": lead_id, "reason": str(stored.lead.data.get("reason"))}
                )
                continue
            plan.written.append((lead_id, stored_actions, current))
        if reason:
            plan.rejected.append({"leadDocId": lead_id, "reason": reason})
        else:
            plan.accepted.append({"leadDocId": lead_id})
    return plan


def stored_for(store: Store, request: ScheduleRequest) -> dict[str, StoredLead]:
    """The request's leads as already stored, with their receipts."""
    actions = list(request.settings().actions)
    return store.stored_leads(request.runId, [lead.leadDocId for lead in request.leads], actions)


def reserve_starts(
    lanes: Lanes, limits: Limits, host: str, wanted: Mapping[str, int], now: datetime
) -> tuple[dict[str, list[datetime]], int]:
    """Reserve the wanted number of starts in each of the host's lanes (one write a lane);
    the starts by API, and how many leads wait for the next daily sending window."""
    reserved: dict[str, list[datetime]] = {}
    over_daily = 0
    for api, count in wanted.items():
        if count:
            plan = lanes.reserve(host, api, count, limits, now)
            reserved[api] = plan.starts
            over_daily += plan.over_daily
    return reserved, over_daily


def eta_of(reserved: Mapping[str, list[datetime]], now: datetime) -> str:
    """When the last reserved start is expected to be done (RFC 3339)."""
    last = max((starts[-1] for starts in reserved.values() if starts), default=now)
    return stamp(max(last, now) + LEAD_SECONDS)


def _follow_command(store: Store, plan: IntakePlan, state: str, now: datetime) -> None:
    """Move the receipts `plan` wrote as a whole-run command to `state` moves them, and keep
    what they are now in `plan.written` (what is published)."""

    def move(_lead: str, r: Receipt, _receipts: Mapping[str, Receipt]) -> Receipt | None:
        if r.terminal:
            return None
        if state == "cancelled":
            return r.cancel(now)
        if state == "paused":
            return None if r.paused else r.pause()
        return r.resume() if r.paused else None

    written: list[tuple[str, list[str], Mapping[str, Receipt]]] = []
    for lead_id, actions, _ in plan.written:
        found = store.steer(plan.run_id, {lead_id: actions}, move)[lead_id]
        written.append((lead_id, actions, {**found[0], **found[1]}))
    plan.written = written


def handle_schedule(
    store: Store,
    bus: Bus,
    uid: str,
    body: bytes,
    trace: str | None = None,
    *,
    hosts: HostAllowlist,
    traceparent: str | None = None,
    pace: Pace,
) -> HttpResult:
    """Validate and accept a schedule request (docs/api.md, "Schedule").

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
    state = run_state(run)
    if state == "cancelled":
        return error(409, "run_cancelled", f"run {request.runId} was cancelled")
    paused = state == "paused"  # its new actions wait for the resume
    clock = pace.clock
    now = clock()
    existing = stored_for(store, request)
    reserved: dict[str, list[datetime]] = {}
    over_daily = 0
    if not request.dryRun and not paused:  # a dry run calls only freeBusy: not paced
        counting = Starts(now)
        plan_intake(store, request, counting, existing)
        host = request.host.senderEmail
        reserved, over_daily = reserve_starts(pace.lanes, pace.limits, host, counting.wanted, now)
    for attempt in range(INTAKE_ATTEMPTS):
        starts = Starts(now, reserved, request.host.senderEmail, paused=paused)
        plan = plan_intake(store, request, starts, existing)
        try:
            store.write_intake(plan.commits)
            break
        except Changed:
            # A concurrent copy of this request wrote first: look again at what is stored.
            if attempt == INTAKE_ATTEMPTS - 1:
                return error(503, "unavailable", "the run is being changed concurrently; retry")
            existing = stored_for(store, request)
    if (now_state := store.current_state(request.runId)) != state:
        # A command took hold of the whole run while this request was written: it moved the
        # leads it found, and these follow it here (the write came first, so one of the two
        # sees the other: decision 0015).
        _follow_command(store, plan, now_state, now)
    messages = plan.messages(flow.due_by(clock()))
    try:
        published = bus.publish(messages, traceparent=traceparent)
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
    if plan.waits():
        wake(store, bus, request.runId, clock())
    store.touch_run(request.runId)
    counts = Counter(m.action for m in messages)
    log(
        "schedule accepted",
        trace=trace,
        labels={"runId": request.runId},
        accepted=len(plan.accepted),
        rejected=len(plan.rejected),
        published=published,
        byAction=dict(counts),
        dryRun=request.dryRun,
        overDailyCap=over_daily,
    )
    answer: dict[str, Any] = {
        "runId": request.runId,
        "accepted": plan.accepted,
        "rejected": plan.rejected,
        "eta": {request.host.senderEmail: eta_of(reserved, now)},
    }
    if over_daily:
        # Past the host's daily sending cap, leads wait for its next window (docs/api.md).
        answer["waitingForDailyCap"] = {request.host.senderEmail: over_daily}
    return HttpResult(202, answer)
