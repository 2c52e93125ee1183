"""`POST {CONTROL_URL}`: its owner steers a run (docs/api.md, "Control").

The brake is the receipt itself. A command moves every affected receipt in a guarded commit per
lead (`Store.steer`); a delivery takes a receipt with a guarded commit too (`Store.claim`), and
refuses a paused one. Of two such changes to one receipt, one commits first and the other decides
again on what it left: so a delivery that claimed before the command is listed in `inFlight` (its
call may be on its way), and one that claims after it finds the brake. Nothing is read earlier
and trusted later. A whole-run command also sets the run's `state`, which schedule and
diagnostics answer with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common import flow
from common.bus import Outgoing
from common.documents import Contended
from common.handlers.diagnostics import funnel
from common.handlers.intake import HttpResult, Pace, error, eta_of, reserve_starts, wake
from common.lead_pages import REVERTING
from common.limits import ACTION_API
from common.log import log
from common.models import Id, field_errors
from common.ports import Bus
from common.receipts import Receipt
from common.runs import RunState, lead_actions, run_state
from common.store import Store

Command = Literal["pause", "resume", "cancel", "replay", "undo"]
# How a command moves one receipt of a lead (None: not at all), given the lead's receipts.
Move = Callable[[str, Receipt, Mapping[str, Receipt]], Receipt | None]
# The run's state after a whole-run command that sets one.
STATE_AFTER: dict[str, RunState] = {
    "pause": "paused",
    "cancel": "cancelled",
    "undo": "cancelled",
    "resume": "active",
}
PAGE = 200  # leads a page of a whole-run command reads at once
CHUNK = 50  # leads moved in one commit (at most 4 writes a lead and their stamps: under 500)
_STEERING = ThreadPoolExecutor(max_workers=4, thread_name_prefix="steer")


class ControlRequest(BaseModel):
    """`POST {CONTROL_URL}`: a command for a whole run, or for some of its leads."""

    model_config = ConfigDict(extra="forbid", strict=True)

    runId: Id
    command: Command
    leadDocIds: list[Id] | None = Field(default=None, min_length=1, max_length=500)
    preview: bool = False


@dataclass
class Steered:
    """What a command did, lead by lead."""

    affected: int = 0
    in_flight: list[dict[str, str]] = field(default_factory=list)
    publish: list[Outgoing] = field(default_factory=list)
    # The starts a resume (or an undo's reverts) reserved: host -> API -> starts.
    reserved: dict[str, dict[str, list[datetime]]] = field(default_factory=dict)
    # An undo's reverts queued (events, drafts, folders), and the sent emails it cannot recall.
    to_revert: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    queued: list[tuple[str, str]] = field(default_factory=list)  # (lead, action) to plan


def handle_control(
    store: Store,
    bus: Bus,
    pace: Pace,
    uid: str,
    body: bytes,
    now: datetime,
    operators: frozenset[str] = frozenset(),
) -> HttpResult:
    """Validate the command, check the run is the caller's (or the caller one of the
    deployment's `operators`, decision 0014), apply it, answer what it did."""
    try:
        request = ControlRequest.model_validate_json(body)
    except ValidationError as exc:
        details = [d.model_dump() for d in field_errors(exc)]
        return error(400, "invalid_request", "the request is not valid", details)
    if request.preview and request.command != "undo":
        return error(400, "invalid_request", "preview is for undo only", [_field("preview")])
    run = store.get_run(request.runId)
    if run is None:
        return error(404, "not_found", f"no run {request.runId}")
    if run.get("ownerUid") != uid and uid not in operators:
        return error(403, "forbidden", "this run belongs to another user")
    state = run_state(run)
    if state == "cancelled" and request.command not in ("cancel", "undo"):
        return error(409, "run_cancelled", f"run {request.runId} was cancelled")
    leads = _listed_leads(store, request)
    if isinstance(leads, HttpResult):
        return leads
    whole = request.leadDocIds is None
    if request.command == "undo" and run.get("dryRun"):  # nothing was made: nothing changes
        leads, request = [], request.model_copy(update={"preview": True})
    if whole and request.command in STATE_AFTER and not request.preview:
        # Set first: schedule and new deliveries of leads added meanwhile see it.
        state = store.set_run_state(request.runId, STATE_AFTER[request.command])
    steered = _apply(store, pace, request, leads, now)
    if request.preview:  # what it would do: nothing is written or published
        steered.publish = []
    elif steered.queued:
        _plan_reverts(store, pace, request.runId, steered, now)
    if steered.publish:
        bus.publish(steered.publish)
    if steered.reserved:  # starts planned in the lanes: some may wait in the store
        wake(store, bus, request.runId, now)
    log(
        f"control {request.command}",
        labels={"runId": request.runId},
        uid=uid,
        command=request.command,
        leads=None if whole else len(request.leadDocIds or []),
        affected=steered.affected,
        inFlight=len(steered.in_flight),
    )
    answer = {
        "runId": request.runId,
        "command": request.command,
        "state": state,
        "affected": steered.affected,
        "inFlight": steered.in_flight,
        "eta": _eta(store, {**run, "runId": request.runId}, steered, now),
    }
    if request.command == "undo":
        kinds = ("events", "folders", "drafts")
        answer["toRevert"] = {kind: steered.to_revert[kind] for kind in kinds}
        answer["unrecallable"] = {"sent": steered.sent}
    return HttpResult(200, answer)


