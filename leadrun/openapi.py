"""`docs/openapi.json` from the models: `python -m leadrun.openapi [--check]` (`make openapi`).

An endpoint is one `Endpoint` entry in `ENDPOINTS`, naming the models of its request and its
answers; error answers are shared (`ERRORS`). The output is deterministic (sorted keys, two
spaces, a trailing newline), so the file in the repository changes only when a model does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from common.api_schema import (
    ControlAnswer,
    ErrorBody,
    ErrorCode,
    Funnel,
    LeadsPage,
    LeadsQuery,
    RunQuery,
    ScheduleAccepted,
)
from common.handlers.control import ControlRequest
from common.handlers.diagnostics import ClientStages
from common.models import ScheduleRequest

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "docs" / "openapi.json"
OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.2"
SCHEMAS = "#/components/schemas/"
SECURITY = "firebaseIdToken"

Method = Literal["get", "post"]


@dataclass(frozen=True)
class ErrorAnswer:
    """One error status: its codes, and what it means on any endpoint that answers it."""

    name: str
    codes: tuple[ErrorCode, ...]
    description: str
    with_details: bool = False
    headers: dict[str, str] = field(default_factory=dict)


ERRORS: dict[int, ErrorAnswer] = {
    400: ErrorAnswer(
        "InvalidRequest",
        ("invalid_request",),
        "The request is malformed: nothing was written, nothing was published.",
        with_details=True,
    ),
    401: ErrorAnswer(
        "Unauthenticated",
        ("unauthenticated",),
        "The bearer token is missing, malformed, expired or badly signed.",
        headers={"WWW-Authenticate": 'Always `Bearer error="invalid_token"`.'},
    ),
    403: ErrorAnswer(
        "Forbidden",
        ("forbidden",),
        "The run belongs to another user, the host is not allowed, or the origin is not.",
    ),
    404: ErrorAnswer("NotFound", ("not_found",), "There is no such run."),
    405: ErrorAnswer(
        "MethodNotAllowed",
        ("method_not_allowed",),
        "Answered to any other method on this URL.",
        headers={"Allow": "The methods this URL answers."},
    ),
    409: ErrorAnswer(
        "Conflict",
        ("run_mode_conflict", "run_cancelled"),
        "The run exists with the other `dryRun` value, or was cancelled.",
    ),
    413: ErrorAnswer(
        "PayloadTooLarge",
        ("payload_too_large",),
        "The body is over 1 MiB.",
        with_details=True,
    ),
    500: ErrorAnswer("Internal", ("internal",), "An unexpected failure; nothing was lost, retry."),
    503: ErrorAnswer(
        "Unavailable",
        ("unavailable",),
        "Tokens cannot be checked right now, or the request could not be completed; "
        "send the same request again (it never repeats a side effect).",
    ),
}


@dataclass(frozen=True)
class Operation:
    """One method of an endpoint: its input model, its success answer, its error statuses."""

    method: Method
    name: str  # the operationId: what a generated client calls it
    summary: str
    status: int
    answer: type[BaseModel]
    answer_description: str
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None


@dataclass(frozen=True)
class Endpoint:
    """One HTTP function's URL and its methods. `key` names the path in the document (unique
    across functions); `url` is where it is served, as a template of stack.env keys
    (`{DIAGNOSTICS_URL}`, or `{DIAGNOSTICS_URL}leads` for a route below a function's root)."""

    key: str
    url: str
    description: str
    operations: tuple[Operation, ...]


# Every request is authenticated before it is read: 401 (and 503 when keys cannot be fetched)
# and 405 can answer anything.
_ALWAYS = (401, 405, 500, 503)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        key="/schedule",
        url="{SCHEDULE_URL}",
        description="Start or extend a lead run.",
        operations=(
            Operation(
                method="post",
                name="schedule",
                summary="Start or extend a lead run",
                body=ScheduleRequest,
                status=202,
                answer=ScheduleAccepted,
                answer_description="Every lead is recorded with its receipts; accepted leads' "
                "actions are queued. Sending the same request again repeats no side effect.",
                errors=(400, 403, 409, 413, *_ALWAYS),
            ),
        ),
    ),
    Endpoint(
        key="/control",
        url="{CONTROL_URL}",
        description="Steer a run: pause, resume, cancel, replay or undo it, or some of its leads.",
        operations=(
            Operation(
                method="post",
                name="control",
                summary="Pause, resume, cancel, replay or undo a run or listed leads",
                body=ControlRequest,
                status=200,
                answer=ControlAnswer,
                answer_description="The brake holds once this is answered: no affected action "
                "makes a Google call except those in `inFlight`. Repeating a command changes "
                "nothing more.",
                errors=(400, 403, 404, 409, 413, *_ALWAYS),
            ),
        ),
    ),
    Endpoint(
        key="/leads",
        url="{DIAGNOSTICS_URL}leads",
        description="A run's leads with their receipts, a page at a time (owner only).",
        operations=(
            Operation(
                method="get",
                name="getLeads",
                summary="One page of a run's leads",
                query=LeadsQuery,
                status=200,
                answer=LeadsPage,
                answer_description="Following `nextPageToken` to null lists every matching lead "
                "exactly once; a page's cost does not grow with the run.",
                errors=(400, 403, 404, *_ALWAYS),
            ),
        ),
    ),
    Endpoint(
        key="/diagnostics",
        url="{DIAGNOSTICS_URL}",
        description="The funnel of a run (owner only), and the lead engine's own stages.",
        operations=(
            Operation(
                method="get",
                name="getDiagnostics",
                summary="The funnel of a run",
                query=RunQuery,
                status=200,
                answer=Funnel,
                answer_description="Read from counters: the cost does not grow with the run.",
                errors=(400, 403, 404, *_ALWAYS),
            ),
            Operation(
                method="post",
                name="postClientStages",
                summary="Record the lead engine's sourced and filtered stages",
                body=ClientStages,
                status=200,
                answer=Funnel,
                answer_description="Recorded (last write wins); the funnel with them.",
                errors=(400, 403, 404, 413, *_ALWAYS),
            ),
        ),
    ),
)

