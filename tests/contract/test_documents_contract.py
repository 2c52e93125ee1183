"""One contract for the `Documents` port, run against the in-memory fake and Firestore (emulator).

The handler unit tier trusts the fake; these tests are why it may: the same guards ("must not
exist", "unchanged since read"), the same all-or-nothing commits and the same receipt transitions
hold on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common import paths
from common.documents import (
    ABSENT,
    SERVER_TIME,
    Changed,
    Commit,
    Decision,
    Known,
    Stored,
    Write,
    change,
)
from common.holds import Settlement, SlotHold, SlotHolds, hold_paths
from common.limits import Limit
from common.receipts import Ending, LeaseHeld, Receipt, Status
from common.runs import ReceiptMissing
from common.store import Store, created
from tests.fakes import Interleaved, MemoryDocuments


@pytest.fixture(params=["memory", "firestore"])
def docs(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The fake, and Firestore on the session stack's emulator."""
    if request.param == "memory":
        yield MemoryDocuments()
        return
    from google.cloud import firestore

    from common.firestore_documents import FirestoreDocuments
    from leadrun.emulators import emulator_address

    env = request.getfixturevalue("stack_env")
    with emulator_address("FIRESTORE_EMULATOR_HOST", env["FIRESTORE_EMULATOR_HOST"]):
        client = firestore.Client(project=env["GOOGLE_CLOUD_PROJECT"])
    yield FirestoreDocuments(client)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_a_create_guard_refuses_an_existing_document_and_writes_nothing(docs: Any) -> None:
    run = unique("c")
    first, second = paths.run(run), paths.run(unique("c2"))
    docs.commit([Commit([Write(first, {"n": 1}, ABSENT)])])
    with pytest.raises(Changed):
        docs.commit([Commit([Write(second, {"n": 2}, ABSENT), Write(first, {"n": 3}, ABSENT)])])
    found = docs.read([first, second])
    assert found[first].data == {"n": 1}
    assert found[second] is None  # all or nothing


def test_a_version_guard_refuses_a_document_changed_since_it_was_read(docs: Any) -> None:
    path = paths.run(unique("v"))
    docs.commit([Commit([Write(path, {"n": 1}, ABSENT)])])
    seen = docs.read([path])[path]
    docs.commit([Commit([Write(path, {"n": 2}, seen.version)])])
    with pytest.raises(Changed):
        docs.commit([Commit([Write(path, {"n": 3}, seen.version)])])
    assert docs.read([path])[path].data == {"n": 2}


def test_a_version_guard_refuses_a_deleted_document(docs: Any) -> None:
    path = paths.run(unique("d"))
    docs.commit([Commit([Write(path, {"n": 1}, ABSENT)])])
    seen = docs.read([path])[path]
    docs.commit([Commit([Write(path, None, seen.version)])])
    assert docs.read([path])[path] is None
    with pytest.raises(Changed):
        docs.commit([Commit([Write(path, {"n": 2}, seen.version)])])


def test_a_guarded_update_keeps_other_fields_and_sets_nested_ones(docs: Any) -> None:
    path = paths.run(unique("u"))
    docs.commit([Commit([Write(path, {"a": 1, "m": {"x": 1}}, ABSENT)])])
    seen = docs.read([path])[path]
    docs.commit([Commit([Write(path, {"b": 2, "m.y": 2, "t": SERVER_TIME}, seen.version)])])
    data = docs.read([path])[path].data
    assert (data["a"], data["b"], data["m"]) == (1, 2, {"x": 1, "y": 2})
    assert isinstance(data["t"], datetime)


def test_counters_move_with_their_commit_only(docs: Any) -> None:
    run = unique("k")
    path = paths.run(run)
    docs.commit([Commit([Write(path, {"n": 1}, ABSENT)], run, _counts(booked=1))])
    with pytest.raises(Changed):
        docs.commit([Commit([Write(path, {"n": 1}, ABSENT)], run, _counts(booked=5))])
    assert docs.counters(run)["counts.booked"] == 1


