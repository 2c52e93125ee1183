"""`GET {DIAGNOSTICS_URL}/leads` (docs/api.md, "Diagnostics") and the diagnostics GET on the fakes:
paging, filters, errors, and what one page or one poll reads (as much for a small run as large)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from common.handlers.diagnostics import handle_diagnostics_get, handle_leads_get
from common.lead_pages import page_token, token_after
from common.limits import Limit
from common.store import Store
from tests.fakes import MemoryDocuments
from tests.support import free_leads, lead, next_weekday, request, slot, unique
from tests.unit.world import World


class Metered:
    """The fake, counting the documents each call hands back (what Firestore bills as reads;
    an aggregate-like `latest` and a run's counters count as the documents they return)."""

    def __init__(self, docs: MemoryDocuments) -> None:
        self.docs = docs
        self.documents = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.docs, name)

    def read(self, paths: Sequence[str]) -> Any:
        found = self.docs.read(paths)
        self.documents += sum(1 for doc in found.values() if doc is not None)
        return found

    def page(self, collection: str, equal: Mapping[Any, Any], after: Any, limit: int) -> Any:
        found = self.docs.page(collection, equal, after, limit)
        self.documents += len(found)
        return found

    def children(self, collection: str) -> Any:
        found = self.docs.children(collection)
        self.documents += len(found)
        return found

    def latest(self, collection: str, field_name: str) -> Any:
        self.documents += 1
        return self.docs.latest(collection, field_name)

    def counters(self, run_id: str) -> Any:
        self.documents += 1  # one shard in the fake; Firestore reads at most its shard count
        return self.docs.counters(run_id)


def _run(world: World, size: int, rejected: int = 0) -> str:
    run = unique("pages")
    leads = free_leads(size)
    start = next_weekday()
    leads += [lead(f"quiet-{i:03d}", [slot(start)], email=None) for i in range(rejected)]
    answer = world.schedule(request(run, leads))
    assert answer.status == 202, answer.body
    world.pump()
    return run


def _get(store: Store, run: str, uid: str = "alice", **params: Any) -> Any:
    return handle_leads_get(store, uid, {"runId": run, **{k: str(v) for k, v in params.items()}})


def _all(store: Store, run: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        extra = {"pageToken": token} if token else {}
        answer = _get(store, run, **params, **extra)
        assert answer.status == 200, answer.body
        assert len(answer.body["leads"]) <= int(params.get("pageSize", 50))
        found += answer.body["leads"]
        token = answer.body["nextPageToken"]
        if token is None:
            return found


def test_paging_lists_every_lead_once_in_order_with_public_receipts() -> None:
    world = World()
    run = _run(world, 18, rejected=3)
    leads = _all(world.store, run, pageSize=7)
    ids = [entry["leadDocId"] for entry in leads]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 21
    first = next(entry for entry in leads if entry["leadDocId"] == "lead-000")
    assert (first["email"], first["name"], first["company"]) == (
        "lead-000@acme.test",
        "Lead lead-000",
        "Acme",
    )
    calendar = first["receipts"]["calendar"]
    assert calendar["status"] == "done" and calendar["outcome"] == "booked"
    assert "lease" not in calendar and "checkpoint" not in calendar and "startAt" not in calendar
    assert isinstance(calendar["updatedAt"], str) and "T" in calendar["updatedAt"]
    assert _get(world.store, run, pageSize=21).body["nextPageToken"] is None
    assert _get(world.store, run, pageSize=20).body["nextPageToken"] is not None


def test_each_filter_keeps_exactly_the_leads_a_recount_of_receipts_gives() -> None:
    world = World()
    run = _run(world, 9, rejected=4)
    rows = world.store.run_receipts(run)

    def recount(keep: Any) -> list[str]:
        return [lead_id for lead_id, _, rs in rows if any(keep(r) for r in rs.values())]

    cases = {
        (("status", "rejected"),): recount(lambda r: r["status"] == "rejected"),
        (("status", "done"),): recount(lambda r: r["status"] == "done"),
        (("reason", "no_email"),): recount(lambda r: r.get("reason") == "no_email"),
        (("status", "pending"),): [],
        (("status", "rejected"), ("reason", "no_email")): recount(
            lambda r: r.get("reason") == "no_email"
        ),
        (("reason", "nothing_like_it"),): [],
        (("reason", "weird/../`reason`"),): [],
        (("waiting", "1"),): [],
        (("paused", "1"),): [],
    }
    assert len(cases[(("status", "rejected"),)]) == 4 and len(cases[(("status", "done"),)]) == 9
    for params, expected in cases.items():
        found = [entry["leadDocId"] for entry in _all(world.store, run, pageSize=2, **dict(params))]
        assert found == expected, params


def test_waiting_and_paused_leads_are_found_by_their_stored_shape() -> None:
    world = World()
    run = unique("held")
    assert world.schedule(request(run, free_leads(4))).status == 202  # nothing delivered yet
    limit = Limit("daily_limit", "gmail", datetime(2030, 1, 1, tzinfo=UTC))
    world.store.record(run, "lead-001", "email", lambda r: r.wait_for(limit))
    world.store.record(run, "lead-002", "drive", lambda r: r.pause())
    world.store.record(run, "lead-003", "drive", lambda r: r.pause())
    world.store.record(run, "lead-003", "calendar", lambda r: r.wait_for(limit))

    def ids(**params: Any) -> list[str]:
        return [entry["leadDocId"] for entry in _all(world.store, run, **params)]

    assert ids(waiting=1) == ["lead-001", "lead-003"]
    assert ids(paused=1) == ["lead-002", "lead-003"]
    assert ids(paused="true", waiting=1) == ["lead-003"]
    assert ids(status="pending") == ["lead-000", "lead-001", "lead-002", "lead-003"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "201"}, "pageSize"),
        ({"pageSize": "-1"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"pageToken": "not-a-token"}, "pageToken"),
        ({"pageToken": "l1.!!!"}, "pageToken"),
        ({"pageToken": page_token("ok")[:-1] + "/"}, "pageToken"),
        ({"status": "bogus"}, "status"),
        ({"status": "DONE"}, "status"),
        ({"waiting": "yes"}, "waiting"),
        ({"waiting": "0"}, "waiting"),
        ({"paused": "2"}, "paused"),
        ({"runId": "bad id!"}, "runId"),
    ],
)
def test_a_bad_parameter_is_refused_with_400(params: dict[str, str], field: str) -> None:
    world = World()
    run = _run(world, 1)
    answer = handle_leads_get(world.store, "alice", {"runId": run, **params})
    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_request"
    assert answer.body["error"]["details"][0]["field"] == field


