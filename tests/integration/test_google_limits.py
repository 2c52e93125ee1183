"""Google's per-user limits on the local stack (docs/api.md, "Receipts", "Sandbox limits"): the
sandbox is told the limits through `/_sandbox/limits` only, so the pipeline copes with limits it was
not told. No lead fails, none is dead-lettered, nothing is done twice; receipts wait and resume by
themselves."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from leadrun.client import LeadRunClient
from tests.support import (
    decode_raw,
    figures,
    free_leads,
    of_run,
    receipts_by_key,
    request,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _settle(client: LeadRunClient, run_id: str, timeout_s: float) -> dict[str, Any]:
    started = time.monotonic()
    funnel = client.wait_settled(run_id, timeout_s=timeout_s)
    figures(client, run_id, time.monotonic() - started)
    recount = client.recount(run_id)  # counts equal receipts
    assert funnel["counts"] == {**recount["counts"], "sourced": 0, "filtered": 0}
    assert funnel["reasons"] == recount["reasons"]
    return funnel


def _no_loss(client: LeadRunClient, run_id: str, funnel: dict[str, Any]) -> None:
    assert funnel["counts"]["failed"] == 0 and funnel["counts"]["waiting"] == 0
    assert "dead_lettered" not in funnel["reasons"]
    receipts = receipts_by_key(client, run_id)
    assert all(r.get("waiting") is None for r in receipts.values())


def _sent_per_lead(client: LeadRunClient, run_id: str, host: str) -> Counter[str]:
    messages = of_run(client.sandbox.state(), run_id, host)["messages"]
    return Counter(decode_raw(m["raw"])["To"].addresses[0].addr_spec for m in messages)


def test_a_gmail_window_most_leads_meet_ends_with_every_email_sent_once(
    limited: LeadRunClient,
) -> None:
    run_id, host = unique("gwin"), f"{unique('host')}@example.com"
    # 1,100 units per 4 s: ten confirmations (110 units each) per window for 60 leads.
    limited.sandbox.limits({"gmail": {"units": 1100, "perSeconds": 4}})
    body = request(run_id, free_leads(60), host=host, actions=["email"])
    assert limited.schedule(body).status_code == 202
    funnel = _settle(limited, run_id, timeout_s=240)
    _no_loss(limited, run_id, funnel)
    assert funnel["counts"]["sent"] == 60
    sent = _sent_per_lead(limited, run_id, host)
    assert len(sent) == 60 and set(sent.values()) == {1}  # no duplicates
    throttled = limited.sandbox.state()["throttled"]
    assert sum(v for k, v in throttled.items() if k.startswith("gmail.")) > 0  # they met the wall


def test_a_daily_cap_holds_the_rest_waiting_until_the_window_rolls(limited: LeadRunClient) -> None:
    run_id, host = unique("gday"), f"{unique('host')}@example.com"
    limited.sandbox.limits({"gmail": {"sends": 20, "sendsPerSeconds": 30}})
    body = request(run_id, free_leads(30), host=host, actions=["email"])
    assert limited.schedule(body).status_code == 202
    deadline = time.monotonic() + 60
    while True:
        funnel = limited.diagnostics(run_id).json()
        counts = funnel["counts"]
        if counts["sent"] == 20 and counts["waiting"] == 10 and counts["pending"] == 10:
            break
        assert counts["sent"] <= 20
        assert time.monotonic() < deadline, counts
        time.sleep(0.25)

    def waits() -> list[dict[str, Any]]:
        receipts = receipts_by_key(limited, run_id).values()
        return sorted((r["waiting"] for r in receipts if r.get("waiting")), key=str)

    # A lead still in flight may meet the cap again and wait anew: compare diagnostics with the
    # receipts at a moment when no receipt moved around the diagnostics read.
    for _ in range(40):
        before, funnel, waiting = waits(), limited.diagnostics(run_id).json(), waits()
        if before == waiting:
            break
        time.sleep(0.1)
    assert len(waiting) == 10 and funnel["counts"]["waiting"] == 10
    assert {w["reason"] for w in waiting} <= {"daily_limit", "rate_limit"}
    assert {w["api"] for w in waiting} == {"gmail"}
    assert max(w["until"] for w in waiting) == funnel["waitingUntil"]
    funnel = _settle(limited, run_id, timeout_s=120)
    _no_loss(limited, run_id, funnel)
    assert funnel["counts"]["sent"] == 30
    assert set(_sent_per_lead(limited, run_id, host).values()) == {1}


def test_a_calendar_lockout_holds_the_rest_and_books_them_all_after_it(
    limited: LeadRunClient,
) -> None:
    run_id, host = unique("lock"), f"{unique('host')}@example.com"
    calendar = {"externalInvites": 5, "invitesPerSeconds": 8, "lockoutSeconds": 8}
    limited.sandbox.limits({"calendar": calendar})
    body = request(run_id, free_leads(8), host=host, actions=["calendar"])
    assert limited.schedule(body).status_code == 202
    seen_lockout = False
    deadline = time.monotonic() + 180
    while limited.in_flight(run_id):
        receipts = receipts_by_key(limited, run_id).values()
        seen_lockout |= any(
            (r.get("waiting") or {}).get("reason") == "usage_limits" for r in receipts
        )
        assert time.monotonic() < deadline
        time.sleep(0.25)
    assert seen_lockout
    funnel = _settle(limited, run_id, timeout_s=30)
    _no_loss(limited, run_id, funnel)
    assert funnel["counts"]["booked"] == 8
    events = of_run(limited.sandbox.state(), run_id, host)["events"]
    assert len(events) == 8


def test_every_confirmation_carries_its_events_link_while_meet_is_pending(
    limited: LeadRunClient,
) -> None:
    run_id, host = unique("meet"), f"{unique('host')}@example.com"
    limited.sandbox.limits({"meetPendingSeconds": 3})
    body = request(run_id, free_leads(4), host=host, actions=["calendar", "email"])
    assert limited.schedule(body).status_code == 202
    funnel = _settle(limited, run_id, timeout_s=120)
    _no_loss(limited, run_id, funnel)
    receipts = receipts_by_key(limited, run_id)
    state = of_run(limited.sandbox.state(), run_id, host)
    links = {e["id"]: e.get("hangoutLink") for e in state["events"]}
    assert len(links) == 4 and all(links.values())
    for message in state["messages"]:
        parsed = decode_raw(message["raw"])
        lead_id = parsed["To"].addresses[0].addr_spec.split("@")[0]
        calendar = receipts[(lead_id, "calendar")]["external"]
        assert calendar["meetLink"] == links[calendar["eventId"]]
        assert calendar["meetLink"] in parsed.get_content()
    assert len(state["messages"]) == 4


def test_a_failed_meet_is_booked_and_its_confirmation_left_as_a_draft(
    limited: LeadRunClient,
) -> None:
    run_id, host = unique("meetno"), f"{unique('host')}@example.com"
    limited.sandbox.limits({"meetFails": True})
    body = request(run_id, free_leads(1), host=host, actions=["calendar", "email"])
    assert limited.schedule(body).status_code == 202
    funnel = _settle(limited, run_id, timeout_s=60)
    receipts = receipts_by_key(limited, run_id)
    calendar, email = receipts[("lead-000", "calendar")], receipts[("lead-000", "email")]
    assert (calendar["outcome"], calendar["reason"]) == ("booked", "meet_failed")
    assert (email["status"], email["outcome"], email["reason"]) == (
        "done",
        "drafted",
        "meet_failed",
    )
    state = of_run(limited.sandbox.state(), run_id, host)
    assert state["messages"] == [] and len(state["drafts"]) == 1
    assert funnel["reasons"] == {"meet_failed": 1}
