"""Pacing on the local stack (the functions are told Google's published limits with a minute of
15 s, `tests/conftest.py`): the expected finish a 202 gives holds, two hosts' lanes are
independent, and a refusal slows only its own host. Orderings and counts; the one figure
compared is the ETA against the settle time of the same run."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from common import paths
from common.lanes import host_key
from leadrun.client import LeadRunClient
from tests.support import free_leads, request, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _lane(client: LeadRunClient, host: str, api: str) -> dict[str, Any]:
    path = paths.gate(api, host_key(host))
    found = client.store.docs.read([path])[path]
    return dict(found.data) if found is not None else {}


def test_the_eta_of_a_paced_run_is_within_a_fifth_of_its_settle_time(client: LeadRunClient) -> None:
    run_id, host = unique("eta"), f"{unique('host')}@example.com"
    started = datetime.now(UTC)
    answer = client.schedule(request(run_id, free_leads(120), host=host, actions=["email"]))
    assert answer.status_code == 202
    expected = (_when(answer.json()["eta"][host]) - started).total_seconds()
    assert expected > 10  # 120 confirmations at the lane's pace: paced, not CPU-bound
    client.wait_settled(run_id, timeout_s=120, poll_s=0.2)
    settled = (datetime.now(UTC) - started).total_seconds()
    assert abs(expected - settled) <= 0.2 * settled, (expected, settled)
    funnel = client.diagnostics(run_id).json()
    assert funnel["counts"]["sent"] == 120 and funnel["counts"]["waiting"] == 0
    assert set(funnel["eta"]) == {host}


def test_two_hosts_lanes_are_independent(client: LeadRunClient) -> None:
    big_run, big = unique("big"), f"{unique('big')}@example.com"
    small_run, small = unique("small"), f"{unique('small')}@example.com"
    assert client.schedule(request(big_run, free_leads(120), host=big, actions=["email"])).ok
    time.sleep(1.0)
    answer = client.schedule(request(small_run, free_leads(5), host=small, actions=["email"]))
    assert _when(answer.json()["eta"][small]) < _when(
        client.diagnostics(big_run).json()["eta"][big]
    )
    client.wait_settled(small_run, timeout_s=60, poll_s=0.2)
    big_funnel = client.diagnostics(big_run).json()["counts"]
    assert big_funnel["pending"] > 0  # the small host finished while the big one still runs
    assert client.diagnostics(small_run).json()["counts"]["sent"] == 5
    client.wait_settled(big_run, timeout_s=120)


def test_a_refusal_slows_only_its_own_hosts_lane(limited: LeadRunClient) -> None:
    # The sandbox's Gmail window is far tighter than what the functions were told: the host
    # with many leads meets it, the host with few does not.
    limited.sandbox.limits({"gmail": {"units": 1100, "perSeconds": 4}})
    busy_run, busy = unique("busy"), f"{unique('busy')}@example.com"
    calm_run, calm = unique("calm"), f"{unique('calm')}@example.com"
    assert limited.schedule(request(busy_run, free_leads(40), host=busy, actions=["email"])).ok
    assert limited.schedule(request(calm_run, free_leads(3), host=calm, actions=["email"])).ok
    deadline = time.monotonic() + 60
    while not _lane(limited, busy, "gmail").get("streak") and time.monotonic() < deadline:
        time.sleep(0.2)
    busy_lane = _lane(limited, busy, "gmail")
    assert busy_lane["factor"] < 1.0 and busy_lane["reason"] == "rate_limit"
    limited.wait_settled(calm_run, timeout_s=60)
    calm_lane = _lane(limited, calm, "gmail")
    assert calm_lane.get("factor", 1.0) == 1.0 and not calm_lane.get("streak")
    funnel = limited.wait_settled(busy_run, timeout_s=180)
    assert funnel["counts"]["sent"] == 40 and funnel["counts"]["failed"] == 0
