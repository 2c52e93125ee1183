"""CORS for the web app, and the host allowlist, through functions-framework."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from common import bootstrap
from common.config import settings_from
from common.handlers.intake import handle_schedule
from tests.functions.conftest import ALLOWED_ORIGIN, PublishProbe, Tokens, run_traces
from tests.support import free_leads, request, unique

pytestmark = pytest.mark.integration

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def _no_wildcard(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        if name.lower().startswith("access-control-"):
            assert "*" not in value, (name, value)


@pytest.mark.parametrize("name", ["schedule", "diagnostics"])
def test_preflight_from_the_web_app_is_allowed(
    name: str, schedule_fn: FlaskClient, diagnostics_fn: FlaskClient
) -> None:
    fn = {"schedule": schedule_fn, "diagnostics": diagnostics_fn}[name]
    method = "POST" if name == "schedule" else "GET"
    answer = fn.options(
        "/",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert method in answer.headers["Access-Control-Allow-Methods"]
    allowed_headers = answer.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "Origin" in answer.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "Access-Control-Expose-Headers" not in answer.headers
    _no_wildcard(dict(answer.headers))


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
        "*",
    ],
)
def test_preflight_from_any_other_origin_is_refused(origin: str, schedule_fn: FlaskClient) -> None:
    answer = schedule_fn.options("/", headers={"Origin": origin, **PREFLIGHT})
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Methods" not in answer.headers


def test_preflight_for_a_method_or_header_we_do_not_serve_is_refused(
    schedule_fn: FlaskClient,
) -> None:
    for extra in (
        {"Access-Control-Request-Method": "DELETE"},
        {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-admin"},
        {},
    ):
        headers = {"Origin": ALLOWED_ORIGIN, **extra}
        answer = schedule_fn.options("/", headers=headers)
        assert answer.status_code == 403, extra
        assert "Access-Control-Allow-Methods" not in answer.headers


def test_requests_carry_cors_headers_only_for_the_web_app(
    schedule_fn: FlaskClient, tokens: Tokens, db: firestore.Client, probe: PublishProbe
) -> None:
    body = request(unique("cors"), free_leads(1), dryRun=True)
    ok = schedule_fn.post("/", json=body, headers={**tokens.bearer(), "Origin": ALLOWED_ORIGIN})
    assert ok.status_code == 202
    assert ok.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    _no_wildcard(dict(ok.headers))

    other = request(unique("cors"), free_leads(1), dryRun=True)
    refused = schedule_fn.post(
        "/", json=other, headers={**tokens.bearer(), "Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert run_traces(db, other["runId"]) == []
    assert probe.published_for(other["runId"]) == []


def test_other_methods_are_405_json(schedule_fn: FlaskClient, tokens: Tokens) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = schedule_fn.open("/", method=method, headers=tokens.bearer())
        assert answer.status_code == 405, method
        assert answer.get_json()["error"]["code"] == "method_not_allowed"


def test_host_outside_the_allowlist_is_403(
    schedule_fn: FlaskClient, tokens: Tokens, db: firestore.Client, probe: PublishProbe
) -> None:
    body = request(unique("host"), free_leads(1), host="someone@elsewhere.test")
    answer = schedule_fn.post("/", json=body, headers=tokens.bearer())
    assert answer.status_code == 403
    error = answer.get_json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"][0]["field"] == "host.senderEmail"
    assert run_traces(db, body["runId"]) == []
    assert probe.published_for(body["runId"]) == []
    # A listed address and any address of a listed domain get through.
    for host in ("solo@acme.test", "SOLO@ACME.TEST", f"{unique('h')}@example.com"):
        body = request(unique("host"), free_leads(1), host=host, dryRun=True)
        answer = schedule_fn.post("/", json=body, headers=tokens.bearer())
        assert answer.status_code == 202, (host, answer.get_json())


def test_production_without_an_allowlist_refuses_every_host(
    function_env: dict[str, str], db: firestore.Client, probe: PublishProbe
) -> None:
    """`LEADRUN_GOOGLE_MODE=workspace` and no `LEADRUN_WORKSPACE_SUBJECTS`: fail closed."""
    production = {
        "GOOGLE_CLOUD_PROJECT": function_env["GOOGLE_CLOUD_PROJECT"],
        "LEADRUN_GOOGLE_MODE": "workspace",
        "LEADRUN_WORKSPACE_SUBJECTS": "",
    }
    hosts = settings_from(production).hosts
    body = request(unique("prod"), free_leads(1))
    app = bootstrap.app()
    data = json.dumps(body).encode()
    answer = handle_schedule(app.store, app.bus, "alice", data, hosts=hosts, pace=app.pace)
    assert answer.status == 403
    assert answer.body["error"]["code"] == "forbidden"
    assert "LEADRUN_WORKSPACE_SUBJECTS" in answer.body["error"]["message"]
    assert run_traces(db, body["runId"]) == []
    assert probe.published_for(body["runId"]) == []
