"""`{DIAGNOSTICS_URL}`: the funnel of a run (GET) and the lead engine's own stages (POST)."""

from __future__ import annotations

from datetime import UTC, datetime
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
from common.handlers.intake import HttpResult, error
from common.models import Id, field_errors, not_reserved, parse_time, stamp
from common.pacing import LEAD_SECONDS
from common.store import Store

_RUN_ID: TypeAdapter[str] = TypeAdapter(Id)


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


def _owned_run(store: Store, run_id: str, uid: str) -> dict[str, Any] | HttpResult:
    run = store.get_run(run_id)
    if run is None:
        return error(404, "not_found", f"no run {run_id}")
    if run.get("ownerUid") != uid:
        return error(403, "forbidden", "this run belongs to another user")
    return run


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None


def funnel(store: Store, run_id: str, run: dict[str, Any]) -> dict[str, Any]:
    """The diagnostics document of a run: counters summed over shards, plus client stages."""
    folded = store.counters(run_id)
    stages = store.client_stages(run_id)
    counts = {"sourced": int(stages.get("sourced", 0)), "filtered": int(stages.get("filtered", 0))}
    counts.update(folded["counts"])
    reasons = dict(folded["reasons"])
    waiting_until = store.waiting_until(run_id) if counts.get("waiting") else None
    now = datetime.now(UTC)
    finish = now
    if counts.get("pending"):
        # Brought up to date: the latest start a waiting lead has, and its own time after it.
        latest = parse_time(waiting_until) if waiting_until else now
        finish = max(latest, now) + LEAD_SECONDS
    eta = {host: stamp(finish) for host in store.run_hosts(run_id)}
    answer = Funnel(
        runId=run_id,
        dryRun=bool(run.get("dryRun")),
        counts=Counts.model_validate(counts),
        reasons=reasons,
        waitingUntil=waiting_until,
        eta=eta,
        filterReasons=dict(stages.get("filterReasons") or {}),
        updatedAt=_iso(run.get("updatedAt")),
    )
    return answer.model_dump(mode="json")


def handle_diagnostics_get(store: Store, uid: str, args: dict[str, str]) -> HttpResult:
    """`GET ?runId=R`, owner only."""
    try:
        run_id = _RUN_ID.validate_python(args.get("runId", ""))
    except ValidationError as exc:
        return error(
            400,
            "invalid_request",
            "runId is required",
            [{"field": "runId", "message": exc.errors(include_url=False)[0]["msg"]}],
        )
    run = _owned_run(store, run_id, uid)
    if isinstance(run, HttpResult):
        return run
    return HttpResult(200, funnel(store, run_id, run))


def handle_diagnostics_post(store: Store, uid: str, body: bytes) -> HttpResult:
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
    return HttpResult(200, funnel(store, stages.runId, run))