def test_change_decides_again_when_another_writer_got_in_first(docs: Any) -> None:
    path = paths.run(unique("r"))
    docs.commit([Commit([Write(path, {"n": 0}, ABSENT)])])
    rounds: list[int] = []

    def decide(found: dict[str, Stored | None]) -> Decision[int]:
        doc = found[path]
        assert doc is not None
        if not rounds:  # someone else writes between our read and our commit
            docs.commit([Commit([Write(path, {"n": 10}, doc.version)])])
        rounds.append(doc.data["n"])
        return Decision(doc.data["n"], Commit([Write(path, {"n": doc.data["n"] + 1}, doc.version)]))

    assert change(docs, [path], decide) == 10
    assert rounds == [0, 10]
    assert docs.read([path])[path].data["n"] == 11


# -- what a process's own change left (Known) --------------------------------------------------
def _counting(path: str, rounds: list[int], write_if: Any = lambda n: True) -> Any:
    """A decision that adds one to `n` (if `write_if(n)`), noting the `n` it saw each round."""

    def decide(found: dict[str, Stored | None]) -> Decision[int]:
        doc = found[path]
        assert doc is not None
        rounds.append(doc.data["n"])
        if not write_if(doc.data["n"]):
            return Decision(doc.data["n"])
        writes = [Write(path, {"n": doc.data["n"] + 1, "at": SERVER_TIME}, doc.version)]
        return Decision(doc.data["n"], Commit(writes))

    return decide


def test_what_a_change_left_is_known_as_a_read_returns_it_but_the_servers_time(
    docs: Any,
) -> None:
    path, known = paths.run(unique("k")), Known()
    docs.commit([Commit([Write(path, {"n": 0, "m": {"x": 1}}, ABSENT)])])
    change(docs, [path], _counting(path, []), known=known)  # sets `at` to the server's time
    (read,) = docs.read([path]).values()
    assert read is not None and isinstance(read.data.pop("at"), datetime)
    assert known.recall([path]) == {path: read}  # every other field, and the version
    assert known.recall([path, paths.run(unique("other"))]) is None  # all of them, or none


def test_a_change_on_what_it_knows_reads_nothing_and_commits_guarded(docs: Any) -> None:
    path, known, rounds = paths.run(unique("k")), Known(), []
    docs.commit([Commit([Write(path, {"n": 0}, ABSENT)])])
    counting = _counting(path, rounds)
    change(docs, [path], counting, known=known)
    reads = _Reads(docs)
    assert change(reads, [path], counting, known=known) == 1
    assert (reads.count, rounds) == (0, [0, 1])
    assert docs.read([path])[path].data["n"] == 2


def _known_then_changed(docs: Any, to: int) -> tuple[str, Known]:
    """A document this process changed to n = 1 (and knows so), then another writer to `to`."""
    path, known = paths.run(unique("k")), Known()
    docs.commit([Commit([Write(path, {"n": 0}, ABSENT)])])
    change(docs, [path], _counting(path, []), known=known)
    seen = docs.read([path])[path]
    docs.commit([Commit([Write(path, {"n": to}, seen.version)])])
    return path, known


def test_a_change_on_what_another_writer_changed_since_decides_again_on_a_read(docs: Any) -> None:
    path, known, rounds = *_known_then_changed(docs, to=10), []
    assert change(docs, [path], _counting(path, rounds), known=known) == 10
    assert rounds == [1, 10]
    assert docs.read([path])[path].data["n"] == 11


def test_a_decision_on_what_it_knows_that_writes_nothing_is_made_again_on_a_read(
    docs: Any,
) -> None:
    path, known, rounds = *_known_then_changed(docs, to=0), []
    # Writes only when n is 0: on what it knows (1) it would write nothing and be wrong.
    assert change(docs, [path], _counting(path, rounds, lambda n: n == 0), known=known) == 0
    assert rounds == [1, 0]
    assert docs.read([path])[path].data["n"] == 1


