"""Steering a running run on the local stack, through the contract only (docs/api.md,
"Control"): after a pause or cancel answers, Google gains at most one resource for each action
it listed in `inFlight` and nothing else; resume ends every action as if never paused."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import requests

from leadrun.client import LeadRunClient
from tests.support import counts_equal_recount, free_leads, of_run, request, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEADS = 120
QUIET_S = 10  # how long after an answer the sandbox is watched for anything more


def command(client: LeadRunClient, run_id: str, name: str, **fields: Any) -> requests.Response:
    """POST a command to CONTROL_URL as the run's owner."""
    body = {"runId": run_id, "command": name, **fields}
    return client.session.post(
        client.env["CONTROL_URL"], json=body, headers=client.auth(), timeout=120
    )


def made(client: LeadRunClient, run_id: str, host: str) -> dict[str, Counter[str]]:
    """What the sandbox holds of this host's run, per kind and lead."""
    state = client.sandbox.state()
    mine = of_run(state, run_id, host)
    folders = [f for f in state["folders"] if f.get("user") == host]
    return {
        "calendar": Counter(e["id"] for e in mine["events"]),
        "email": Counter(m["id"] for m in mine["messages"]),
        "drive": Counter(f["id"] for f in folders),
    }


def gained(before: dict[str, Counter[str]], after: dict[str, Counter[str]]) -> dict[str, int]:
    return {kind: len(set(after[kind]) - set(before[kind])) for kind in before}


def started(client: LeadRunClient, leads: int = LEADS) -> tuple[str, str, dict[str, Any]]:
    run_id, host = unique("steer"), f"{unique('host')}@example.com"
    body = request(run_id, free_leads(leads), host=host)
    assert client.schedule(body).status_code == 202
    time.sleep(3)  # the run is under way: some leads done, most waiting in their lanes
    return run_id, host, body


