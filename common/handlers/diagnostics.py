"""`{DIAGNOSTICS_URL}`: the funnel of a run (GET) and the lead engine's own stages (POST)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from common.api_schema import Counts, Funnel
from common.counts import WAITING
from common.handlers.intake import HttpResult, error
from common.lead_pages import LeadFilter, page_token, public_receipt, token_after
from common.models import Id, field_errors, not_reserved, parse_time, stamp
from common.pacing import LEAD_SECONDS
from common.runs import run_state
from common.store import Store

_RUN_ID: TypeAdapter[str] = TypeAdapter(Id)
# Every receipt status (docs/api.md, "Receipts"): filtering on one no receipt has is no error.
STATUSES = ("pending", "done", "simulated", "rejected", "failed", "cancelled", "reverted")
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 50, 200
# A reason no receipt can have (no code looks like it) matches nothing without a query.
_REASON = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_YES = ("1", "true")


class ClientStages(BaseModel):
    """`POST {DIAGNOSTICS_URL}`: the lead engine's own stages of a run (last write wins)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    runId: Id
    sourced: int = Field(ge=0, le=10_000_000)
    filtered: int = Field(ge=0, le=10_000_000)
    filterReasons: dict[
        Annotated[
            str,
            StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
            AfterValidator(not_reserved),
        ],
        Annotated[int, Field(ge=0, le=10_000_000)],
    ] = Field(default_factory=dict, max_length=50)


def _owned_run(
    store: Store, run_id: str, uid: str, operators: frozenset[str] = frozenset()
) -> dict[str, Any] | HttpResult:
    """The run if `uid` may read it: its owner, or one of `operators` (LEADRUN_OPERATOR_UIDS)."""
    run = store.get_run(run_id)
    if run is None:
        return error(404, "not_found", f"no run {run_id}")
    if run.get("ownerUid") != uid and uid not in operators:
        return error(403, "forbidden", "this run belongs to another user")
    return run


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None