def _field(name: str) -> dict[str, str]:
    return {"field": name, "message": f"not allowed here: {name}"}


def _listed_leads(
    store: Store, request: ControlRequest
) -> Iterable[tuple[str, dict[str, Any]]] | HttpResult:
    """The leads a command names (each must be a lead of the run), or every lead it may move."""
    if request.leadDocIds is None:
        return _run_leads(store, request.runId, request.command)
    found = store.leads(request.runId, request.leadDocIds)
    missing = [i for i, lead_id in enumerate(request.leadDocIds) if lead_id not in found]
    if missing:
        details = [
            {"field": f"leadDocIds[{i}]", "message": "not a lead of this run"} for i in missing
        ]
        return error(400, "invalid_request", "some leads are not leads of this run", details)
    return [(lead_id, found[lead_id]) for lead_id in dict.fromkeys(request.leadDocIds)]


def _run_leads(store: Store, run_id: str, command: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every lead of the run with a receipt the command may move, page by page (each read once:
    the facets the pages filter on are what the receipts were when the page was read)."""
    facets = {
        "pause": ["status_pending", REVERTING],
        "resume": ["paused"],
        "replay": ["status_pending", "status_failed"],
        "undo": ["status_pending", "status_done"],
    }.get(command, ["status_pending"])
    seen: set[str] = set()
    for facet in facets:
        after: str | None = None
        while True:
            rows, more = store.lead_page(run_id, {("facets", facet): True}, after, PAGE)
            for lead_id, lead, _ in rows:
                if lead_id not in seen:
                    seen.add(lead_id)
                    yield lead_id, lead
            if not more or not rows:
                break
            after = rows[-1][0]


def _apply(
    store: Store,
    pace: Pace,
    request: ControlRequest,
    leads: Iterable[tuple[str, dict[str, Any]]],
    now: datetime,
) -> Steered:
    """Move each lead's receipts, leads side by side (each its own guarded commit)."""
    steered = Steered()
    batch: list[tuple[str, dict[str, Any]]] = []
    for lead in leads:
        batch.append(lead)
        if len(batch) == PAGE:
            _apply_batch(store, pace, request, batch, now, steered)
            batch = []
    if batch:
        _apply_batch(store, pace, request, batch, now, steered)
    return steered


def _apply_batch(
    store: Store,
    pace: Pace,
    request: ControlRequest,
    batch: list[tuple[str, dict[str, Any]]],
    now: datetime,
    steered: Steered,
) -> None:
    command, run_id = request.command, request.runId
    if command == "resume":
        plan = _resume_plan(store, pace, run_id, batch, now, steered)
        move: Move = plan
    else:
        move = _MOVES[command](now, store.current_state(run_id))
    docs = dict(batch)
    chunks = [batch[k : k + CHUNK] for k in range(0, len(batch), CHUNK)]
    results: dict[str, tuple[dict[str, Receipt], dict[str, Receipt]]] = {}
    preview = request.preview
    for found in _STEERING.map(lambda c: _steer_chunk(store, run_id, c, move, preview), chunks):
        results.update(found)
    for lead_id, (before, moved) in results.items():
        actions = lead_actions(docs[lead_id])
        after = {**before, **moved}
        for action, receipt in before.items():
            # Listed while a delivery holds it, even when an earlier try of this command
            # already moved it (that answer may have been lost).
            braked = action in moved or receipt.paused or receipt.cancelling
            if command in ("pause", "cancel", "undo") and braked and receipt.leased(now):
                steered.in_flight.append({"leadDocId": lead_id, "action": action})
        if command == "undo":
            _undone(steered, run_id, lead_id, before, moved, now)
        if command != "replay":
            steered.affected += len(moved)
        if command in ("resume", "replay"):
            due = flow.due_by(now)
            going = [Outgoing(run_id, lead_id, a) for a in flow.publishable(actions, after, due)]
            steered.publish.extend(going)
            if command == "replay":
                steered.affected += len(going)


def _steer_chunk(
    store: Store,
    run_id: str,
    chunk: list[tuple[str, dict[str, Any]]],
    move: Move,
    preview: bool = False,
) -> dict[str, tuple[dict[str, Receipt], dict[str, Receipt]]]:
    """Move a chunk of leads in one guarded commit; where deliveries keep changing some of them,
    lead by lead instead (each its own guarded commit). A preview writes nothing."""
    leads = {lead_id: lead_actions(doc) for lead_id, doc in chunk}
    try:
        return store.steer(run_id, leads, move, rounds=2, preview=preview)
    except Contended:
        found: dict[str, tuple[dict[str, Receipt], dict[str, Receipt]]] = {}
        for lead_id, actions in leads.items():
            found.update(store.steer(run_id, {lead_id: actions}, move, preview=preview))
        return found


def _undone(
    steered: Steered,
    run_id: str,
    lead_id: str,
    before: Mapping[str, Receipt],
    moved: Mapping[str, Receipt],
    now: datetime,
) -> None:
    """What an undo did to one lead: the reverts it queued (planned next), the ones an earlier
    undo queued (published again: their message may have been lost), the sent emails."""
    for action, receipt in before.items():
        after = moved.get(action, receipt)
        steered.sent += receipt.unrecallable
        if action in moved and after.to_revert:
            steered.to_revert[str(receipt.made)] += 1
            steered.queued.append((lead_id, action))
        elif after.to_revert and not after.waits_past(flow.due_by(now)):
            steered.publish.append(Outgoing(run_id, lead_id, action))


def _plan_reverts(store: Store, pace: Pace, run_id: str, steered: Steered, now: datetime) -> None:
    """Plan the reverts an undo queued in their hosts' lanes from now (one write a lane, one a
    revert), and publish those due: a revert is a Google call like the one it undoes."""
    docs = store.leads(run_id, sorted({lead for lead, _ in steered.queued}))
    hosts = {
        lead_id: store.lead_settings(run_id, doc).host.senderEmail for lead_id, doc in docs.items()
    }
    planned = _in_lanes(pace, [(lead, a, hosts[lead]) for lead, a in steered.queued], now, steered)

    def move(lead_id: str, r: Receipt, _receipts: Mapping[str, Receipt]) -> Receipt | None:
        plan = planned.get((lead_id, r.action))
        if plan is None or not r.to_revert:
            return None
        return r.planned_at(*plan, now)

    rows = sorted(docs.items())
    chunks = [rows[k : k + CHUNK] for k in range(0, len(rows), CHUNK)]
    due = flow.due_by(now)
    for found in _STEERING.map(lambda c: _steer_chunk(store, run_id, c, move), chunks):
        for lead_id, (_, moved) in found.items():
            going = [a for a, r in moved.items() if not r.waits_past(due)]
            steered.publish.extend(Outgoing(run_id, lead_id, a) for a in going)


def _undo(now: datetime, state: str) -> Move:
    def move(_lead: str, r: Receipt, _receipts: Mapping[str, Receipt]) -> Receipt | None:
        new = r.undo(now)
        return None if new == r else new

    return move


def _pause(now: datetime, state: str) -> Move:
    def move(_lead: str, r: Receipt, _receipts: Mapping[str, Receipt]) -> Receipt | None:
        return None if r.closed or r.paused else r.pause()  # a queued revert waits too

    return move


def _cancel(now: datetime, state: str) -> Move:
    def move(_lead: str, r: Receipt, _receipts: Mapping[str, Receipt]) -> Receipt | None:
        if r.terminal or (r.cancelling and r.leased(now)):
            return None
        return r.settled() if r.cancelling else r.cancel(now)  # its delivery died: end it

    return move


def _replay(now: datetime, state: str) -> Move:
    def move(_lead: str, r: Receipt, lead: Mapping[str, Receipt]) -> Receipt | None:
        # What an operator may try again: a failed action, and the email a failed booking
        # closed when that booking is tried again (`flow.reopenable`); in a paused run or lead,
        # it stays paused.
        if not flow.reopenable(r.action, lead, resubmitted=False):
            return None
        paused = state == "paused" or any(other.paused for other in lead.values())
        return r.reopen().pause() if paused else r.reopen()

    return move


_MOVES: dict[str, Callable[[datetime, str], Move]] = {
    "pause": _pause,
    "cancel": _cancel,
    "replay": _replay,
    "undo": _undo,
}


def _in_lanes(
    pace: Pace, actions: list[tuple[str, str, str]], now: datetime, steered: Steered
) -> dict[tuple[str, str], tuple[str, str, datetime]]:
    """Starts for `actions` ((lead, action, host), in order) in their hosts' lanes from now,
    reserved once (one write a lane): (lead, action) -> (host, API, start)."""
    wanted: dict[str, Counter[str]] = {}
    for _, action, host in actions:
        wanted.setdefault(host, Counter())[ACTION_API[action]] += 1
    for host, counts in wanted.items():
        steered.reserved[host] = reserve_starts(pace.lanes, pace.limits, host, counts, now)[0]
    taken: Counter[tuple[str, str]] = Counter()
    planned: dict[tuple[str, str], tuple[str, str, datetime]] = {}
    for lead_id, action, host in actions:
        api = ACTION_API[action]
        starts = steered.reserved[host].get(api) or [now]
        planned[(lead_id, action)] = (host, api, starts[min(taken[(host, api)], len(starts) - 1)])
        taken[(host, api)] += 1
    return planned


def _resume_plan(
    store: Store,
    pace: Pace,
    run_id: str,
    batch: list[tuple[str, dict[str, Any]]],
    now: datetime,
    steered: Steered,
) -> Move:
    """The move of a resume: each paused receipt planned anew in its host's lane from now, in
    lead order (starts reserved once for the batch, one write a lane)."""
    paused: list[tuple[str, str, str]] = []  # (lead, action, host), in lead order
    for lead_id, lead in batch:
        host = store.lead_settings(run_id, lead).host.senderEmail
        for action, facets in sorted((lead.get("receiptFacets") or {}).items()):
            if "paused" in facets:
                paused.append((lead_id, action, host))
    planned = _in_lanes(pace, paused, now, steered)

    def move(lead_id: str, r: Receipt, _receipts: Mapping[str, Receipt]) -> Receipt | None:
        if not r.held:
            return None
        plan = planned.get((lead_id, r.action))
        if plan is None:  # paused since the page was read: planned from now
            return r.resume()
        host, api, start = plan
        return r.resume().planned_at(host, api, start, now)

    return move


def _eta(store: Store, run: dict[str, Any], steered: Steered, now: datetime) -> dict[str, str]:
    """When each host's leads of the run are expected to be done: from the starts a resume
    reserved, else as diagnostics brings it up to date."""
    found = {host: eta_of(reserved, now) for host, reserved in steered.reserved.items()}
    return {**funnel(store, run["runId"], run, now)["eta"], **found}
