"""Control endpoints: faults, counters, state, tokens, certs, CLI start and load."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import pytest
import requests
from google.auth import exceptions as auth_exceptions
from google.oauth2 import id_token
from googleapiclient.errors import HttpError

from tests.sandbox import AUTH, PROJECT

ROOT = Path(__file__).resolve().parents[2]
HOST = "host@example.com"


def _event(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "start": {"dateTime": "2026-12-01T15:00:00Z"},
        "end": {"dateTime": "2026-12-01T15:30:00Z"},
    }


def _fault(url: str, **rule: Any) -> None:
    requests.post(f"{url}/_sandbox/faults", json=rule, timeout=10).raise_for_status()


def test_fault_after_effect_applies_then_fails(calendar: Any, sandbox_url: str, state: Any) -> None:
    _fault(sandbox_url, method="calendar.events.insert", status=503, rate=1.0, afterEffect=True)
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId=HOST, body=_event("after0001")).execute()
    assert err.value.status_code == 503
    assert err.value.error_details[0]["reason"] == "backendError"
    assert [e["id"] for e in state()["events"]] == ["after0001"]
    requests.delete(f"{sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()
    with pytest.raises(HttpError) as err:  # the retry sees the effect
        calendar.events().insert(calendarId=HOST, body=_event("after0001")).execute()
    assert err.value.status_code == 409
    snapshot = state()
    assert [e["id"] for e in snapshot["events"]] == ["after0001"]  # DELETE keeps state
    assert snapshot["calls"]["calendar.events.insert"] == 2


def test_fault_before_effect_has_no_effect_and_reason(
    gmail: Any, sandbox_url: str, state: Any
) -> None:
    _fault(sandbox_url, method="gmail.users.drafts.create", status=403, rate=1.0, count=2)
    body = {"message": {"raw": "VG86IGFAYi50ZXN0DQoNCmhp"}}
    for _ in range(2):
        with pytest.raises(HttpError) as err:
            gmail.users().drafts().create(userId="me", body=body).execute()
        assert err.value.status_code == 403
        assert err.value.error_details[0]["reason"] == "rateLimitExceeded"
    assert state()["drafts"] == []
    gmail.users().drafts().create(userId="me", body=body).execute()  # count exhausted
    snapshot = state()
    assert len(snapshot["drafts"]) == 1
    assert snapshot["calls"] == {"gmail.users.drafts.create": 3}


def test_fault_rules_are_independent_and_seeded(drive: Any, sandbox_url: str) -> None:
    def run() -> list[int]:
        requests.post(f"{sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()
        requests.post(f"{sandbox_url}/_sandbox/faults/seed", json={"seed": 7}, timeout=10)
        _fault(sandbox_url, method="drive.files.list", status=429, rate=0.3)
        _fault(sandbox_url, method="drive.*", status=500, rate=0.2, reason="internalError")
        codes = []
        for _ in range(60):
            try:
                drive.files().list().execute()
                codes.append(200)
            except HttpError as exc:
                codes.append(exc.status_code)
        return codes

    first = run()
    assert first == run()
    assert {200, 429, 500} <= set(first)
    calls = requests.get(f"{sandbox_url}/_sandbox/state", timeout=10).json()["calls"]
    assert calls == {"drive.files.list": 60}


def test_reset_empties_everything(calendar: Any, sandbox_url: str, state: Any) -> None:
    calendar.events().insert(calendarId=HOST, body=_event("reset0001")).execute()
    _fault(sandbox_url, method="*", status=500, rate=0.0)
    assert state()["events"] and state()["faults"]
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()
    snapshot = state()
    assert snapshot["events"] == [] and snapshot["faults"] == [] and snapshot["calls"] == {}
    bad = requests.post(f"{sandbox_url}/_sandbox/faults", json={"status": 503}, timeout=10)
    assert bad.status_code == 400


def _verify(url: str, token: str) -> dict[str, Any]:
    request = google.auth.transport.requests.Request()
    return id_token.verify_token(
        token, request, audience=PROJECT, certs_url=f"{url}/_sandbox/certs"
    )


def _token(url: str, **payload: Any) -> str:
    answer = requests.post(f"{url}/_sandbox/token", json=payload, timeout=10)
    answer.raise_for_status()
    return answer.json()["idToken"]


def test_tokens_verify_like_firebase(sandbox_url: str) -> None:
    claims = _verify(sandbox_url, _token(sandbox_url, uid="user-1"))
    assert claims["iss"] == f"https://securetoken.google.com/{PROJECT}"
    assert claims["aud"] == PROJECT
    assert claims["sub"] == claims["user_id"] == "user-1"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["auth_time"] <= claims["iat"]
    assert claims["firebase"]["sign_in_provider"] == "custom"
    removed = _verify(sandbox_url, _token(sandbox_url, uid="u2", claims={"auth_time": None}))
    assert "auth_time" not in removed
    certs = requests.get(f"{sandbox_url}/_sandbox/certs", timeout=10)
    assert certs.headers["Cache-Control"] == "public, max-age=3600"
    assert all(v.startswith("-----BEGIN CERTIFICATE-----") for v in certs.json().values())


@pytest.mark.parametrize(
    "payload",
    [
        {"uid": "u", "claims": {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4200}},
        {"uid": "u", "claims": {"aud": "someone-else"}},
        {"uid": "u", "unknownKey": True},
    ],
)
def test_bad_tokens_are_rejected(sandbox_url: str, payload: dict[str, Any]) -> None:
    token = _token(sandbox_url, **payload)
    with pytest.raises((ValueError, auth_exceptions.GoogleAuthError)):
        _verify(sandbox_url, token)


def test_concurrent_inserts_are_counted_and_unique(sandbox_url: str, state: Any) -> None:
    session_local: dict[int, requests.Session] = {}

    def insert(i: int) -> int:
        session = session_local.setdefault(threading.get_ident(), requests.Session())
        answer = session.post(
            f"{sandbox_url}/calendars/{HOST}/events",
            json=_event(f"load{i % 50:05d}"),
            headers=AUTH,
            timeout=30,
        )
        return answer.status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        codes = list(pool.map(insert, range(600)))
    assert codes.count(200) == 50
    assert codes.count(409) == 550
    snapshot = state()
    assert len(snapshot["events"]) == 50
    assert snapshot["calls"]["calendar.events.insert"] == 600


def test_cli_starts_on_a_free_port_and_answers_health() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0", "--project", "p1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"url=(http://\S+)", line)
        assert match, line
        health = requests.get(f"{match.group(1)}/_sandbox/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["project"] == "p1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_the_stack_applies_leadrun_google_limits(
    sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadrun.stack import apply_google_limits
    from leadrun.stack_config import GOOGLE_LIMITS_ENV, StackError

    url = f"{sandbox_url}/_sandbox/limits"
    monkeypatch.delenv(GOOGLE_LIMITS_ENV, raising=False)
    apply_google_limits(sandbox_url)  # unset: nothing applied
    assert requests.get(url, timeout=10).json() == {}
    document = {"gmail": {"units": 15000, "perSeconds": 60}, "searchLagSeconds": 2}
    monkeypatch.setenv(GOOGLE_LIMITS_ENV, json.dumps(document))
    apply_google_limits(sandbox_url)
    assert requests.get(url, timeout=10).json() == document
    for bad in ("{not json", '{"gmail": {"units": "many"}}'):
        monkeypatch.setenv(GOOGLE_LIMITS_ENV, bad)
        with pytest.raises(StackError, match=GOOGLE_LIMITS_ENV):
            apply_google_limits(sandbox_url)
    assert requests.get(url, timeout=10).json() == document