def test_only_the_owner_reads_the_leads_of_a_run() -> None:
    world = World()
    run = _run(world, 1)
    assert _get(world.store, run, uid="mallory").status == 403
    assert _get(world.store, unique("none")).status == 404
    assert _get(world.store, run, pageSize=1).status == 200


def test_a_page_token_is_opaque_and_gives_back_its_lead() -> None:
    token = page_token("lead-007")
    assert "lead-007" not in token and token_after(token) == "lead-007"
    with pytest.raises(ValueError):
        token_after(page_token("not/an id"))


def _reads(world: World, run: str, call: Any) -> int:
    metered = Metered(world.docs)
    call(Store(metered), run)  # a fresh store: nothing cached from the run's own writes
    return metered.documents


@pytest.mark.parametrize("sizes", [(10, 60)])
def test_a_page_and_a_diagnostics_poll_read_as_much_for_a_large_run_as_a_small_one(
    sizes: tuple[int, int],
) -> None:
    world = World()
    small, large = (_run(world, size, rejected=2) for size in sizes)

    def page(store: Store, run: str) -> None:
        assert _get(store, run, pageSize=7).status == 200

    def filtered(store: Store, run: str) -> None:
        assert _get(store, run, pageSize=7, status="done").status == 200

    def poll(store: Store, run: str) -> None:
        assert handle_diagnostics_get(store, "alice", {"runId": run}, world.clock()).status == 200

    reads = {
        name: Counter(
            {
                size: _reads(world, run, call)
                for size, run in zip(sizes, (small, large), strict=True)
            }
        )
        for name, call in (("page", page), ("filtered", filtered), ("poll", poll))
    }
    for name, by_size in reads.items():
        assert by_size[sizes[0]] == by_size[sizes[1]], (name, dict(by_size))
    # The run document, eight leads (seven and the one that says more follow), 21 receipts.
    assert reads["page"][sizes[0]] == 1 + 8 + 21
    assert reads["poll"][sizes[0]] <= 8


def test_only_the_owner_or_a_listed_operator_reads_a_run() -> None:
    world = World()
    run = _run(world, 2)
    ops = frozenset({"ops-1"})
    now = world.clock()
    assert _get(world.store, run, uid="mallory").status == 403
    assert handle_diagnostics_get(world.store, "mallory", {"runId": run}, now).status == 403
    # Listing someone else does not let mallory in; an empty list lets nobody in.
    assert handle_leads_get(world.store, "mallory", {"runId": run}, ops).status == 403
    assert handle_leads_get(world.store, "ops-1", {"runId": run}, frozenset()).status == 403
    assert handle_leads_get(world.store, "ops-1", {"runId": run}, ops).status == 200
    assert handle_diagnostics_get(world.store, "ops-1", {"runId": run}, now, ops).status == 200
    assert handle_diagnostics_get(world.store, "ops-1", {"runId": "nope"}, now, ops).status == 404
