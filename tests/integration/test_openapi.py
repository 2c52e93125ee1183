"""Real answers of the local stack against `docs/openapi.json`: each status a function documents
(but 500 and 503, which a healthy stack never gives) is provoked once, and its body checked
against the schema of that path, method and status. What keeps the 202, built as a dict, and
the models in agreement."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from leadrun.client import LeadRunClient
from tests.openapi_check import check_answer, spec
from tests.support import free_leads, lead, request, unique

pytestmark = pytest.mark.integration

# A healthy stack cannot be made to answer these.
UNPROVOKED = {500, 503}


@dataclass(frozen=True)
class Run:
    """alice's dry run, made once for the module: what the other cases ask about."""

    client: LeadRunClient
    run_id: str
    body: dict[str, Any]
    accepted: requests.Response

    def url(self, path: str) -> str:
        """The function's URL, from the document's `x-url` and the stack's env."""
        return str(spec()["paths"][path]["x-url"]).format(**self.client.env)

    def send(
        self, method: str, path: str, uid: str | None = "alice", **kwargs: Any
    ) -> requests.Response:
        """`method` on the function of `path` as `uid` (None: no token)."""
        headers = dict(kwargs.pop("headers", {}))
        if uid is not None:
            headers.update(self.client.auth(uid))
        return self.client.session.request(
            method, self.url(path), headers=headers, timeout=60, **kwargs
        )


@pytest.fixture(scope="module")
def run(stack_env: dict[str, str]) -> Iterator[Run]:
    client = LeadRunClient(stack_env, uid="alice")
    run_id = unique("oa")
    # A dry run makes nothing in the sandbox; the lead without an address is rejected.
    body = request(run_id, [*free_leads(1), lead("lead-nomail", [], email=None)], dryRun=True)
    yield Run(client, run_id, body, client.schedule(body))


@dataclass(frozen=True)
class Case:
    """One provoked answer: the documented operation it is checked against, and how to get it."""

    path: str
    method: str
    status: int
    send: Callable[[Run], requests.Response]


def _schedule(run: Run, body: Any, uid: str | None = "alice", **kwargs: Any) -> requests.Response:
    return run.send("POST", "/schedule", uid, json=body, **kwargs)


def _stages(run: Run, body: Any, uid: str | None = "alice") -> requests.Response:
    return run.send("POST", "/diagnostics", uid, json=body)


def _funnel(run: Run, run_id: str | None, uid: str | None = "alice", **kw: Any) -> Any:
    return run.send("GET", "/diagnostics", uid, params={"runId": run_id} if run_id else {}, **kw)


def _control(run: Run, body: Any, uid: str | None = "alice") -> requests.Response:
    return run.send("POST", "/control", uid, json=body)


def _cancelled(run: Run) -> requests.Response:
    """A command for a run cancelled before it: 409."""
    run_id = unique("oa-cancelled")
    run.client.schedule(request(run_id, free_leads(1), dryRun=True)).raise_for_status()
    _control(run, {"runId": run_id, "command": "cancel"}).raise_for_status()
    return _control(run, {"runId": run_id, "command": "pause"})


def _leads(run: Run, params: dict[str, Any], uid: str | None = "alice") -> requests.Response:
    return run.send("GET", "/leads", uid, params=params)


_BIG = b'{"runId": "' + b"x" * (1024 * 1024) + b'"}'
_JSON = {"Content-Type": "application/json"}

