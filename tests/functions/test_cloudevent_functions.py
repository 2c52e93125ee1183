"""The Pub/Sub-triggered functions loaded from their deploy units through functions-framework
(`create_app(target, source, signature_type="cloudevent")`), fed Pub/Sub push envelopes as the
emulator and Eventarc send them. Outcomes are read where a user would: receipts and the sandbox."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from google.cloud import firestore

from common import keys
from common.firestore_documents import FirestoreDocuments
from common.handlers.intake import plan_intake
from common.models import ScheduleRequest
from common.store import Store
from tests.functions.conftest import load_function
from tests.support import free_leads, receipt_doc, request, unique


@pytest.fixture(scope="module")
def drive_fn(function_env: dict[str, str]) -> FlaskClient:
    return load_function("drive", "cloudevent")


@pytest.fixture(scope="module")
def dead_letter_fn(function_env: dict[str, str]) -> FlaskClient:
    return load_function("dead-letter", "cloudevent")


@pytest.fixture(scope="module")
def store(db: firestore.Client) -> Store:
    return Store(FirestoreDocuments(db))


def _recorded(store: Store, actions: list[str]) -> tuple[str, str]:
    """A one-lead run written as schedule writes it, with nothing published: (run, host)."""
    run_id, host = unique("ce"), f"{unique('host')}@example.com"
    body = request(run_id, free_leads(1), host=host, actions=actions)
    store.open_run(run_id, "alice", False)
    parsed = ScheduleRequest.model_validate(body, strict=False)
    store.write_intake(plan_intake(store, parsed).commits)
    return run_id, host


def _push(client: FlaskClient, project: str, topic: str, data: Any, message_id: str) -> int:
    """POST a Pub/Sub push envelope; functions-framework makes it a CloudEvent."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    attributes = data if isinstance(data, dict) else {}
    envelope = {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": {
                k: attributes[k] for k in ("runId", "leadDocId", "action") if k in attributes
            },
            "messageId": message_id,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": f"projects/{project}/subscriptions/{topic}-sub",
    }
    answer = client.post(f"/projects/{project}/topics/{topic}", json=envelope)
    return answer.status_code


def test_a_drive_delivery_makes_one_folder_and_a_redelivery_none(
    drive_fn: FlaskClient, store: Store, function_env: dict[str, str]
) -> None:
    run_id, _ = _recorded(store, ["drive"])
    project = function_env["GOOGLE_CLOUD_PROJECT"]
    message = {"runId": run_id, "leadDocId": "lead-000", "action": "drive"}
    assert _push(drive_fn, project, "lead-drive", message, "m-1") == 200
    receipt = receipt_doc(store, run_id, "lead-000", "drive") or {}
    assert (receipt["status"], receipt["outcome"], receipt["attempts"]) == ("done", "created", 1)
    assert _push(drive_fn, project, "lead-drive", message, "m-2") == 200
    assert (receipt_doc(store, run_id, "lead-000", "drive") or {})["attempts"] == 1
    state = requests.get(f"{function_env['WORKSPACE_SANDBOX_URL']}/_sandbox/state", timeout=10)
    tag = keys.folder_tag(run_id, "lead-000")
    tagged = [f for f in state.json()["folders"] if tag in (f.get("appProperties") or {}).values()]
    assert [f["id"] for f in tagged] == [receipt["external"]["folderId"]]


def test_an_undecodable_message_is_acknowledged_and_changes_nothing(
    drive_fn: FlaskClient, store: Store, function_env: dict[str, str]
) -> None:
    run_id, _ = _recorded(store, ["drive"])
    project = function_env["GOOGLE_CLOUD_PROJECT"]
    assert _push(drive_fn, project, "lead-drive", b"\xff not json", "m-bad") == 200
    assert (receipt_doc(store, run_id, "lead-000", "drive") or {})["status"] == "pending"


def test_a_transient_failure_answers_500_so_pub_sub_redelivers(
    drive_fn: FlaskClient, store: Store, function_env: dict[str, str]
) -> None:
    run_id, _ = _recorded(store, ["drive"])
    project, sandbox = function_env["GOOGLE_CLOUD_PROJECT"], function_env["WORKSPACE_SANDBOX_URL"]
    fault = {"method": "drive.files.create", "status": 503, "rate": 1.0}
    requests.post(f"{sandbox}/_sandbox/faults", json=fault, timeout=10)
    try:
        message = {"runId": run_id, "leadDocId": "lead-000", "action": "drive"}
        assert _push(drive_fn, project, "lead-drive", message, "m-503") == 500
    finally:
        requests.delete(f"{sandbox}/_sandbox/faults", timeout=10)
    receipt = receipt_doc(store, run_id, "lead-000", "drive") or {}
    assert receipt["status"] == "pending" and receipt["error"]["code"] == "transient"
    assert receipt["lease"] is None


def test_a_dead_letter_marks_the_receipt_failed_and_closes_the_email(
    dead_letter_fn: FlaskClient, store: Store, function_env: dict[str, str]
) -> None:
    run_id, _ = _recorded(store, ["calendar", "email"])
    project = function_env["GOOGLE_CLOUD_PROJECT"]
    message = {"runId": run_id, "leadDocId": "lead-000", "action": "calendar"}
    assert _push(dead_letter_fn, project, "lead-dead-letter", message, "m-dl") == 200
    receipts = {a: receipt_doc(store, run_id, "lead-000", a) or {} for a in ("calendar", "email")}
    assert (receipts["calendar"]["status"], receipts["calendar"]["reason"]) == (
        "failed",
        "dead_lettered",
    )
    assert (receipts["email"]["status"], receipts["email"]["reason"]) == (
        "rejected",
        "calendar_failed",
    )
    assert store.counters(run_id)["reasons"] == {"calendar_failed": 1, "dead_lettered": 1}
