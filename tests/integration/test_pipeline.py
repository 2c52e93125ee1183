"""The whole pipeline on the local stack: HTTP in, Google effects in the sandbox, receipts out."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from common.slots import format_meeting_time
from leadrun.client import LeadRunClient
from tests.support import (
    WRITE_METHODS,
    decode_raw,
    free_leads,
    lead,
    next_weekday,
    of_run,
    receipts_by_key,
    request,
    slot,
    unique,
)

pytestmark = pytest.mark.integration


def test_five_leads_get_events_emails_and_folders(client: LeadRunClient) -> None:
    run_id = unique("run")
    body = request(run_id, free_leads(5))
    host = body["host"]["calendarId"]
    answer = client.schedule(body)
    assert answer.status_code == 202, answer.text
    assert [a["leadDocId"] for a in answer.json()["accepted"]] == [
        f"lead-{i:03d}" for i in range(5)
    ]

    funnel = client.wait_settled(run_id, timeout_s=60)
    receipts = receipts_by_key(client, run_id)
    assert len(receipts) == 15
    assert {r["status"] for r in receipts.values()} == {"done"}
    state = client.sandbox.state()
    mine = of_run(state, run_id, host)
    assert len(mine["events"]) == 5
    for event in mine["events"]:
        lead_id = event["extendedProperties"]["private"]["leadrunLeadDocId"]
        assert event["attendees"][0]["email"] == f"{lead_id}@acme.test"
        assert event["hangoutLink"].startswith("https://meet.google.com/")
        assert receipts[(lead_id, "calendar")]["external"]["meetLink"] == event["hangoutLink"]
    assert len(mine["messages"]) == 5
    for message in mine["messages"]:
        parsed = decode_raw(message["raw"])
        lead_id = parsed["To"].addresses[0].username
        link = receipts[(lead_id, "calendar")]["external"]["meetLink"]
        assert link in parsed.get_content()
        assert receipts[(lead_id, "email")]["external"]["messageId"] == message["id"]
    folders = [
        f
        for f in state["folders"]
        if f["id"] in {r["external"]["folderId"] for (_, a), r in receipts.items() if a == "drive"}
    ]
    assert len(folders) == 5
    assert funnel["counts"]["booked"] == 5 and funnel["counts"]["sent"] == 5
    assert funnel["counts"]["foldersCreated"] == 5 and funnel["counts"]["accepted"] == 5
    assert funnel["counts"] | {"sourced": 0, "filtered": 0} == {
        **client.recount(run_id)["counts"],
        "sourced": 0,
        "filtered": 0,
    }

    # The same request again adds nothing anywhere.
    before = client.sandbox.state()["calls"]
    again = client.schedule(body)
    assert again.status_code == 202
    client.wait_settled(run_id, timeout_s=30)
    after = client.sandbox.state()
    assert of_run(after, run_id, host) == of_run(state, run_id, host)
    assert {m: after["calls"].get(m, 0) for m in WRITE_METHODS} == {
        m: before.get(m, 0) for m in WRITE_METHODS
    }
    assert client.diagnostics(run_id).json()["counts"] == funnel["counts"]


def test_dry_run_writes_nothing_to_google(client: LeadRunClient) -> None:
    run_id = unique("dry")
    body = request(run_id, free_leads(5), dryRun=True)
    before = client.sandbox.state()
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=60)
    after = client.sandbox.state()
    assert {m: after["calls"].get(m, 0) for m in WRITE_METHODS} == {
        m: before["calls"].get(m, 0) for m in WRITE_METHODS
    }
    for kind in ("events", "messages", "drafts", "folders"):
        assert len(after[kind]) == len(before[kind])
    receipts = receipts_by_key(client, run_id)
    assert len(receipts) == 15
    assert {r["status"] for r in receipts.values()} == {"simulated"}
    assert all(r["dryRun"] for r in receipts.values())
    email = receipts[("lead-000", "email")]["external"]
    start = datetime.fromisoformat(receipts[("lead-000", "calendar")]["external"]["start"])
    assert email["to"] == "lead-000@acme.test"
    assert format_meeting_time(start, ZoneInfo("Europe/Lisbon")) in email["body"]
    assert receipts[("lead-000", "drive")]["external"]["name"] == "Lead lead-000 (Acme)"
    assert funnel["counts"]["simulated"] == 15 and funnel["counts"]["booked"] == 5


def test_lead_without_email_is_rejected_withreceipts_by_key(client: LeadRunClient) -> None:
    run_id = unique("run")
    start = next_weekday(3)
    leads = [
        lead("good", [slot(start)]),
        lead("nomail", [slot(start)], email=None),
        lead("bad", [slot(start)], email="not-an-address"),
    ]
    answer = client.schedule(request(run_id, leads))
    assert answer.status_code == 202
    assert answer.json()["rejected"] == [
        {"leadDocId": "nomail", "reason": "no_email"},
        {"leadDocId": "bad", "reason": "invalid_email"},
    ]
    funnel = client.wait_settled(run_id, timeout_s=60)
    receipts = receipts_by_key(client, run_id)
    assert {receipts[("nomail", a)]["reason"] for a in ("calendar", "email", "drive")} == {
        "no_email"
    }
    assert {receipts[("nomail", a)]["status"] for a in ("calendar", "email", "drive")} == {
        "rejected"
    }
    assert funnel["counts"]["rejected"] == 2 and funnel["counts"]["accepted"] == 1
    # `reasons` counts leads (docs/api.md, "Diagnostics"): one lead each, though each has three
    # receipts.
    assert funnel["reasons"]["no_email"] == 1 and funnel["reasons"]["invalid_email"] == 1


def test_malformed_request_is_400_and_writes_nothing(client: LeadRunClient) -> None:
    run_id = unique("run")
    body = request(run_id, free_leads(2))
    body["leads"][1]["timeZone"] = "Mars/Olympus"
    answer = client.schedule(body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["field"] == "leads[1].timeZone"
    assert client.store.get_run(run_id) is None
    assert client.diagnostics(run_id).status_code == 404


def test_missing_token_is_401_and_other_users_run_is_403(client: LeadRunClient) -> None:
    run_id = unique("run")
    body = request(run_id, free_leads(1))
    bare = client.session.post(client.env["SCHEDULE_URL"], json=body, timeout=30)
    assert bare.status_code == 401
    assert bare.json()["error"]["code"] == "unauthenticated"
    assert client.schedule(body).status_code == 202
    assert client.schedule(body, uid="mallory").status_code == 403
    assert client.diagnostics(run_id, uid="mallory").status_code == 403
    assert client.diagnostics(run_id).status_code == 200


def test_run_mode_conflict_is_409(client: LeadRunClient) -> None:
    run_id = unique("run")
    assert client.schedule(request(run_id, free_leads(1), dryRun=True)).status_code == 202
    answer = client.schedule(request(run_id, free_leads(1), dryRun=False))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "run_mode_conflict"


def test_every_step_logs_one_json_line_joined_to_the_request_trace(
    client: LeadRunClient, stack: object
) -> None:
    run_id = unique("logs")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {**client.auth(), "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    body = request(run_id, free_leads(1))
    answer = client.session.post(client.env["SCHEDULE_URL"], json=body, headers=headers, timeout=60)
    assert answer.status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    logs = Path(stack.state_dir) / "logs"  # type: ignore[attr-defined]
    lines = []
    for name in ("schedule", "book", "notify", "drive"):
        for text in (logs / f"{name}.log").read_text().splitlines():
            if text.startswith("{") and run_id in text:
                lines.append((name, json.loads(text)))
    steps = {
        (name, entry.get("logging.googleapis.com/labels", {}).get("action"))
        for name, entry in lines
    }
    assert {
        ("schedule", None),
        ("book", "calendar"),
        ("notify", "email"),
        ("drive", "drive"),
    } <= steps
    for name, entry in lines:
        assert entry["severity"] in ("INFO", "WARNING", "ERROR")
        assert entry["logging.googleapis.com/trace"] == f"projects/leadrun-test/traces/{trace_id}"
        if name != "schedule":
            labels = entry["logging.googleapis.com/labels"]
            assert labels == {"runId": run_id, "leadDocId": "lead-000", "action": labels["action"]}
            assert {"messageId", "attempt", "outcome", "elapsedMs"} <= set(entry)


def test_a_client_reads_its_own_stack_whatever_the_environment_names(
    client: LeadRunClient, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = unique("run")
    assert client.schedule(request(run_id, free_leads(1))).status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    # Another stack's emulator, e.g. inherited from a parent process that ran a client of its own.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    fresh = LeadRunClient(stack_env, uid="alice")
    assert [lead_id for lead_id, _, _ in fresh.receipts(run_id)] == ["lead-000"]
    assert os.environ["FIRESTORE_EMULATOR_HOST"] == "127.0.0.1:9"  # left as it was