def open_receipts(client: LeadRunClient, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = client.receipts(run_id)
    return {
        (lead_id, action): r
        for lead_id, _, receipts in rows
        for action, r in receipts.items()
        if r["status"] == "pending"
    }


def assert_brake_held(
    client: LeadRunClient, run_id: str, host: str, answer: dict[str, Any]
) -> None:
    """After the answer: at most one resource for each `inFlight` action, nothing else."""
    before = made(client, run_id, host)
    time.sleep(QUIET_S)
    more = gained(before, made(client, run_id, host))
    flying = Counter(entry["action"] for entry in answer["inFlight"])
    for kind, count in more.items():
        assert count <= flying[kind], (kind, count, answer["inFlight"])


def test_a_paused_run_holds_exactly_and_resumes_to_the_end(client: LeadRunClient) -> None:
    run_id, host, _ = started(client)
    answer = command(client, run_id, "pause")
    assert answer.status_code == 200, answer.text
    paused = answer.json()
    assert paused["state"] == "paused" and paused["affected"] > 0
    flying = {(e["leadDocId"], e["action"]) for e in paused["inFlight"]}
    for key, receipt in open_receipts(client, run_id).items():
        if key not in flying:
            assert (receipt["waiting"] or {}).get("reason") == "paused", (key, receipt)
    assert_brake_held(client, run_id, host, paused)
    for key, receipt in open_receipts(client, run_id).items():  # in flight ones too, now
        assert (receipt["waiting"] or {}).get("reason") == "paused", (key, receipt)
    funnel = client.diagnostics(run_id).json()
    assert funnel["state"] == "paused" and funnel["counts"]["paused"] == funnel["counts"]["pending"]

    resumed = command(client, run_id, "resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    assert host in resumed.json()["eta"]
    client.wait_settled(run_id, timeout_s=180)
    final = made(client, run_id, host)
    assert {kind: len(found) for kind, found in final.items()} == {
        "calendar": LEADS,
        "email": LEADS,
        "drive": LEADS,
    }
    funnel = counts_equal_recount(client, run_id)
    assert (funnel["counts"]["sent"], funnel["counts"]["paused"]) == (LEADS, 0)


def test_a_cancelled_run_ends_every_open_action_and_refuses_more(
    client: LeadRunClient,
) -> None:
    run_id, host, body = started(client)
    answer = command(client, run_id, "cancel")
    assert answer.status_code == 200, answer.text
    cancelled = answer.json()
    assert cancelled["state"] == "cancelled"
    assert_brake_held(client, run_id, host, cancelled)
    client.wait_settled(run_id, timeout_s=120)
    statuses = Counter(
        (action, r["status"])
        for _, _, receipts in client.receipts(run_id)
        for action, r in receipts.items()
    )
    assert {status for _, status in statuses} <= {"done", "cancelled"}
    funnel = counts_equal_recount(client, run_id)
    assert funnel["counts"]["cancelled"] == sum(
        n for (_, s), n in statuses.items() if s == "cancelled"
    )
    assert funnel["state"] == "cancelled"
    again = client.schedule(body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_cancelled"
    for name in ("pause", "resume", "replay"):
        assert command(client, run_id, name).status_code == 409
    assert command(client, run_id, "cancel").json()["affected"] == 0


def test_cancelling_the_last_leads_of_a_running_run_leaves_the_rest_going(
    client: LeadRunClient,
) -> None:
    run_id, host, _ = started(client)
    last = [f"lead-{i:03d}" for i in range(LEADS - 20, LEADS)]
    answer = command(client, run_id, "cancel", leadDocIds=last)
    assert answer.status_code == 200 and answer.json()["state"] == "active"
    assert answer.json()["inFlight"] == []  # the last leads' starts were far ahead
    client.wait_settled(run_id, timeout_s=180)
    receipts = {lead_id: rs for lead_id, _, rs in client.receipts(run_id)}
    for lead_id in last:
        assert {r["status"] for r in receipts[lead_id].values()} == {"cancelled"}, lead_id
    final = made(client, run_id, host)
    assert {kind: len(found) for kind, found in final.items()} == {
        "calendar": LEADS - 20,
        "email": LEADS - 20,
        "drive": LEADS - 20,
    }
    counts_equal_recount(client, run_id)


def test_commands_in_quick_succession_lose_nothing(client: LeadRunClient) -> None:
    run_id, host, _ = started(client, leads=60)
    answers = [command(client, run_id, name) for name in ("pause", "resume", "pause", "cancel")]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert [a.json()["state"] for a in answers] == ["paused", "active", "paused", "cancelled"]
    client.wait_settled(run_id, timeout_s=120)
    final = made(client, run_id, host)
    assert all(n == 1 for found in final.values() for n in found.values())  # nothing twice
    receipts = [r for _, _, rs in client.receipts(run_id) for r in rs.values()]
    assert {r["status"] for r in receipts} <= {"done", "cancelled"}
    done = Counter(r["action"] for r in receipts if r["status"] == "done")
    assert {kind: len(found) for kind, found in final.items()} == {
        kind: done[kind] for kind in ("calendar", "email", "drive")
    }
    counts_equal_recount(client, run_id)


def test_pause_and_resume_during_faults_still_give_exactly_one_of_each(
    client: LeadRunClient,
) -> None:
    for method in (
        "calendar.events.insert",
        "gmail.users.drafts.create",
        "gmail.users.drafts.send",
        "drive.files.create",
    ):
        client.sandbox.fault(method, 503, 0.2)
        client.sandbox.fault(method, 500, 0.15, after_effect=True)
    run_id, host, _ = started(client, leads=40)
    for _ in range(2):
        assert command(client, run_id, "pause").status_code == 200
        time.sleep(1)
        assert command(client, run_id, "resume").status_code == 200
        time.sleep(1)
    client.wait_settled(run_id, timeout_s=240)
    client.sandbox.clear_faults()
    final = made(client, run_id, host)
    assert {kind: len(found) for kind, found in final.items()} == {
        "calendar": 40,
        "email": 40,
        "drive": 40,
    }
    counts_equal_recount(client, run_id)
