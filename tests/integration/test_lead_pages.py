"""`GET {DIAGNOSTICS_URL}/leads` on the local stack (docs/api.md, "Diagnostics"), checked against
a recount of the receipts; and the CLI's live progress, which polls diagnostics and nothing else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from rich.console import Console

from leadrun import terminal
from leadrun.client import LeadRunClient
from tests.support import free_leads, iso, lead, next_weekday, request, slot, unique

pytestmark = pytest.mark.integration


def _ids(client: LeadRunClient, run_id: str, page_size: int = 7, **filters: str) -> list[str]:
    """Every matching lead, following nextPageToken; each page at most `page_size` leads."""
    found: list[str] = []
    token = None
    while True:
        answer = client.leads(run_id, page_size=page_size, page_token=token, **filters)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["leads"]) <= page_size
        found += [entry["leadDocId"] for entry in page["leads"]]
        token = page["nextPageToken"]
        if token is None:
            return found


def _recount(client: LeadRunClient, run_id: str, keep: Callable[[dict[str, Any]], bool]) -> list:
    rows = client.receipts(run_id)
    return [lead_id for lead_id, _, rs in rows if any(keep(r) for r in rs.values())]


@pytest.fixture(scope="module")
def mixed_run(stack_env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A settled run of 120 leads: 100 booked, 10 without an email, 10 whose slot is busy."""
    client = LeadRunClient(stack_env, uid="alice")
    run_id = unique("pages")
    busy_day = next_weekday(5, hour=9)
    leads = free_leads(100)
    leads += [lead(f"quiet-{i:02d}", [slot(next_weekday())], email=None) for i in range(10)]
    leads += [
        lead(f"full-{i:02d}", [slot(busy_day + timedelta(minutes=30 * i))]) for i in range(10)
    ]
    body = request(run_id, leads)
    body["fallback"] = {"expandDays": 0, "draftIfNoSlot": True}
    host = body["host"]["calendarId"]
    client.sandbox.busy(host, iso(busy_day), iso(busy_day + timedelta(hours=8)))
    assert client.schedule(body).status_code == 202
    funnel = client.wait_settled(run_id, timeout_s=240)
    assert funnel["counts"]["noSlot"] == 10 and funnel["counts"]["rejected"] == 10
    return run_id, funnel


def test_paging_lists_every_lead_exactly_once_in_order(
    client: LeadRunClient, mixed_run: tuple[str, dict[str, Any]]
) -> None:
    run_id, _ = mixed_run
    ids = _ids(client, run_id, page_size=7)
    assert ids == sorted(lead_id for lead_id, _, _ in client.receipts(run_id))
    assert len(ids) == len(set(ids)) == 120
    page = client.leads(run_id, page_size=200).json()
    assert page["nextPageToken"] is None and len(page["leads"]) == 120
    first = client.leads(run_id, page_size=1).json()
    entry = first["leads"][0]
    assert set(entry) == {"leadDocId", "email", "name", "company", "timeZone", "receipts"}
    assert set(entry["receipts"]) == {"calendar", "email", "drive"}
    calendar = entry["receipts"]["calendar"]
    assert "lease" not in calendar and "checkpoint" not in calendar
    assert calendar["updatedAt"][:2] == "20" and "T" in calendar["updatedAt"]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"status": "rejected"}, lambda r: r["status"] == "rejected"),
        ({"status": "done"}, lambda r: r["status"] == "done"),
        ({"status": "pending"}, lambda r: r["status"] == "pending"),
        ({"reason": "no_email"}, lambda r: r.get("reason") == "no_email"),
        ({"reason": "no_slot"}, lambda r: r.get("reason") == "no_slot"),
        ({"reason": "no_such_reason"}, lambda r: False),
        ({"status": "done", "reason": "no_slot"}, lambda r: r.get("reason") == "no_slot"),
    ],
)
def test_a_filter_lists_exactly_the_leads_a_recount_of_receipts_gives(
    client: LeadRunClient,
    mixed_run: tuple[str, dict[str, Any]],
    filters: dict[str, str],
    keep: Callable[[dict[str, Any]], bool],
) -> None:
    run_id, _ = mixed_run
    assert _ids(client, run_id, page_size=7, **filters) == _recount(client, run_id, keep)