def test_a_decision_on_what_it_knows_that_raises_is_made_again_on_a_read(docs: Any) -> None:
    path, known, rounds = *_known_then_changed(docs, to=2), []
    counting = _counting(path, rounds)

    def refusing_odd(found: dict[str, Stored | None]) -> Decision[int]:
        decision = counting(found)
        if decision.result % 2:  # as a claim refuses a lease that it thinks is held
            raise ValueError("odd")
        return decision

    assert change(docs, [path], refusing_odd, known=known) == 2
    assert rounds == [1, 2]


def test_what_is_known_is_bounded_and_the_least_recently_seen_goes_first() -> None:
    known = Known(size=2)
    a, b, c = (Stored({"n": n}, n) for n in range(3))
    known.keep({"a": a, "b": b}, Commit(), {})
    known.keep({"a": a}, Commit(), {})  # seen again
    known.keep({"c": c}, Commit(), {})
    assert known.recall(["a", "c"]) == {"a": a, "c": c}
    assert known.recall(["b"]) is None


def test_a_claim_hands_on_its_lead_as_read_not_as_last_seen(docs: Any) -> None:
    """A delivery works on the lead its claim gives it: the claim reads, whatever is known."""
    store, run = Store(docs, lease_s=60), unique("k")
    _lead(store, run, ["drive"])
    store.claim(run, "l1", "drive", "owner-a", _now())
    store.release(run, "l1", "drive", "owner-a", {"code": "transient", "message": "503"})
    lead_path = paths.lead(run, "l1")
    seen = docs.read([lead_path])[lead_path]
    docs.commit([Commit([Write(lead_path, {"lead": {"name": "resubmitted"}}, seen.version)])])
    claim = store.claim(run, "l1", "drive", "owner-b", _now())
    assert (claim.lead or {}).get("lead") == {"name": "resubmitted"}


class _Reads:
    """Documents that count their reads."""

    def __init__(self, docs: Any) -> None:
        self.docs, self.count = docs, 0

    def read(self, doc_paths: Any) -> Any:
        self.count += 1
        return self.docs.read(doc_paths)

    def commit(self, commits: Any) -> Any:
        return self.docs.commit(commits)


def _now() -> datetime:
    return datetime.now(UTC)


def _counts(**named: int) -> Any:
    from collections import Counter

    return Counter({f"counts.{k}": v for k, v in named.items()})


# -- receipts through the store, on both ------------------------------------------------------
def _lead(store: Store, run: str, actions: list[str], reason: str | None = None) -> None:
    status = "rejected" if reason else "pending"
    receipts = {a: Receipt(a, status=Status(status), reason=reason).to_doc() for a in actions}
    tally = {reason: len(actions)} if reason else {}
    lead = {
        "status": "rejected" if reason else "accepted",
        "actions": actions,
        "reasonTally": tally,
    }
    writes = [created(paths.lead(run, "l1"), lead)]
    writes += [created(paths.receipt(run, "l1", a), r) for a, r in receipts.items()]
    counts = _counts(pending=0 if reason else len(actions))
    counts.update({f"counts.{lead['status']}": 1, **({f"reasons.{reason}": 1} if reason else {})})
    store.write_intake([Commit(writes, run, counts)])


def test_a_claim_is_exclusive_until_finished_and_counts_once(docs: Any) -> None:
    store, run = Store(docs, lease_s=60), unique("claim")
    _lead(store, run, ["drive"])
    first = store.claim(run, "l1", "drive", "owner-a", _now())
    assert (first.terminal, first.attempt) == (False, 1)
    with pytest.raises(LeaseHeld):
        store.claim(run, "l1", "drive", "owner-b", _now())
    done = Ending(Status.DONE, "created")
    assert store.finish(run, "l1", "drive", done) is True
    assert store.finish(run, "l1", "drive", done) is False  # a duplicate counts nothing
    assert store.claim(run, "l1", "drive", "owner-b", _now()).terminal
    counts = store.counters(run)["counts"]
    assert (counts["foldersCreated"], counts["pending"]) == (1, 0)


