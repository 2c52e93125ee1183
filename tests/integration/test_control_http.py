"""`POST {CONTROL_URL}` refuses what it must, and a refusal changes nothing (docs/api.md,
"Control"): no token, a bad token, another uid's run, no such run, a malformed command or id, a
lead not of the run, another method, an oversized body."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from leadrun.client import LeadRunClient
from tests.support import free_leads, request, unique

pytestmark = pytest.mark.integration

# Listed in the session stack's LEADRUN_OPERATOR_UIDS (tests/conftest.py).
OPERATOR_UID = "ops-steer"


@pytest.fixture
def settled_run(client: LeadRunClient) -> str:
    """A small live run of alice's, settled: any command that got through would show."""
    run_id = unique("hostile")
    answer = client.schedule(request(run_id, free_leads(2, prefix="h")))
    assert answer.status_code == 202, answer.text
    client.wait_settled(run_id, timeout_s=120)
    return run_id


def snapshot(client: LeadRunClient, run_id: str) -> tuple[Any, ...]:
    funnel = client.diagnostics(run_id).json()
    return funnel["state"], funnel["counts"], client.receipts(run_id)


def post(client: LeadRunClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return requests.post(client.env["CONTROL_URL"], data=data, headers=headers, timeout=60)


Refusal = Callable[[LeadRunClient, str], requests.Response]

REFUSALS: dict[str, tuple[Refusal, int, str]] = {
    "no token": (
        lambda c, run: post(c, {"runId": run, "command": "pause"}),
        401,
        "unauthenticated",
    ),
    "bad token": (
        lambda c, run: post(
            c, {"runId": run, "command": "pause"}, {"Authorization": "Bearer not.a.token"}
        ),
        401,
        "unauthenticated",
    ),
    "token of another project's shape": (
        lambda c, run: post(c, {"runId": run, "command": "pause"}, {"Authorization": "Basic x"}),
        401,
        "unauthenticated",
    ),
    "another uid's run": (
        lambda c, run: c.control(run, "pause", uid="mallory"),
        403,
        "forbidden",
    ),
    "no such run": (lambda c, run: c.control(unique("none"), "pause"), 404, "not_found"),
    "unknown command": (lambda c, run: c.control(run, "explode"), 400, "invalid_request"),
    "a preview of another command": (
        lambda c, run: c.control(run, "pause", preview=True),
        400,
        "invalid_request",
    ),
    "malformed run id": (lambda c, run: c.control("bad id!", "pause"), 400, "invalid_request"),
    "malformed lead id": (
        lambda c, run: c.control(run, "pause", ["h-000", "bad/id"]),
        400,
        "invalid_request",
    ),
    "not a lead of the run": (
        lambda c, run: c.control(run, "pause", ["h-000", "someone-else"]),
        400,
        "invalid_request",
    ),
    "empty lead list": (lambda c, run: c.control(run, "pause", []), 400, "invalid_request"),
    "unknown field": (
        lambda c, run: post(c, {"runId": run, "command": "pause", "force": True}, c.auth()),
        400,
        "invalid_request",
    ),
    "not JSON": (lambda c, run: post(c, b"pause it", c.auth()), 400, "invalid_request"),
    "GET": (
        lambda c, run: requests.get(
            c.env["CONTROL_URL"], params={"runId": run}, headers=c.auth(), timeout=60
        ),
        405,
        "method_not_allowed",
    ),
    "over 1 MiB": (
        lambda c, run: post(
            c, {"runId": run, "command": "pause", "pad": "x" * (1024 * 1024)}, c.auth()
        ),
        413,
        "payload_too_large",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_command_changes_nothing(
    case: str, client: LeadRunClient, settled_run: str
) -> None:
    send, status, code = REFUSALS[case]
    before = snapshot(client, settled_run)
    answer = send(client, settled_run)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert snapshot(client, settled_run) == before


def test_the_owner_steers_and_the_answer_has_every_field(
    client: LeadRunClient, settled_run: str
) -> None:
    answer = client.control(settled_run, "pause", ["h-001"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"runId", "command", "state", "affected", "inFlight", "eta"}
    # A settled run has nothing left to hold: pausing a lead leaves the run active.
    assert (body["state"], body["affected"], body["inFlight"]) == ("active", 0, [])
    assert client.diagnostics(settled_run).json()["state"] == "active"


def test_a_listed_operator_reads_any_run_and_nobody_else_does(
    client: LeadRunClient, settled_run: str
) -> None:
    assert client.diagnostics(settled_run, uid=OPERATOR_UID).status_code == 200
    leads = client.leads(settled_run, uid=OPERATOR_UID)
    assert leads.status_code == 200 and len(leads.json()["leads"]) == 2
    assert client.diagnostics(settled_run, uid="mallory").status_code == 403
    assert client.leads(settled_run, uid="mallory").status_code == 403


def test_a_listed_operator_steers_any_run(client: LeadRunClient, settled_run: str) -> None:
    answer = client.control(settled_run, "pause", uid=OPERATOR_UID)
    assert answer.status_code == 200, answer.text
    assert client.diagnostics(settled_run).json()["state"] == "paused"
    assert client.control(settled_run, "resume", uid=OPERATOR_UID).json()["state"] == "active"
