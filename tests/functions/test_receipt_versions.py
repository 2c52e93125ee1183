"""Writes without reading first: receipt and hold versions, against the Firestore emulator.

Schedule's message carries the update time of each pending receipt it created; a delivery claims
with a write guarded by that time, and later writes are guarded by the time of its own last write.
Whenever the document changed in between, the guarded write fails and the read path decides, so
what is stored and counted is the same as if every step had read first.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.http import CloudEvent
from google.cloud import firestore

from common import paths
from common.bus import Outgoing, PubSubBus
from common.entrypoints import decode_delivery
from common.handlers.delivery import Delivery, Work, handle_delivery, terminal
from common.handlers.intake import committed_messages, plan_intake
from common.models import ScheduleRequest
from common.receipts import new_receipt
from common.store import (
    Claim,
    FirestoreStore,
    IntakeWrite,
    LeaseHeld,
    Settlement,
    SlotHold,
    decode_version,
    encode_version,
    intake_changes,
)
from tests.support import lead, next_weekday, request, slot, unique

pytestmark = pytest.mark.integration

BOOKED = terminal("done", "booked", external={"eventId": "e1"})


def _intake(
    store: FirestoreStore, actions: tuple[str, ...] = ("calendar", "email")
) -> tuple[str, str, dict]:
    run_id, lead_id = f"versions-{uuid.uuid4().hex[:10]}", "lead-1"
    lead = {"lead": {"leadDocId": lead_id}, "actions": list(actions), "status": "accepted"}
    receipts = {action: new_receipt(action, dry_run=False) for action in actions}
    write = IntakeWrite(
        lead_doc_id=lead_id,
        lead=lead,
        lead_exists=False,
        receipts=receipts,
        receipt_update_times={},
        changes=intake_changes(None, lead, {}, receipts),
    )
    created = store.write_intake(run_id, [write])
    return run_id, lead_id, created


def _receipt(db: firestore.Client, run_id: str, lead_id: str, action: str) -> dict:
    return db.document(paths.receipt(run_id, lead_id, action)).get().to_dict() or {}


@pytest.fixture()
def store(db: firestore.Client) -> FirestoreStore:
    return FirestoreStore(db, lease_s=60)


def test_intake_returns_the_stored_update_time_of_each_created_receipt(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, created = _intake(store)
    assert set(created) == {(lead_id, "calendar"), (lead_id, "email")}
    for (lead_doc_id, action), version in created.items():
        stored = db.document(paths.receipt(run_id, lead_doc_id, action)).get().update_time
        assert decode_version(encode_version(version)) == stored


def test_claim_with_the_created_version_then_finish_counts_once(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, created = _intake(store)
    claim = store.claim(run_id, lead_id, "calendar", "d1", created=created[(lead_id, "calendar")])
    assert (claim.terminal, claim.attempt, claim.version is not None) == (False, 1, True)
    stored = _receipt(db, run_id, lead_id, "calendar")
    assert stored["attempts"] == 1 and stored["lease"]["owner"] == "d1"

    assert store.finish(run_id, lead_id, "calendar", BOOKED, claim=claim)
    stored = _receipt(db, run_id, lead_id, "calendar")
    assert (stored["status"], stored["outcome"], stored["lease"]) == ("done", "booked", None)
    counts = store.counters(run_id)["counts"]
    assert (counts["booked"], counts["pending"], counts["accepted"]) == (1, 1, 1)


def test_a_duplicate_with_the_same_version_reads_and_finds_the_lease_taken(
    store: FirestoreStore,
) -> None:
    run_id, lead_id, created = _intake(store)
    version = created[(lead_id, "calendar")]
    first = store.claim(run_id, lead_id, "calendar", "d1", created=version)
    with pytest.raises(LeaseHeld):
        store.claim(run_id, lead_id, "calendar", "d2", created=version)
    store.finish(run_id, lead_id, "calendar", BOOKED, claim=first)
    again = store.claim(run_id, lead_id, "calendar", "d3", created=version)
    assert again.terminal and again.receipt["outcome"] == "booked"


def test_a_version_that_no_longer_matches_takes_the_read_path(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, created = _intake(store)
    version = created[(lead_id, "calendar")]
    # An earlier delivery claimed, failed and gave the lease back: attempts is 1 now.
    store.claim(run_id, lead_id, "calendar", "d1", created=version)
    store.release(run_id, lead_id, "calendar", "d1", {"code": "transient", "message": "503"})
    claim = store.claim(run_id, lead_id, "calendar", "d2", created=version)
    assert claim.attempt == 2 and claim.resumed
    assert _receipt(db, run_id, lead_id, "calendar")["attempts"] == 2


def test_finish_with_a_stale_claim_rereads_and_never_counts_twice(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, created = _intake(store)
    slow = store.claim(run_id, lead_id, "calendar", "d1", created=created[(lead_id, "calendar")])
    # Its lease expires; another delivery takes over and finishes first.
    ref = db.document(paths.receipt(run_id, lead_id, "calendar"))
    ref.update({"lease.expiresAt": datetime.now(UTC) - timedelta(seconds=1)})
    other = store.claim(run_id, lead_id, "calendar", "d2")
    assert store.finish(run_id, lead_id, "calendar", BOOKED, claim=other)
    assert not store.finish(run_id, lead_id, "calendar", BOOKED, claim=slow)
    assert store.counters(run_id)["counts"]["booked"] == 1


def _fresh_claim(
    db: firestore.Client, store: FirestoreStore, action: str, *, changed: bool = False
) -> tuple[str, str, Claim]:
    """A first delivery's claim of a new receipt; with `changed`, the receipt is then changed
    behind the claim's back (as another writer would), so the claim's version is stale."""
    run_id, lead_id, created = _intake(store)
    claim = store.claim(run_id, lead_id, action, "d1", created=created[(lead_id, action)])
    if changed:
        db.document(paths.receipt(run_id, lead_id, action)).update({"error": {"code": "x"}})
    return run_id, lead_id, claim


def test_checkpoint_moves_the_version_so_finish_still_needs_no_read(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, claim = _fresh_claim(db, store, "email")
    before = claim.version
    store.checkpoint(run_id, lead_id, "email", {"draftId": "r1", "kind": "confirmation"}, claim)
    assert claim.version is not None and claim.version != before
    assert claim.receipt["checkpoint"] == {"draftId": "r1", "kind": "confirmation"}
    assert store.finish(run_id, lead_id, "email", terminal("done", "sent"), claim=claim)
    stored = _receipt(db, run_id, lead_id, "email")
    assert (stored["status"], stored["checkpoint"]["draftId"]) == ("done", "r1")


def test_checkpoint_on_a_changed_receipt_is_still_written(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, claim = _fresh_claim(db, store, "email", changed=True)
    store.checkpoint(run_id, lead_id, "email", {"draftId": "r2", "kind": "confirmation"}, claim)
    assert claim.version is None
    assert _receipt(db, run_id, lead_id, "email")["checkpoint"]["draftId"] == "r2"
    assert store.finish(run_id, lead_id, "email", terminal("done", "sent"), claim=claim)
    assert store.counters(run_id)["counts"]["sent"] == 1


def _fresh_hold(minutes: int) -> tuple[str, SlotHold]:
    start = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    return f"cal-{uuid.uuid4().hex[:8]}", SlotHold(start, start + timedelta(minutes=minutes))


def test_slot_claims_create_without_reading_and_see_each_other(
    db: firestore.Client, store: FirestoreStore
) -> None:
    key, hold = _fresh_hold(30)
    mine = store.claim_slot(key, hold, "lead-a", timedelta(minutes=5))
    assert mine.conflicts == [] and len(mine.versions) == 2
    theirs = store.claim_slot(key, hold, "lead-b", timedelta(minutes=5))
    assert set(theirs.conflicts) == {hold}

    store.settle_slot(key, hold, "lead-a", booked=True, versions=mine.versions)
    docs = [db.document(path).get().to_dict() or {} for path in mine.versions]
    assert all(d["booked"] and d["owner"] == "lead-a" for d in docs)
    assert all(d["expiresAt"] == hold.end for d in docs)


def test_settle_with_stale_versions_settles_what_is_there(
    db: firestore.Client, store: FirestoreStore
) -> None:
    key, hold = _fresh_hold(15)
    mine = store.claim_slot(key, hold, "lead-a", timedelta(minutes=5))
    (path,) = mine.versions
    db.document(path).update({"expiresAt": datetime.now(UTC) + timedelta(minutes=9)})
    store.settle_slot(key, hold, "lead-a", booked=False, versions=mine.versions)
    assert not db.document(path).get().exists


def test_finish_keeps_the_holds_as_booked_in_the_same_commit(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, claim = _fresh_claim(db, store, "calendar")
    key, hold = _fresh_hold(30)
    held = store.claim_slot(key, hold, "lead-a", timedelta(minutes=5))
    settle = Settlement(key, hold, "lead-a", held.versions)
    assert store.finish(run_id, lead_id, "calendar", BOOKED, claim=claim, settle=settle)
    docs = [db.document(path).get().to_dict() or {} for path in held.versions]
    assert all(d["booked"] and d["expiresAt"] == hold.end for d in docs)
    assert _receipt(db, run_id, lead_id, "calendar")["status"] == "done"


def test_finish_with_a_stale_claim_still_keeps_the_holds(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id, lead_id, claim = _fresh_claim(db, store, "calendar", changed=True)
    key, hold = _fresh_hold(15)
    held = store.claim_slot(key, hold, "lead-a", timedelta(minutes=5))
    settle = Settlement(key, hold, "lead-a", held.versions)
    assert store.finish(run_id, lead_id, "calendar", BOOKED, claim=claim, settle=settle)
    (path,) = held.versions
    assert (db.document(path).get().to_dict() or {})["booked"] is True
    assert store.counters(run_id)["counts"]["booked"] == 1


def _accept(store: FirestoreStore, body: dict) -> list[Outgoing]:
    """What schedule does with `body`: plan, write, and the messages it would publish."""
    request = ScheduleRequest.model_validate_json(json.dumps(body))
    store.open_run(request.runId, "uid-1", False)
    plan = plan_intake(store, request)
    created = store.write_intake(request.runId, plan.writes, (plan.settings_id, plan.settings))
    return committed_messages(plan, created)


def test_messages_carry_the_lead_written_with_their_receipts(store: FirestoreStore) -> None:
    run_id = unique("versions")
    messages = _accept(store, request(run_id, [lead("lead-1", [slot(next_weekday())])]))
    by_action = {m.action: m for m in messages}
    assert set(by_action) == {"calendar", "drive"}  # the email follows the booking
    calendar = by_action["calendar"]
    assert set(calendar.versions or {}) == {"calendar", "email"}
    assert calendar.lead is not None and calendar.lead["lead"]["email"] == "lead-1@acme.test"
    assert set(calendar.lead) == {"lead", "actions", "settingsId"}
    claim = store.claim(
        run_id, "lead-1", "calendar", "d1", created=decode_version(calendar.versions["calendar"])
    )
    assert claim.fresh


def test_rewriting_a_lead_gives_its_pending_receipts_new_versions(
    db: firestore.Client, store: FirestoreStore
) -> None:
    run_id = unique("versions")
    first = _accept(store, request(run_id, [lead("lead-1", [slot(next_weekday())])]))
    drive = next(m for m in first if m.action == "drive")
    # The booking found no slot; the lead engine sends the lead again with a new address while
    # the first drive message is still on its way.
    calendar = store.claim(run_id, "lead-1", "calendar", "d1")
    store.finish(
        run_id, "lead-1", "calendar", terminal("done", "no_slot", reason="no_slot"), claim=calendar
    )
    store.finish(run_id, "lead-1", "email", terminal("done", "drafted"))
    again = request(run_id, [lead("lead-1", [slot(next_weekday(3))], email="ana@new.test")])
    _accept(store, again)
    stored = db.document(paths.lead(run_id, "lead-1")).get().to_dict() or {}
    assert stored["lead"]["email"] == "ana@new.test"
    # The old drive message no longer matches: its delivery reads the lead instead.
    claim = store.claim(
        run_id, "lead-1", "drive", "d2", created=decode_version((drive.versions or {})["drive"])
    )
    assert not claim.fresh and claim.attempt == 1


def test_hints_a_message_carries_never_make_it_undecodable(function_env: dict[str, str]) -> None:
    body = {
        "runId": "run-1",
        "leadDocId": "lead-1",
        "action": "drive",
        "versions": {"drive": 5, "calendar": "9" * 40, "email": "not-a-time"},
        "lead": "not a lead document",
    }
    event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//test", "id": "e1"},
        {
            "message": {
                "data": base64.b64encode(json.dumps(body).encode()).decode(),
                "attributes": {"runId": "run-1", "leadDocId": "lead-1", "action": "drive"},
                "messageId": "m-1",
            }
        },
    )
    delivery = decode_delivery(event)
    assert delivery is not None and (delivery.run_id, delivery.action) == ("run-1", "drive")
    assert delivery.versions == {"email": "not-a-time"}  # kept as text, worthless as a version
    assert decode_version(delivery.versions["email"]) is None
    assert delivery.lead_doc is None


def test_a_carried_lead_that_does_not_validate_is_read_from_firestore(
    store: FirestoreStore, function_env: dict[str, str]
) -> None:
    run_id = unique("versions")
    messages = _accept(store, request(run_id, [lead("lead-1", [slot(next_weekday())])]))
    drive = next(m for m in messages if m.action == "drive")
    broken = {**(drive.lead or {}), "lead": {"leadDocId": "lead-1", "email": 7}}
    seen: list[str | None] = []

    def effect(work: Work) -> dict:
        seen.append(work.lead.email)
        return terminal("done", "created")

    delivery = Delivery(
        run_id,
        "lead-1",
        "drive",
        "m-1",
        datetime.now(UTC),
        versions=drive.versions or {},
        lead_doc=broken,
    )
    bus = PubSubBus(function_env["GOOGLE_CLOUD_PROJECT"])
    assert handle_delivery(store, bus, delivery, effect, max_age=timedelta(hours=1)) == "created"
    assert seen == ["lead-1@acme.test"]
    assert (store.get_receipt(run_id, "lead-1", "drive") or {})["status"] == "done"
