"""Undoing a run on the local stack, through the contract only (docs/api.md, "Control": `undo`):
each event the run booked is cancelled with Google's notice to its attendee, each folder
trashed, each draft deleted, each once; sent emails stay; receipts end `reverted`; a freed slot
can be booked again."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import requests

from leadrun.client import LeadRunClient
from tests.integration.test_steering import gained, made, started
from tests.support import (
    counts_equal_recount,
    free_leads,
    iso,
    lead,
    next_weekday,
    of_run,
    receipts_by_key,
    request,
    slot,
    unique,
)

pytestmark = pytest.mark.integration

REVERT_CALLS = ("calendar.events.delete", "drive.files.update", "gmail.users.drafts.delete")


def undo(client: LeadRunClient, run_id: str, **fields: Any) -> requests.Response:
    body = {"runId": run_id, "command": "undo", **fields}
    return client.session.post(
        client.env["CONTROL_URL"], json=body, headers=client.auth(), timeout=120
    )


def calls(client: LeadRunClient) -> dict[str, int]:
    found = client.sandbox.state()["calls"]
    return {method: found.get(method, 0) for method in REVERT_CALLS}


def reverted(client: LeadRunClient, run_id: str, timeout_s: float = 120) -> dict[Any, Any]:
    """The run's receipts once no revert is left queued."""
    deadline = time.monotonic() + timeout_s
    while True:
        receipts = receipts_by_key(client, run_id)
        queued = [k for k, r in receipts.items() if r["revert"] and r["revert"]["at"] is None]
        open_ = [k for k, r in receipts.items() if r["status"] == "pending"]
        if not queued and not open_:
            return receipts
        assert time.monotonic() < deadline, f"still queued: {queued[:5]}, open: {open_[:5]}"
        time.sleep(0.5)


def host_state(client: LeadRunClient, run_id: str, host: str) -> dict[str, list[dict[str, Any]]]:
    state = client.sandbox.state()
    mine = of_run(state, run_id, host)
    mine["folders"] = [f for f in state["folders"] if f.get("user") == host]
    return mine


def settled_run(
    client: LeadRunClient, free: int, full: int, **fields: Any
) -> tuple[str, str, dict[str, Any]]:
    """A settled run: `free` leads booked, `full` whose slot is busy (an availability draft)."""
    run_id = unique("undo")
    busy_day = next_weekday(6, hour=9)
    leads = free_leads(free)
    leads += [
        lead(f"full-{i:02d}", [slot(busy_day + timedelta(minutes=30 * i))]) for i in range(full)
    ]
    body = request(run_id, leads, **fields)
    body["fallback"] = {"expandDays": 0, "draftIfNoSlot": True}
    host = body["host"]["calendarId"]
    client.sandbox.busy(host, iso(busy_day), iso(busy_day + timedelta(hours=8)))
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=180)
    return run_id, host, body


def test_undo_previews_then_reverts_what_a_run_made_once_and_frees_its_slots(
    client: LeadRunClient,
) -> None:
    run_id, host, body = settled_run(client, free=24, full=6)
    before, made = receipts_by_key(client, run_id), host_state(client, run_id, host)
    assert (len(made["events"]), len(made["messages"]), len(made["drafts"])) == (24, 24, 6)
    start_calls = calls(client)

    preview = undo(client, run_id, preview=True)
    assert preview.status_code == 200, preview.text
    assert (preview.json()["toRevert"], preview.json()["unrecallable"]) == (
        {"events": 24, "folders": 30, "drafts": 6},
        {"sent": 24},
    )
    assert preview.json()["affected"] == 60 and preview.json()["state"] == "active"
    assert receipts_by_key(client, run_id) == before and calls(client) == start_calls
    assert client.diagnostics(run_id).json()["state"] == "active"

    answer = undo(client, run_id)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["state"], answer.json()["affected"]) == ("cancelled", 60)
    assert answer.json()["toRevert"] == {"events": 24, "folders": 30, "drafts": 6}
    receipts = reverted(client, run_id)
    effects = Counter(
        (action, r["status"], (r["revert"] or {}).get("effect"))
        for (_, action), r in receipts.items()
    )
    assert effects == {
        ("calendar", "reverted", "event_cancelled"): 24,
        ("calendar", "done", None): 6,  # no slot: nothing was booked
        ("email", "done", None): 24,  # sent: cannot be recalled
        ("email", "reverted", "draft_deleted"): 6,
        ("drive", "reverted", "folder_trashed"): 30,
    }
    for key, receipt in receipts.items():  # what it was stays told
        assert (receipt["outcome"], receipt["external"]) == (
            before[key]["outcome"],
            before[key]["external"],
        )
    now = host_state(client, run_id, host)
    assert {(e["status"], e.get("sendUpdates")) for e in now["events"]} == {("cancelled", "all")}
    assert len(now["events"]) == 24 and now["drafts"] == []
    assert len(now["folders"]) == 30 and all(f["trashed"] for f in now["folders"])
    assert len(now["messages"]) == 24  # untouched
    funnel = counts_equal_recount(client, run_id)
    assert (funnel["state"], funnel["counts"]["reverted"]) == ("cancelled", 60)
    spent = calls(client)
    assert {m: spent[m] - start_calls[m] for m in REVERT_CALLS} == {
        "calendar.events.delete": 24,
        "drive.files.update": 30,
        "gmail.users.drafts.delete": 6,
    }

    again = undo(client, run_id)
    assert (again.status_code, again.json()["affected"]) == (200, 0)
    time.sleep(3)
    assert calls(client) == spent and receipts_by_key(client, run_id) == receipts

    # The slot the first lead had is free again for this host's next run.
    second = unique("after-undo")
    first = body["leads"][0]
    assert client.schedule(request(second, [first], host=host)).status_code == 202
    client.wait_settled(second, timeout_s=60)
    booked = receipts_by_key(client, second)[(first["leadDocId"], "calendar")]
    assert (booked["outcome"], booked["external"]["start"]) == (
        "booked",
        before[(first["leadDocId"], "calendar")]["external"]["start"],
    )