CASES: dict[str, Case] = {
    "schedule-202": Case("/schedule", "post", 202, lambda r: r.accepted),
    "schedule-400": Case("/schedule", "post", 400, lambda r: _schedule(r, {"runId": "no spaces"})),
    "schedule-401": Case("/schedule", "post", 401, lambda r: _schedule(r, r.body, uid=None)),
    "schedule-403": Case("/schedule", "post", 403, lambda r: _schedule(r, r.body, uid="bob")),
    "schedule-405": Case("/schedule", "post", 405, lambda r: r.send("GET", "/schedule")),
    "schedule-409": Case(
        "/schedule", "post", 409, lambda r: _schedule(r, {**r.body, "dryRun": False})
    ),
    "schedule-413": Case(
        "/schedule", "post", 413, lambda r: r.send("POST", "/schedule", data=_BIG, headers=_JSON)
    ),
    "funnel-200": Case("/diagnostics", "get", 200, lambda r: _funnel(r, r.run_id)),
    "funnel-400": Case("/diagnostics", "get", 400, lambda r: _funnel(r, None)),
    "funnel-401": Case(
        "/diagnostics",
        "get",
        401,
        lambda r: _funnel(r, r.run_id, None, headers={"Authorization": "Bearer not-a-token"}),
    ),
    "funnel-403": Case("/diagnostics", "get", 403, lambda r: _funnel(r, r.run_id, "bob")),
    "funnel-404": Case("/diagnostics", "get", 404, lambda r: _funnel(r, unique("nothing"))),
    "funnel-405": Case("/diagnostics", "get", 405, lambda r: r.send("PUT", "/diagnostics")),
    "stages-200": Case(
        "/diagnostics",
        "post",
        200,
        lambda r: _stages(r, {"runId": r.run_id, "sourced": 5, "filtered": 2}),
    ),
    "stages-400": Case(
        "/diagnostics",
        "post",
        400,
        lambda r: _stages(r, {"runId": r.run_id, "sourced": -1, "filtered": 0}),
    ),
    "stages-401": Case(
        "/diagnostics", "post", 401, lambda r: _stages(r, {"runId": r.run_id}, uid=None)
    ),
    "stages-403": Case(
        "/diagnostics",
        "post",
        403,
        lambda r: _stages(r, {"runId": r.run_id, "sourced": 1, "filtered": 0}, uid="bob"),
    ),
    "stages-404": Case(
        "/diagnostics",
        "post",
        404,
        lambda r: _stages(r, {"runId": unique("nothing"), "sourced": 1, "filtered": 0}),
    ),
    "stages-405": Case("/diagnostics", "post", 405, lambda r: r.send("DELETE", "/diagnostics")),
    "stages-413": Case(
        "/diagnostics",
        "post",
        413,
        lambda r: r.send("POST", "/diagnostics", data=_BIG, headers=_JSON),
    ),
    "control-200": Case(
        "/control", "post", 200, lambda r: _control(r, {"runId": r.run_id, "command": "replay"})
    ),
    "control-200-undo": Case(
        "/control",
        "post",
        200,
        lambda r: _control(r, {"runId": r.run_id, "command": "undo", "preview": True}),
    ),
    "control-400": Case(
        "/control", "post", 400, lambda r: _control(r, {"runId": r.run_id, "command": "explode"})
    ),
    "control-401": Case(
        "/control",
        "post",
        401,
        lambda r: _control(r, {"runId": r.run_id, "command": "pause"}, uid=None),
    ),
    "control-403": Case(
        "/control",
        "post",
        403,
        lambda r: _control(r, {"runId": r.run_id, "command": "pause"}, uid="bob"),
    ),
    "control-404": Case(
        "/control",
        "post",
        404,
        lambda r: _control(r, {"runId": unique("nothing"), "command": "pause"}),
    ),
    "control-405": Case("/control", "post", 405, lambda r: r.send("GET", "/control")),
    "control-409": Case("/control", "post", 409, _cancelled),
    "control-413": Case(
        "/control", "post", 413, lambda r: r.send("POST", "/control", data=_BIG, headers=_JSON)
    ),
    "leads-200": Case("/leads", "get", 200, lambda r: _leads(r, {"runId": r.run_id})),
    "leads-400": Case(
        "/leads", "get", 400, lambda r: _leads(r, {"runId": r.run_id, "pageSize": "0"})
    ),
    "leads-401": Case("/leads", "get", 401, lambda r: _leads(r, {"runId": r.run_id}, uid=None)),
    "leads-403": Case("/leads", "get", 403, lambda r: _leads(r, {"runId": r.run_id}, uid="bob")),
    "leads-404": Case("/leads", "get", 404, lambda r: _leads(r, {"runId": unique("nothing")})),
    "leads-405": Case("/leads", "get", 405, lambda r: r.send("POST", "/leads", json={})),
}


def test_every_documented_answer_is_provoked_here() -> None:
    documented = {
        (path, method, int(status))
        for path, item in spec()["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete", "patch")
        for status in operation["responses"]
        if int(status) not in UNPROVOKED
    }
    provoked = {(case.path, case.method, case.status) for case in CASES.values()}
    assert documented == provoked


@pytest.mark.parametrize("name", list(CASES))
def test_the_answer_matches_the_document(run: Run, name: str) -> None:
    case = CASES[name]
    answer = case.send(run)
    assert answer.status_code == case.status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    check_answer(case.path, case.method, case.status, answer.json(), answer.headers)


def test_the_accepted_run_is_the_one_the_funnel_describes(run: Run) -> None:
    accepted = run.accepted.json()
    assert accepted["accepted"] == [{"leadDocId": "lead-000"}]
    assert accepted["rejected"] == [{"leadDocId": "lead-nomail", "reason": "no_email"}]
    funnel = _funnel(run, run.run_id).json()
    assert funnel["runId"] == run.run_id and funnel["dryRun"] is True
    assert set(funnel["eta"]) == set(accepted["eta"]) == {run.body["host"]["senderEmail"]}
    assert funnel["reasons"] == {"no_email": 1}
