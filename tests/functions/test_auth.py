"""Auth (docs/api.md) through functions-framework: who may call, and whose runs they may touch."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from common import bootstrap
from tests.functions.conftest import PublishProbe, Tokens, run_traces
from tests.support import free_leads, lead, next_weekday, request, slot, unique

pytestmark = pytest.mark.integration


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Any) -> str:
    return _b64(json.dumps(value).encode())


def _claims(uid: str = "alice", project: str = "leadrun-test") -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "sub": uid,
        "user_id": uid,
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
    }


def _unsigned(project: str) -> str:
    """`alg: none`, no signature: what a client SDK sends to an emulator, never valid here."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims(project=project))}."


def _hs256_with_public_cert(project: str, cert_pem: str, kid: str) -> str:
    """The classic algorithm confusion: HMAC keyed with the (public) certificate."""
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    head = f"{_segment(header)}.{_segment(_claims(project=project))}"
    mac = hmac.new(cert_pem.encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{_b64(mac)}"


def _forged_header(header: dict[str, Any], project: str) -> str:
    return f"{_segment(header)}.{_segment(_claims(project=project))}.{_b64(b'x' * 256)}"


def _bad_tokens(tokens: Tokens, project: str) -> dict[str, str | None]:
    """Authorization headers that must all be 401."""
    now = int(time.time())
    certs = bootstrap.app().verifier.certs.get()
    kid, pem = next(iter(certs.items()))
    bearer = {
        "forged_signature": tokens.mint("alice", unknown_key=True),
        "unsigned_alg_none": _unsigned(project),
        "hs256_with_public_key": _hs256_with_public_cert(project, pem, kid),
        "expired": tokens.mint("alice", {"exp": now - 3600, "iat": now - 7200}),
        "expired_past_skew": tokens.mint("alice", {"exp": now - 90, "iat": now - 3690}),
        "issued_in_the_future": tokens.mint("alice", {"iat": now + 600, "exp": now + 4200}),
        "wrong_audience": tokens.mint("alice", {"aud": "someone-else"}),
        "audience_list": tokens.mint("alice", {"aud": [project, "x"]}),
        "wrong_issuer": tokens.mint("alice", {"iss": "https://accounts.google.com"}),
        "issuer_of_other_project": tokens.mint(
            "alice", {"iss": "https://securetoken.google.com/other"}
        ),
        "missing_sub": tokens.mint("alice", {"sub": None}),
        "empty_sub": tokens.mint("alice", {"sub": ""}),
        "sub_too_long": tokens.mint("alice", {"sub": "a" * 129}),
        "sub_not_a_string": tokens.mint("alice", {"sub": 42}),
        "missing_auth_time": tokens.mint("alice", {"auth_time": None}),
        "auth_time_in_the_future": tokens.mint("alice", {"auth_time": now + 3600}),
        "auth_time_not_a_number": tokens.mint("alice", {"auth_time": "yesterday"}),
        "missing_iat": tokens.mint("alice", {"iat": None}),
        "missing_exp": tokens.mint("alice", {"exp": None}),
        "iat_not_a_number": tokens.mint("alice", {"iat": "now"}),
        "kid_is_a_list": _forged_header({"alg": "RS256", "kid": [kid]}, project),
        "no_kid": _forged_header({"alg": "RS256"}, project),
        "unknown_kid": _forged_header({"alg": "RS256", "kid": "nope"}, project),
        "header_not_json": f"{_b64(b'{not json')}.{_segment(_claims())}.{_b64(b'sig')}",
        "header_is_a_list": f"{_segment(['RS256'])}.{_segment(_claims())}.{_b64(b'sig')}",
        "two_segments": "abc.def",
        "garbage": "not-a-token",
    }
    headers: dict[str, str | None] = {name: f"Bearer {value}" for name, value in bearer.items()}
    headers.update(
        {
            "no_header": None,
            "empty_bearer": "Bearer ",
            "basic_scheme": "Basic YWxpY2U6c2VjcmV0",
            "token_without_scheme": bearer["expired"],
            "huge_token": "Bearer " + "a" * 20_000 + ".b.c",
        }
    )
    return headers


def test_bad_tokens_are_401_and_change_nothing(
    schedule_fn: FlaskClient,
    diagnostics_fn: FlaskClient,
    tokens: Tokens,
    db: firestore.Client,
    probe: PublishProbe,
    function_env: dict[str, str],
) -> None:
    project = function_env["GOOGLE_CLOUD_PROJECT"]
    for name, authorization in _bad_tokens(tokens, project).items():
        body = request(unique("auth"), free_leads(1), dryRun=True)
        headers = {"Authorization": authorization} if authorization is not None else {}
        answer = schedule_fn.post("/", json=body, headers=headers)
        assert answer.status_code == 401, (name, answer.get_json())
        assert answer.get_json()["error"]["code"] == "unauthenticated", name
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert run_traces(db, body["runId"]) == [], name
        assert probe.published_for(body["runId"]) == [], name
        diag = diagnostics_fn.get(f"/?runId={body['runId']}", headers=headers)
        assert diag.status_code == 401, (name, diag.get_json())


def test_skew_of_up_to_60_seconds_is_tolerated(schedule_fn: FlaskClient, tokens: Tokens) -> None:
    now = int(time.time())
    for claims in ({"iat": now + 30, "auth_time": now + 30}, {"exp": now - 30, "iat": now - 600}):
        token = tokens.mint("alice", claims)
        body = request(unique("skew"), free_leads(1), dryRun=True)
        answer = schedule_fn.post("/", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 202, (claims, answer.get_json())


def test_another_users_run_is_403_everywhere(
    schedule_fn: FlaskClient,
    diagnostics_fn: FlaskClient,
    tokens: Tokens,
    db: firestore.Client,
    probe: PublishProbe,
) -> None:
    run_id = unique("owned")
    body = request(run_id, free_leads(1), dryRun=True)
    assert schedule_fn.post("/", json=body, headers=tokens.bearer("alice")).status_code == 202
    before = db.document(f"lead_runs/{run_id}").get().to_dict()

    # Mallory tries to add a lead to Alice's run, read its funnel, and overwrite its stages.
    intruder = request(run_id, [lead("intruder", [slot(next_weekday(5))])], dryRun=True)
    answer = schedule_fn.post("/", json=intruder, headers=tokens.bearer("mallory"))
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "forbidden"
    stages = {"runId": run_id, "sourced": 1, "filtered": 0}
    for response in (
        diagnostics_fn.get(f"/?runId={run_id}", headers=tokens.bearer("mallory")),
        diagnostics_fn.post("/", json=stages, headers=tokens.bearer("mallory")),
    ):
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"

    assert db.document(f"lead_runs/{run_id}").get().to_dict() == before
    assert not db.document(f"lead_runs/{run_id}/leads/intruder").get().exists
    assert not db.document(f"lead_runs/{run_id}/stages/client").get().exists
    assert probe.published_for(run_id, "intruder") == []
    # The owner still can.
    assert (
        diagnostics_fn.get(f"/?runId={run_id}", headers=tokens.bearer("alice")).status_code == 200
    )


def test_certificates_are_fetched_once_while_cache_control_allows(
    schedule_fn: FlaskClient, diagnostics_fn: FlaskClient, tokens: Tokens
) -> None:
    """The sandbox serves `max-age=3600`: many requests, many users, still one download."""
    certs = bootstrap.app().verifier.certs
    certs.get()
    fetched = certs.fetches
    for uid in ("c1", "c2", "c3", "c4", "c5"):
        assert (
            diagnostics_fn.get("/?runId=none-such", headers=tokens.bearer(uid)).status_code == 404
        )
    assert certs.fetches == fetched