def test_a_released_claim_is_taken_again_as_a_resumed_attempt(docs: Any) -> None:
    store, run = Store(docs, lease_s=60), unique("rel")
    _lead(store, run, ["drive"])
    store.claim(run, "l1", "drive", "owner-a", _now())
    store.release(run, "l1", "drive", "owner-a", {"code": "transient", "message": "503"})
    again = store.claim(run, "l1", "drive", "owner-b", _now())
    assert again.attempt == 2 and again.resumed
    released = store.get_receipt(run, "l1", "drive")
    assert released is not None and (released.error or {})["code"] == "transient"


def test_an_expired_lease_is_taken_over(docs: Any) -> None:
    store, run = Store(docs, lease_s=-1), unique("exp")
    _lead(store, run, ["drive"])
    store.claim(run, "l1", "drive", "owner-a", _now())
    assert store.claim(run, "l1", "drive", "owner-b", _now()).attempt == 2


def test_a_missing_receipt_is_said_so(docs: Any) -> None:
    store = Store(docs)
    with pytest.raises(ReceiptMissing):
        store.claim(unique("none"), "l1", "drive", "owner", _now())


def test_reasons_count_leads_not_receipts(docs: Any) -> None:
    store, run = Store(docs), unique("why")
    _lead(store, run, ["calendar", "email", "drive"])
    failed = Ending(Status.FAILED, reason="permanent_error")
    store.finish(run, "l1", "calendar", failed)
    store.finish(run, "l1", "drive", failed)
    assert store.counters(run)["reasons"] == {"permanent_error": 1}
    assert store.reopen(run, "l1", "drive")
    assert store.counters(run)["reasons"] == {"permanent_error": 1}  # calendar still gives it
    store.reopen(run, "l1", "calendar")
    assert store.counters(run)["reasons"] == {}
    assert store.counters(run)["counts"]["failed"] == 0


def test_a_reason_given_elsewhere_since_this_process_saw_the_lead_counts_once(docs: Any) -> None:
    """Counts equal receipts (guarantee 5) when a transition decides on the lead as this process
    last saw it (its claim's read): the lead's tally is written guarded, so a stale one is
    decided again on a read."""
    store, other, run = Store(docs, lease_s=60), Store(docs), unique("stale")
    _lead(store, run, ["calendar", "drive"])
    store.claim(run, "l1", "calendar", "owner-a", _now())  # this process now knows the lead
    failed = Ending(Status.FAILED, reason="permanent_error")
    other.finish(run, "l1", "drive", failed)  # the lead's tally moves elsewhere
    assert store.finish(run, "l1", "calendar", failed)
    counters = Store(docs).counters(run)
    assert counters["reasons"] == {"permanent_error": 1}
    assert counters["counts"]["failed"] == 2


# -- slot holds on both ------------------------------------------------------------------------
def test_overlapping_holds_conflict_until_released_and_a_booked_hold_stays(docs: Any) -> None:
    holds, key = SlotHolds(docs), unique("cal")
    start = datetime(2030, 1, 7, 15, tzinfo=UTC)
    first = SlotHold(start, start + timedelta(minutes=30))
    overlapping = SlotHold(start + timedelta(minutes=15), start + timedelta(minutes=45))
    assert holds.claim(key, first, "a", timedelta(minutes=5), _now()) == []
    assert holds.claim(key, first, "a", timedelta(minutes=5), _now()) == []  # our own again
    assert holds.claim(key, overlapping, "b", timedelta(minutes=5), _now()) == [first]
    holds.settle(Settlement(key, first, "a", booked=False))
    assert holds.claim(key, overlapping, "b", timedelta(minutes=5), _now()) == []
    holds.settle(Settlement(key, overlapping, "b", booked=True))
    assert holds.claim(key, first, "a", timedelta(minutes=5), _now()) == [overlapping]