def test_reverts_meeting_faults_after_their_effect_are_each_made_once(
    client: LeadRunClient,
) -> None:
    run_id, host, _ = settled_run(client, free=8, full=0)
    client.sandbox.fault("calendar.events.delete", 503, 1.0, after_effect=True, count=3)
    client.sandbox.fault("drive.files.update", 503, 1.0, after_effect=True, count=3)
    answer = undo(client, run_id)
    assert answer.status_code == 200 and answer.json()["affected"] == 16
    receipts = reverted(client, run_id)
    assert [f["fired"] for f in client.sandbox.state()["faults"]] == [3, 3]
    client.sandbox.clear_faults()
    statuses = Counter((a, r["status"]) for (_, a), r in receipts.items())
    assert statuses == {("calendar", "reverted"): 8, ("drive", "reverted"): 8, ("email", "done"): 8}
    now = host_state(client, run_id, host)
    assert len(now["events"]) == 8 and {e["status"] for e in now["events"]} == {"cancelled"}
    assert len(now["folders"]) == 8 and all(f["trashed"] for f in now["folders"])
    counts_equal_recount(client, run_id)


def test_a_dry_runs_undo_reverts_nothing_and_says_so(client: LeadRunClient) -> None:
    run_id, _, _ = settled_run(client, free=3, full=1, dryRun=True)
    before = receipts_by_key(client, run_id)
    answer = undo(client, run_id)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert (found["affected"], found["toRevert"], found["unrecallable"], found["state"]) == (
        0,
        {"events": 0, "folders": 0, "drafts": 0},
        {"sent": 0},
        "active",
    )
    assert receipts_by_key(client, run_id) == before


@pytest.mark.slow
def test_undo_of_a_running_run_brakes_it_and_reverts_what_it_made(client: LeadRunClient) -> None:
    run_id, host, _ = started(client, leads=60)
    answer = undo(client, run_id)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["state"] == "cancelled"
    before = made(client, run_id, host)
    time.sleep(5)
    flying = Counter(entry["action"] for entry in found["inFlight"])
    for kind, count in gained(before, made(client, run_id, host)).items():
        assert count <= flying[kind], (kind, count, found["inFlight"])
    receipts = reverted(client, run_id)
    now = host_state(client, run_id, host)
    assert {e["status"] for e in now["events"]} <= {"cancelled"} and now["drafts"] == []
    assert all(f["trashed"] for f in now["folders"])
    statuses = Counter((a, r["status"]) for (_, a), r in receipts.items())
    assert statuses[("calendar", "reverted")] == len(now["events"])
    assert statuses[("drive", "reverted")] == len(now["folders"])
    assert statuses[("email", "done")] == len(now["messages"])  # sent before the undo
    assert sum(statuses.values()) == 180 and not {s for _, s in statuses} - {
        "reverted",
        "cancelled",
        "done",
    }
    counts_equal_recount(client, run_id)