DESCRIPTION = """\
Each HTTP function is served at the root of its own URL: `SCHEDULE_URL`, `CONTROL_URL`,
`DIAGNOSTICS_URL`
(in `.leadrun/stack.env` on the local stack; `terraform output function_urls` once deployed).
One OpenAPI document has one set of paths, so a path here is keyed by the function's name and
its `x-url` says where it is served, in terms of those variables: `POST /schedule` is
`POST {SCHEDULE_URL}`.

Every request carries `Authorization: Bearer <Firebase ID token>`. Every answer is JSON; an error
is `{"error": {"code", "message", "details"?}}`. Browsers' CORS preflights (`OPTIONS`, no token)
are answered 204 for an allowed origin, else 403.
"""


class _Schema(GenerateJsonSchema):
    # A field's title only repeats its name.
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the document refers to: requests as read, answers as written."""
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorBody, "serialization"): None}
    for endpoint in ENDPOINTS:
        for op in endpoint.operations:
            if op.body is not None:
                found[(op.body, "validation")] = None
            found[(op.answer, "serialization")] = None
    return list(found)


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


def _error_response(answer: ErrorAnswer) -> dict[str, Any]:
    narrowed: dict[str, Any] = {"properties": {"code": {"enum": list(answer.codes)}}}
    if answer.with_details:
        narrowed["required"] = ["details"]
    response: dict[str, Any] = {
        "description": answer.description,
        "content": {
            "application/json": {
                "schema": {"$ref": SCHEMAS + "ErrorBody", "properties": {"error": narrowed}}
            }
        },
    }
    if answer.headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in answer.headers.items()
        }
    return response


def _parameters(query: type[BaseModel]) -> list[dict[str, Any]]:
    schema = query.model_json_schema(schema_generator=_Schema)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def _operation(op: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]) -> Any:
    responses: dict[str, Any] = {
        str(op.status): {
            "description": op.answer_description,
            "content": _json(refs[(op.answer, "serialization")]["$ref"]),
        }
    }
    for status in op.errors:
        responses[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status].name}"}
    out: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "responses": responses}
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": _json(refs[(op.body, "validation")]["$ref"]),
        }
    if op.query is not None:
        out["parameters"] = _parameters(op.query)
    return out


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every HTTP function."""
    refs, defs = models_json_schema(
        _models(), ref_template=SCHEMAS + "{model}", schema_generator=_Schema
    )
    used = {status for endpoint in ENDPOINTS for op in endpoint.operations for status in op.errors}
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        item: dict[str, Any] = {"description": endpoint.description, "x-url": endpoint.url}
        for op in endpoint.operations:
            item[op.method] = _operation(op, refs)
        paths[endpoint.key] = item
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Lead Run Actions", "version": API_VERSION, "description": DESCRIPTION},
        "paths": paths,
        "security": [{SECURITY: []}],
        "components": {
            "schemas": defs.get("$defs", {}),
            "responses": {
                ERRORS[status].name: _error_response(ERRORS[status]) for status in sorted(used)
            },
            "securitySchemes": {
                SECURITY: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A Firebase ID token; its `sub` is the uid that owns runs.",
                }
            },
        },
    }


def render(spec: dict[str, Any]) -> str:
    """The document as written to disk: byte for byte the same for the same models."""
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the document, or with `--check` only say whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SPEC_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render(build_spec())
    current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    if args.check:
        if current != text:
            print(f"{args.out} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