def test_buckets_a_process_knows_as_free_but_another_took_since_are_not_taken(docs: Any) -> None:
    """No double booking (guarantee 3) when a claim decides on what this process last saw of
    the buckets (`documents.Known`): its own hold there had expired, and another instance has
    held them since. The guarded commit fails, and the read finds the other hold."""
    mine, theirs, key = SlotHolds(docs), SlotHolds(docs), unique("cal")
    start = datetime(2030, 1, 7, 15, tzinfo=UTC)
    hold = SlotHold(start, start + timedelta(minutes=30))
    assert mine.claim(key, hold, "a", timedelta(seconds=-1), _now()) == []  # held, expired at once
    assert theirs.claim(key, hold, "b", timedelta(minutes=5), _now()) == []
    assert mine.known.recall(hold_paths(key, hold)) is not None  # decided on what it saw
    conflicts = mine.claim(key, hold, "c", timedelta(minutes=5), _now())
    assert conflicts and set(conflicts) == {hold}  # b's hold, found on a read


def test_settling_as_booked_after_a_hold_changed_still_keeps_it_booked(docs: Any) -> None:
    """A booked settlement that meets a changed hold decides again rather than commit nothing
    and return, which would leave the booked meeting's holds to expire."""
    holds, key = SlotHolds(docs), unique("cal")
    start = datetime(2030, 1, 8, 15, tzinfo=UTC)
    hold = SlotHold(start, start + timedelta(minutes=30))
    assert holds.claim(key, hold, "a", timedelta(minutes=5), _now()) == []
    assert (
        holds.claim(key, hold, "a", timedelta(minutes=5), _now()) == []
    )  # our hold changes (renewed)
    holds.settle(Settlement(key, hold, "a", booked=True))
    kept = [doc for doc in docs.read(_bucket_paths(key, hold)).values()]
    assert all(doc is not None and doc.data["booked"] for doc in kept)
    assert all(doc.data["expiresAt"] == hold.end for doc in kept if doc is not None)


def test_a_booking_keeps_its_holds_in_the_commit_that_finishes_its_receipt(docs: Any) -> None:
    store, holds, key, run = Store(docs), SlotHolds(docs), unique("cal"), unique("keep")
    _lead(store, run, ["calendar"])
    start = datetime(2030, 1, 9, 15, tzinfo=UTC)
    hold = SlotHold(start, start + timedelta(minutes=30))
    assert holds.claim(key, hold, "a", timedelta(minutes=5), _now()) == []
    kept = Settlement(key, hold, "a", booked=True)
    done = Ending(Status.DONE, "booked")
    assert store.record(run, "l1", "calendar", lambda r: r.finish(done), also=kept)
    found = docs.read(_bucket_paths(key, hold)).values()
    assert all(doc is not None and doc.data["booked"] for doc in found)
    assert (store.get_receipt(run, "l1", "calendar") or Receipt("")).outcome == "booked"
    # Already finished: nothing is written, the holds of another choice included.
    other = SlotHold(start + timedelta(hours=1), start + timedelta(hours=1, minutes=30))
    assert holds.claim(key, other, "a", timedelta(minutes=5), _now()) == []
    again = replace(kept, hold=other)
    assert not store.record(run, "l1", "calendar", lambda r: r.finish(done), also=again)
    unbooked = docs.read(_bucket_paths(key, other)).values()
    assert all(doc is not None and not doc.data["booked"] for doc in unbooked)


def _bucket_paths(key: str, hold: SlotHold) -> list[str]:
    from common.holds import hold_paths

    return hold_paths(key, hold)


def test_latest_gives_the_greatest_text_value_and_skips_documents_without_it(docs: Any) -> None:
    run = unique("late")
    collection = paths.leads(run)
    assert docs.latest(collection, "waitingUntil") is None
    values = {"a": "2030-01-01T00:00:00.000Z", "b": "2031-06-01T00:00:00.000Z", "c": None}
    writes = [Write(f"{collection}/{k}", {"waitingUntil": v}, ABSENT) for k, v in values.items()]
    docs.commit([Commit([*writes, Write(f"{collection}/d", {"other": 1}, ABSENT)])])
    assert docs.latest(collection, "waitingUntil") == "2031-06-01T00:00:00.000Z"


