"""Google's transient errors on a stack with the production defaults of the pipeline's own waits
(search settle, sweeper staleness, lease): a run still settles in minutes, with exactly one sent
message, event and folder per lead and no draft left behind.

The session stack shortens those waits so that other tests settle fast; a shortened wait would hide
a run that leans on one. This module starts a stack of its own that leaves them alone.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import keys
from common.models import TERMINAL
from leadrun.client import LeadRunClient
from tests import support

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TAG = "leadrunKey"  # the appProperties key of a lead's folder
# Every write the pipeline makes, as its discovery method id.
WRITES = (
    "calendar.events.insert",
    "gmail.users.drafts.create",
    "gmail.users.drafts.send",
    "gmail.users.drafts.delete",
    "drive.files.create",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A stack as `make up` starts it: no override of the functions' settings."""
    from leadrun.stack import start_stack

    started = start_stack(
        tmp_path_factory.mktemp("defaults"), ports="auto", project="leadrun-defaults"
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def client(stack: Any) -> Iterator[LeadRunClient]:
    """A web-client stand-in; faults and limits are removed afterwards."""
    api = LeadRunClient(dict(stack.env), uid="alice")
    api.sandbox.clear_faults()
    api.sandbox.limits(None)
    try:
        yield api
    finally:
        api.sandbox.clear_faults()
        api.sandbox.limits(None)


def _settle(client: LeadRunClient, run_id: str, within_s: float) -> float:
    """Wait for every receipt to be terminal (at most `within_s` after the request); how long."""
    started = time.monotonic()
    client.wait_settled(run_id, timeout_s=within_s, poll_s=1.0)
    took = time.monotonic() - started
    support.figures(client, run_id, took)
    client.sandbox.clear_faults()
    return took


def _exactly_one_of_each(client: LeadRunClient, run_id: str, body: dict[str, Any]) -> None:
    """From the sandbox: one event, one sent message and one folder per lead, no draft left."""
    state = client.sandbox.state()
    mine = support.of_run(state, run_id, body["host"]["calendarId"])
    receipts = support.receipts_by_key(client, run_id)
    assert all(r["status"] in TERMINAL for r in receipts.values())
    assert {r["status"] for r in receipts.values()} == {"done"}, {
        k: (r["status"], r["reason"]) for k, r in receipts.items() if r["status"] != "done"
    }
    events = collections.Counter(
        e["extendedProperties"]["private"]["leadrunLeadDocId"] for e in mine["events"]
    )
    sent = collections.Counter(
        support.decode_raw(m["raw"])["To"].addresses[0].username for m in mine["messages"]
    )
    for item in body["leads"]:
        lead_id = item["leadDocId"]
        tag = keys.folder_tag(run_id, lead_id)
        folders = [f for f in state["folders"] if (f.get("appProperties") or {}).get(TAG) == tag]
        assert receipts[(lead_id, "calendar")]["outcome"] == "booked"
        assert (events[lead_id], sent[lead_id], len(folders)) == (1, 1, 1), lead_id
        message = receipts[(lead_id, "email")]["external"]["messageId"]
        assert message in {m["id"] for m in mine["messages"]}
        assert receipts[(lead_id, "drive")]["external"]["folderId"] == folders[0]["id"]
    assert mine["drafts"] == []
    support.counts_equal_recount(client, run_id)


def test_a_fault_run_settles_within_three_minutes_on_the_default_settings(
    client: LeadRunClient,
) -> None:
    """15% 503 and 15% 500 after the effect on every write, 20% 429 on freeBusy, 24 leads."""
    run_id = support.unique("faults")
    body = support.request(run_id, support.free_leads(24, days_ahead=3))
    for method in WRITES:
        client.sandbox.fault(method, 503, 0.15)
        client.sandbox.fault(method, 500, 0.15, after_effect=True)
    client.sandbox.fault("calendar.freebusy.query", 429, 0.2)
    assert client.schedule(body).status_code == 202
    took = _settle(client, run_id, within_s=180)
    print(f"fault run settled in {took:.1f} s")
    _exactly_one_of_each(client, run_id, body)


def test_a_lagging_search_run_settles_within_two_minutes_on_the_default_settings(
    client: LeadRunClient,
) -> None:
    """Search lags 10 s; 40% of draft creates, sends and folder creates fail after the effect."""
    run_id = support.unique("lagging")
    body = support.request(run_id, support.free_leads(36, days_ahead=5))
    client.sandbox.limits({"searchLagSeconds": 10})
    for method in ("gmail.users.drafts.create", "gmail.users.drafts.send", "drive.files.create"):
        client.sandbox.fault(method, 500, 0.4, after_effect=True)
    assert client.schedule(body).status_code == 202
    took = _settle(client, run_id, within_s=120)
    print(f"lagging-search run settled in {took:.1f} s")
    _exactly_one_of_each(client, run_id, body)
    calls = client.sandbox.state()["calls"]
    assert calls["gmail.users.drafts.delete"] >= 1  # the stray drafts were made, and removed
    assert calls.get("drive.files.list", 0) == 0  # a folder is found by its id, never searched


def test_the_functions_run_the_production_waits(stack: Any) -> None:
    """None of the waits these tests are about is shortened for them."""
    for name in ("notify", "drive", "sweep"):
        pid = stack.processes[name].pid
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {entry.partition(b"=")[0].decode() for entry in environ}
        for wait in ("LEADRUN_SEARCH_SETTLE_S", "LEADRUN_SWEEP_STALE_S", "LEADRUN_LEASE_S"):
            assert wait not in names, (name, wait)
