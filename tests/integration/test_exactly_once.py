"""Exactly one event, email and folder per lead, whatever Pub/Sub, the functions or Google do."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common import keys, paths
from common.bus import Outgoing, PubSubBus
from common.clock import SYSTEM
from common.handlers.delivery import Delivery, Deps, handle_delivery
from common.handlers.intake import plan_intake
from common.holds import SlotHolds
from common.lanes import Lanes
from common.models import ScheduleRequest
from leadrun.client import LeadRunClient
from tests.support import (
    counts_equal_recount,
    decode_raw,
    figures,
    free_leads,
    lead,
    next_weekday,
    of_run,
    receipt_doc,
    receipts_by_key,
    request,
    slot,
    unique,
)

pytestmark = pytest.mark.integration
# Google as it behaves: search lags behind what was just made, Meet links come later. Exactly-once
# must not rest on a search (docs/api.md, "Sandbox limits": searchLagSeconds, meetPendingSeconds).
LAGGING_GOOGLE = {"searchLagSeconds": 10, "meetPendingSeconds": 2}


@pytest.fixture(autouse=True)
def lagging_google(client: LeadRunClient) -> Iterator[None]:
    """Every test here runs against a lagging search and pending Meet links."""
    client.sandbox.limits(LAGGING_GOOGLE)
    try:
        yield
    finally:
        client.sandbox.limits(None)


def _folders(state: dict[str, Any], run_id: str, lead_id: str) -> list[dict[str, Any]]:
    tag = keys.folder_tag(run_id, lead_id)
    return [f for f in state["folders"] if (f.get("appProperties") or {}).get("leadrunKey") == tag]


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("calendar.events.insert", 503),
        ("gmail.users.drafts.create", 500),
        ("gmail.users.drafts.send", 503),
        ("drive.files.create", 429),
    ],
)
def test_effect_applied_then_response_failed_is_recorded_once(
    client: LeadRunClient, method: str, status: int
) -> None:
    run_id = unique("after")
    body = request(run_id, free_leads(2))
    host = body["host"]["calendarId"]
    client.sandbox.fault(method, status, 1.0, after_effect=True, count=2)
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=90)
    state = client.sandbox.state()
    mine = of_run(state, run_id, host)
    receipts = receipts_by_key(client, run_id)
    assert {r["status"] for r in receipts.values()} == {"done"}
    assert len(mine["events"]) == 2
    assert len(mine["messages"]) == 2 and mine["drafts"] == []
    for lead_id in ("lead-000", "lead-001"):
        assert len(_folders(state, run_id, lead_id)) == 1
        sent = [
            m
            for m in mine["messages"]
            if decode_raw(m["raw"])["To"].addresses[0].username == lead_id
        ]
        assert len(sent) == 1
        assert receipts[(lead_id, "email")]["external"]["messageId"] == sent[0]["id"]
    counts_equal_recount(client, run_id)


def test_permanent_error_ends_failed_with_reason(client: LeadRunClient) -> None:
    run_id = unique("perm")
    body = request(run_id, free_leads(1))
    client.sandbox.fault("drive.files.create", 400, 1.0)
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=60)
    drive = receipts_by_key(client, run_id)[("lead-000", "drive")]
    assert (drive["status"], drive["reason"]) == ("failed", "permanent_error")
    assert drive["error"]["code"].startswith("http_400")
    assert funnel["counts"]["failed"] == 1 and funnel["reasons"]["permanent_error"] == 1
    counts_equal_recount(client, run_id)


def test_unknown_calendar_fails_and_the_email_is_not_left_pending(client: LeadRunClient) -> None:
    run_id = unique("nocal")
    body = request(run_id, free_leads(1))
    body["host"]["calendarId"] = "nobody@calendar.invalid"
    assert client.schedule(body).status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    receipts = receipts_by_key(client, run_id)
    assert receipts[("lead-000", "calendar")]["reason"] == "permanent_error"
    assert receipts[("lead-000", "email")]["status"] == "rejected"
    assert receipts[("lead-000", "email")]["reason"] == "calendar_failed"
    assert receipts[("lead-000", "drive")]["status"] == "done"


def test_transient_failures_forever_are_dead_lettered_and_marked(client: LeadRunClient) -> None:
    run_id = unique("dlq")
    body = request(run_id, free_leads(1), actions=["drive"])
    client.sandbox.fault("drive.files.create", 503, 1.0)
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=120)
    drive = receipts_by_key(client, run_id)[("lead-000", "drive")]
    assert (drive["status"], drive["reason"]) == ("failed", "dead_lettered")
    assert drive["attempts"] >= 5
    assert funnel["counts"]["failed"] == 1 and funnel["reasons"]["dead_lettered"] == 1
    counts_equal_recount(client, run_id)


def _record_without_publishing(client: LeadRunClient, lead_id: str) -> str:
    """Write a one-lead drive run as schedule does, then "lose" its publish: no message."""
    run_id = unique(lead_id)
    body = request(run_id, [lead(lead_id, [slot(next_weekday(3))])], actions=["drive"])
    store = client.store
    store.open_run(run_id, "alice", False)
    plan = plan_intake(store, ScheduleRequest.model_validate(body, strict=False))
    store.write_intake(plan.commits)
    return run_id


def _deliver_drive(
    client: LeadRunClient,
    stack_env: dict[str, str],
    run_id: str,
    lead_id: str,
    published: datetime,
    what: str,
) -> str:
    """One drive delivery handled in this process, with an effect that must not run."""
    store = client.store
    deps = Deps(
        store,
        SlotHolds(store.docs),
        Lanes(store.docs),
        PubSubBus(stack_env["GOOGLE_CLOUD_PROJECT"]),
        lambda dry_run: pytest.fail(f"{what} must not reach Google"),
        SYSTEM.now,
        SYSTEM.sleep,
        max_age=timedelta(hours=1),
    )
    return handle_delivery(
        deps,
        Delivery(run_id, lead_id, "drive", f"m-{lead_id}", published),
        lambda work: pytest.fail(f"{what} must not act"),
    )


def test_message_older_than_max_age_is_recorded_and_dropped(
    client: LeadRunClient, stack_env: dict[str, str]
) -> None:
    run_id = _record_without_publishing(client, "old")
    published = datetime.now(UTC) - timedelta(hours=2)
    outcome = _deliver_drive(client, stack_env, run_id, "old", published, "an expired message")
    assert outcome == "expired"
    drive = receipts_by_key(client, run_id)[("old", "drive")]
    assert (drive["status"], drive["reason"]) == ("failed", "expired")
    counts_equal_recount(client, run_id)


def test_a_receipt_whose_lead_is_gone_is_recorded_as_failed_not_left_pending(
    client: LeadRunClient, stack_env: dict[str, str]
) -> None:
    run_id = _record_without_publishing(client, "gone")
    store = client.store
    store.docs.db.document(paths.lead(run_id, "gone")).delete()  # damage no request can cause
    outcome = _deliver_drive(client, stack_env, run_id, "gone", datetime.now(UTC), "a lost lead")
    assert outcome == "permanent_error"
    drive = receipt_doc(store, run_id, "gone", "drive") or {}
    assert (drive["status"], drive["reason"]) == ("failed", "permanent_error")
    assert drive["error"]["code"] == "lead_missing" and drive["lease"] is None
    assert store.counters(run_id)["counts"]["failed"] == 1


def _worker_pid(stack: Any, name: str) -> int | None:
    """The gunicorn worker (the child) of a function's process."""
    master = stack.processes[name].pid
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == master:
                    return int(entry)
    return None