def funnel(store: Store, run_id: str, run: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The diagnostics document of a run: counters summed over shards, plus client stages."""
    folded = store.counters(run_id)
    stages = store.client_stages(run_id)
    counts = {"sourced": int(stages.get("sourced", 0)), "filtered": int(stages.get("filtered", 0))}
    counts.update(folded["counts"])
    reasons = dict(folded["reasons"])
    waiting_until = store.waiting_until(run_id) if counts.get(WAITING) else None
    finish = now
    if counts.get("pending"):
        # Brought up to date: the latest start a waiting lead has, and its own time after it.
        latest = parse_time(waiting_until) if waiting_until else now
        finish = max(latest, now) + LEAD_SECONDS
    eta = {host: stamp(finish) for host in store.run_hosts(run_id)}
    answer = Funnel(
        runId=run_id,
        dryRun=bool(run.get("dryRun")),
        state=run_state(run),
        counts=Counts.model_validate(counts),
        reasons=reasons,
        waitingUntil=waiting_until,
        eta=eta,
        filterReasons=dict(stages.get("filterReasons") or {}),
        updatedAt=_iso(run.get("updatedAt")),
    )
    return answer.model_dump(mode="json")


def _run_id(args: dict[str, str]) -> str | HttpResult:
    try:
        return _RUN_ID.validate_python(args.get("runId", ""))
    except ValidationError as exc:
        return error(
            400,
            "invalid_request",
            "runId is required",
            [{"field": "runId", "message": exc.errors(include_url=False)[0]["msg"]}],
        )


def handle_diagnostics_get(
    store: Store,
    uid: str,
    args: dict[str, str],
    now: datetime,
    operators: frozenset[str] = frozenset(),
) -> HttpResult:
    """`GET ?runId=R`, its owner or an operator."""
    run_id = _run_id(args)
    if isinstance(run_id, HttpResult):
        return run_id
    run = _owned_run(store, run_id, uid, operators)
    if isinstance(run, HttpResult):
        return run
    return HttpResult(200, funnel(store, run_id, run, now))


def handle_diagnostics_post(store: Store, uid: str, body: bytes, now: datetime) -> HttpResult:
    """Record the lead engine's sourced/filtered stages (last write wins)."""
    try:
        stages = ClientStages.model_validate_json(body)
    except ValidationError as exc:
        return error(
            400,
            "invalid_request",
            "the request is not valid",
            [d.model_dump() for d in field_errors(exc)],
        )
    run = _owned_run(store, stages.runId, uid)
    if isinstance(run, HttpResult):
        return run
    store.set_client_stages(stages.runId, stages.model_dump(exclude={"runId"}))
    return HttpResult(200, funnel(store, stages.runId, run, now))


@dataclass(frozen=True)
class LeadsQuery:
    """A valid `GET /leads` request."""

    run_id: str
    page_size: int
    after: str | None
    filters: LeadFilter
    matches_nothing: bool = False


def _bad(field_name: str, message: str) -> HttpResult:
    return error(
        400,
        "invalid_request",
        f"{field_name}: {message}",
        [{"field": field_name, "message": message}],
    )


def _flag(args: dict[str, str], name: str) -> bool | HttpResult:
    value = args.get(name)
    if value is None or value == "":
        return False
    if value.lower() in _YES:
        return True
    return _bad(name, "must be 1 (or left out)")


def parse_leads_query(args: dict[str, str]) -> LeadsQuery | HttpResult:
    """The parameters of `GET /leads` (docs/api.md, "Diagnostics"), or the 400 that refuses them."""
    run_id = _run_id(args)
    if isinstance(run_id, HttpResult):
        return run_id
    size_text = args.get("pageSize") or str(PAGE_SIZE_DEFAULT)
    if not size_text.isascii() or not size_text.isdigit() or len(size_text) > 4:
        return _bad("pageSize", f"must be a whole number from 1 to {PAGE_SIZE_MAX}")
    page_size = int(size_text)
    if not 1 <= page_size <= PAGE_SIZE_MAX:
        return _bad("pageSize", f"must be a whole number from 1 to {PAGE_SIZE_MAX}")
    after = None
    if token := args.get("pageToken"):
        try:
            after = token_after(token)
        except ValueError:
            return _bad("pageToken", "not a token this endpoint gave")
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        return _bad("status", f"must be one of {', '.join(STATUSES)}")
    waiting, paused = _flag(args, WAITING), _flag(args, "paused")
    if isinstance(waiting, HttpResult):
        return waiting
    if isinstance(paused, HttpResult):
        return paused
    reason = args.get("reason") or None
    filters = LeadFilter(status=status, reason=reason, waiting=waiting, paused=paused)
    nothing = reason is not None and not _REASON.match(reason)
    return LeadsQuery(run_id, page_size, after, filters, matches_nothing=nothing)


def lead_entry(lead_id: str, lead: dict[str, Any], receipts: dict[str, Any]) -> dict[str, Any]:
    """One lead of a `/leads` page: who it is and its receipts' public fields."""
    submitted = lead.get("lead") or {}
    return {
        "leadDocId": lead_id,
        "email": submitted.get("email"),
        "name": submitted.get("name"),
        "company": submitted.get("company"),
        "timeZone": submitted.get("timeZone"),
        "receipts": {action: public_receipt(r) for action, r in receipts.items()},
    }


def handle_leads_get(
    store: Store, uid: str, args: dict[str, str], operators: frozenset[str] = frozenset()
) -> HttpResult:
    """`GET /leads?runId=R`, its owner or an operator: one page of the run's leads in
    `leadDocId` order."""
    query = parse_leads_query(args)
    if isinstance(query, HttpResult):
        return query
    run = _owned_run(store, query.run_id, uid, operators)
    if isinstance(run, HttpResult):
        return run
    if query.matches_nothing:
        return HttpResult(200, {"leads": [], "nextPageToken": None})
    rows, more = store.lead_page(
        query.run_id, query.filters.equalities(), query.after, query.page_size
    )
    leads = [lead_entry(lead_id, lead, receipts) for lead_id, lead, receipts in rows]
    token = page_token(rows[-1][0]) if more and rows else None
    return HttpResult(200, {"leads": leads, "nextPageToken": token})