def test_two_receipts_of_a_lead_failing_at_once_count_their_reason_once(docs: Any) -> None:
    """Counts equal receipts (docs/api.md, "Diagnostics") when sibling receipts change at once: both
    transitions write the lead's tally guarded, so the later one decides again."""
    run = unique("both")
    _lead(Store(docs), run, ["calendar", "drive"])
    failed = Ending(Status.FAILED, reason="permanent_error")
    other = Store(docs)
    racing = Store(Interleaved(docs, lambda: other.finish(run, "l1", "drive", failed)))
    assert racing.finish(run, "l1", "calendar", failed)
    counters = Store(docs).counters(run)
    assert counters["reasons"] == {"permanent_error": 1}
    assert counters["counts"]["failed"] == 2 and counters["counts"]["pending"] == 0


def test_due_receipts_come_soonest_first_once_due_and_after_a_stamp(docs: Any) -> None:
    run = unique("due")
    stamps = {
        "b": "2000-01-01T00:00:02.000Z",
        "a": "2000-01-01T00:00:01.000Z",
        "c": "2000-01-01T00:00:09.000Z",
    }
    receipts = {lead: paths.receipt(run, lead, "drive") for lead in stamps}
    waiting = {
        lead: {"reason": "rate_limit", "api": "drive", "until": u} for lead, u in stamps.items()
    }
    docs.commit(
        [
            Commit(
                [
                    created(path, {**Receipt("drive").to_doc(), "waiting": waiting[lead]})
                    for lead, path in receipts.items()
                ]
            )
        ]
    )
    try:
        by = "2000-01-01T00:00:05.000Z"
        assert [r[:3] for r in docs.due_receipts(by) if r[0] == run] == [
            (run, "a", "drive"),
            (run, "b", "drive"),
        ]
        assert [r[1] for r in docs.due_receipts(by, stamps["a"]) if r[0] == run] == ["b"]
    finally:  # the session stack's sweeper must not find them
        docs.commit([Commit([Write(path, None) for path in receipts.values()])])


# -- pages of leads (GET /leads) on both --------------------------------------------------------
def _facet_leads(docs: Any, run: str, facets: dict[str, list[str]]) -> None:
    writes = [
        Write(f"{paths.leads(run)}/{lead_id}", {"facets": dict.fromkeys(found, True)}, ABSENT)
        for lead_id, found in facets.items()
    ]
    docs.commit([Commit(writes)])


def test_a_page_follows_document_ids_after_a_cursor_up_to_its_limit(docs: Any) -> None:
    run = unique("page")
    ids = ["a", "a-b", "a_b", "B", "b", "c0", "c1", "z"]
    _facet_leads(docs, run, {lead_id: [] for lead_id in ids})
    collection = paths.leads(run)
    assert [i for i, _ in docs.page(collection, {}, None, 3)] == ["B", "a", "a-b"]
    assert [i for i, _ in docs.page(collection, {}, "a-b", 3)] == ["a_b", "b", "c0"]
    assert [i for i, _ in docs.page(collection, {}, "c0", 3)] == ["c1", "z"]
    assert docs.page(collection, {}, "z", 3) == []
    seen, after = [], None
    while batch := docs.page(collection, {}, after, 2):
        seen += [i for i, _ in batch]
        after = batch[-1][0]
    assert seen == sorted(ids)  # every document once, in order


def test_a_page_keeps_documents_whose_map_entries_equal_every_value_given(docs: Any) -> None:
    run = unique("facet")
    _facet_leads(
        docs,
        run,
        {
            "l1": ["status_done"],
            "l2": ["status_rejected", "reason_no_email"],
            "l3": ["status_done", "status_rejected", "reason_a.b-c"],
            "l4": ["status_rejected", "reason_no_email", "waiting"],
            "l5": [],
        },
    )
    collection = paths.leads(run)

    def ids(*facets: str, after: str | None = None, limit: int = 10) -> list[str]:
        equal = {("facets", facet): True for facet in facets}
        return [i for i, _ in docs.page(collection, equal, after, limit)]

    assert ids("status_rejected") == ["l2", "l3", "l4"]
    assert ids("status_rejected", after="l2", limit=1) == ["l3"]
    assert ids("status_rejected", "reason_no_email") == ["l2", "l4"]  # filters combine
    assert ids("status_rejected", "reason_no_email", "waiting") == ["l4"]
    assert ids("reason_a.b-c") == ["l3"]  # a key with dots and dashes is one key
    assert ids("reason_unknown") == []