def _kill_worker(stack: Any, name: str) -> int:
    pid = _worker_pid(stack, name)
    assert pid is not None, f"{name} has no worker process"
    os.kill(pid, signal.SIGKILL)
    return pid


def test_sweeper_publishes_an_action_whose_message_was_lost(client: LeadRunClient) -> None:
    run_id = _record_without_publishing(client, "lost")
    assert client.in_flight(run_id) == 1
    client.wait_settled(run_id, timeout_s=90)
    drive = receipts_by_key(client, run_id)[("lost", "drive")]
    assert drive["status"] == "done" and drive["outcome"] == "created"
    assert len(_folders(client.sandbox.state(), run_id, "lost")) == 1
    counts_equal_recount(client, run_id)


@pytest.mark.slow
def test_fault_run_duplicates_and_a_crash_still_give_exactly_one_of_each(
    client: LeadRunClient, stack: Any, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 leads; 30% of write calls fail (half after the effect); every message twice; a crash."""
    run_id = unique("chaos")
    leads = free_leads(100, days_ahead=4)
    body = request(run_id, leads)
    host = body["host"]["calendarId"]
    for method in (
        "calendar.events.insert",
        "gmail.users.drafts.create",
        "gmail.users.drafts.send",
        "drive.files.create",
    ):
        client.sandbox.fault(method, 503, 0.15, after_effect=True)
        client.sandbox.fault(method, 429, 0.09)
        client.sandbox.fault(method, 500, 0.09)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", stack_env["PUBSUB_EMULATOR_HOST"])
    bus = PubSubBus(stack_env["GOOGLE_CLOUD_PROJECT"])

    assert client.schedule(body).status_code == 202
    # Every message a second time: the same request again, and copies straight onto the topics.
    duplicate = threading.Thread(target=lambda: client.schedule(body))
    duplicate.start()
    bus.publish(
        Outgoing(run_id, item["leadDocId"], action)
        for item in leads
        for action in ("calendar", "email", "drive")
    )
    duplicate.join()
    time.sleep(1.0)
    # Crash one subscriber mid-run: kill -9 its worker; gunicorn starts a fresh one on the
    # socket it keeps listening on, as Cloud Run replaces a crashed instance. (Killing the
    # whole process group instead leaves the port refusing connections, and the Pub/Sub
    # emulator silently drops a message whose pushes were refused too often, neither delivered
    # nor dead-lettered. Real Pub/Sub does not lose messages that way.)
    crashed = _kill_worker(stack, "notify")

    started = time.monotonic()
    client.wait_settled(run_id, timeout_s=420, poll_s=1.0)
    figures(client, run_id, time.monotonic() - started)
    client.sandbox.clear_faults()
    state = client.sandbox.state()
    mine = of_run(state, run_id, host)
    receipts = receipts_by_key(client, run_id)
    assert all(r["status"] in ("done", "failed") for r in receipts.values())
    failed = {k: r for k, r in receipts.items() if r["status"] == "failed"}
    assert all(r["reason"] == "dead_lettered" for r in failed.values()), failed
    events = collections.Counter(
        e["extendedProperties"]["private"]["leadrunLeadDocId"] for e in mine["events"]
    )
    sent = collections.Counter(
        decode_raw(m["raw"])["To"].addresses[0].username for m in mine["messages"]
    )
    for item in leads:
        lead_id = item["leadDocId"]
        assert events[lead_id] <= 1 and sent[lead_id] <= 1
        assert len(_folders(state, run_id, lead_id)) <= 1
        if (lead_id, "calendar") not in failed:
            assert events[lead_id] == 1
        if (lead_id, "email") not in failed and (lead_id, "calendar") not in failed:
            assert sent[lead_id] == 1
        if (lead_id, "drive") not in failed:
            assert len(_folders(state, run_id, lead_id)) == 1
    assert mine["drafts"] == []
    assert len(failed) <= 2, f"too many dead letters for this fault rate: {sorted(failed)}"
    funnel = counts_equal_recount(client, run_id)
    assert _worker_pid(stack, "notify") not in (None, crashed), "notify was not restarted"
    print(f"\nfault run: calls={state['calls']} failed={len(failed)} counts={funnel['counts']}")