def test_bad_parameters_and_strangers_are_refused(
    client: LeadRunClient, mixed_run: tuple[str, dict[str, Any]]
) -> None:
    run_id, _ = mixed_run
    for params in (
        {"page_size": 0},
        {"page_size": 201},
        {"page_token": "no-such-token"},
        {"status": "bogus"},
        {"waiting": "maybe"},
    ):
        answer = client.leads(run_id, **params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]["code"] == "invalid_request"
    url = client.env["DIAGNOSTICS_URL"].rstrip("/") + "/leads"
    anonymous = requests.get(url, params={"runId": run_id}, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    foreign = client.leads(run_id, uid=unique("mallory"))
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "forbidden"
    unknown = client.leads(unique("nope"))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    posted = requests.post(url, json={}, headers=client.auth(), timeout=30)
    assert posted.status_code == 405


def _held_run(client: LeadRunClient, leads: int, sends: int) -> str:
    """A run of email-only leads past a sending cap: `leads - sends` of them wait (about 30 s)."""
    run_id = unique("held")
    client.sandbox.limits({"gmail": {"sends": sends, "sendsPerSeconds": 30}})
    body = request(run_id, free_leads(leads), actions=["email"])
    assert client.schedule(body).status_code == 202
    deadline = time.monotonic() + 60
    while client.diagnostics(run_id).json()["counts"]["waiting"] < leads - sends:
        assert time.monotonic() < deadline, "the leads past the cap never waited"
        time.sleep(0.25)
    return run_id


@pytest.fixture
def held(limited: LeadRunClient) -> Iterator[Callable[[int, int], str]]:
    """Makes held runs; cancels them afterwards, so none sends once the limits are lifted."""
    runs: list[str] = []

    def make(leads: int, sends: int) -> str:
        runs.append(_held_run(limited, leads=leads, sends=sends))
        return runs[-1]

    yield make
    for run_id in runs:
        assert limited.control(run_id, "cancel").status_code == 200


def test_waiting_lists_the_leads_a_limit_holds_back(
    limited: LeadRunClient, held: Callable[[int, int], str]
) -> None:
    run_id = held(10, 4)
    waiting = _ids(limited, run_id, page_size=3, waiting="1")
    expected = _recount(
        limited,
        run_id,
        lambda r: (
            r["status"] == "pending"
            and (r.get("waiting") or {}).get("reason") != "paused"
            and bool(r.get("waiting"))
        ),
    )
    assert waiting == expected and len(waiting) == 6
    assert _ids(limited, run_id, paused="1") == []


class _NoReceipts:
    """Stands in for the client's direct Firestore access: a poll must not touch it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the progress poll read Firestore directly ({name})")


def _requests_per_poll(client: LeadRunClient, run_id: str, expected: int) -> list[str]:
    watcher = LeadRunClient(client.env, uid=client.uid)
    watcher._store = _NoReceipts()
    seen: list[str] = []
    watcher.session.hooks["response"].append(
        lambda answer, *args, **kwargs: seen.append(f"{answer.request.method} {answer.url}")
    )
    watcher.auth()  # the token first: not part of a poll
    seen.clear()
    console = Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115
    with console.file:
        started = time.monotonic()
        terminal.wait_with_progress(
            console, watcher, run_id, expected=expected, timeout_s=1.0, poll_s=0.3
        )
    assert time.monotonic() - started < 5
    return seen


def test_progress_polls_diagnostics_alone_whatever_the_runs_size(
    limited: LeadRunClient, held: Callable[[int, int], str]
) -> None:
    """Each poll of `leadrun run`'s progress is one diagnostics GET (whose counters cost the same
    for any run: tests/unit/test_lead_pages.py), never a read of receipts, for 5 leads or 40."""
    per_poll = {}
    for leads, sends in ((5, 2), (40, 2)):
        run_id = held(leads, sends)
        seen = _requests_per_poll(limited, run_id, expected=leads)
        diagnostics = limited.env["DIAGNOSTICS_URL"].rstrip("/")
        assert len(seen) >= 3, seen  # still waiting: it polled until its timeout
        assert all(url.startswith(f"GET {diagnostics}/?runId=") for url in seen), seen
        per_poll[leads] = len(set(seen))  # the same request each time
    assert per_poll == {5: 1, 40: 1}