def _run_lead(store: Store, run: str, lead_id: str, actions: list[str], reason: str | None) -> None:
    """A lead as schedule writes it (`_lead_doc`), with its facets."""
    from common.lead_pages import facets_of

    status = "rejected" if reason else "pending"
    receipts = {a: Receipt(a, status=Status(status), reason=reason) for a in actions}
    lead = {
        "status": "rejected" if reason else "accepted",
        "lead": {"email": f"{lead_id}@acme.test", "name": lead_id, "company": "Acme"},
        "actions": actions,
        "reasonTally": {reason: len(actions)} if reason else {},
        **facets_of(receipts),
    }
    writes = [created(paths.lead(run, lead_id), lead)]
    writes += [created(paths.receipt(run, lead_id, a), r.to_doc()) for a, r in receipts.items()]
    store.write_intake([Commit(writes, run)])


def test_a_lead_carries_the_facets_of_its_receipts_as_they_change(docs: Any) -> None:
    store, run = Store(docs, lease_s=60), unique("facets")
    actions = ["calendar", "drive"]
    _run_lead(store, run, "l1", actions, None)
    _run_lead(store, run, "l2", actions, "no_email")
    try:

        def ids(**equal: bool) -> list[str]:
            rows, _ = store.lead_page(run, {("facets", k): v for k, v in equal.items()}, None, 10)
            return [lead_id for lead_id, _, _ in rows]

        assert ids(status_pending=True) == ["l1"]
        assert ids(reason_no_email=True, status_rejected=True) == ["l2"]
        assert store.record(run, "l1", "calendar", lambda r: r.pause())
        assert ids(paused=True) == ["l1"] and ids(waiting=True) == []
        limit = Limit("rate_limit", "drive", datetime(2030, 1, 1, tzinfo=UTC))
        assert store.record(run, "l1", "drive", lambda r: r.wait_for(limit))
        assert ids(paused=True) == ids(waiting=True) == ["l1"]
        failed = Ending(Status.FAILED, reason="permanent_error")
        assert store.finish(run, "l1", "drive", failed)
        assert ids(waiting=True) == [] and ids(status_failed=True, paused=True) == ["l1"]
        assert ids(status_pending=True) == ["l1"]  # calendar still is
        assert store.finish(run, "l1", "calendar", Ending(Status.DONE, "booked"))
        assert ids(status_pending=True) == ids(paused=True) == []
        assert ids(status_done=True) == ids(reason_permanent_error=True) == ["l1"]
        rows, more = store.lead_page(run, {}, None, 1)
        assert (rows[0][0], sorted(rows[0][2]), more) == ("l1", actions, True)
        assert rows[0][2]["calendar"]["outcome"] == "booked"
        rows, more = store.lead_page(run, {}, "l1", 1)
        assert ([r[0] for r in rows], more) == (["l2"], False)
    finally:  # the session stack's sweeper must not find them
        paths_ = [paths.receipt(run, lead, a) for lead in ("l1", "l2") for a in actions]
        docs.commit([Commit([Write(path, None) for path in paths_])])


def test_a_transition_that_moves_no_facet_does_not_write_the_lead(docs: Any) -> None:
    store, run = Store(docs, lease_s=60), unique("quiet")
    _run_lead(store, run, "l1", ["drive"], None)
    try:
        lead_path = paths.lead(run, "l1")
        before = docs.read([lead_path])[lead_path]
        store.claim(run, "l1", "drive", "owner-a", _now())  # a lease and an attempt: same facets
        store.checkpoint(run, "l1", "drive", {"folderId": "f1"})
        assert docs.read([lead_path])[lead_path].version == before.version
    finally:
        docs.commit([Commit([Write(paths.receipt(run, "l1", "drive"), None)])])
