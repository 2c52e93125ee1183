"""The raw-protobuf create path writes exactly what the client library's `create` writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core.exceptions import AlreadyExists, Conflict, FailedPrecondition
from google.cloud import firestore
from google.cloud.firestore_v1 import SERVER_TIMESTAMP
from google.cloud.firestore_v1.types import write as write_types

from common.fastwrite import RawCommit, add_create, create_write, increment_write, update_write

pytestmark = pytest.mark.integration

DOC: dict[str, Any] = {
    "lead": {
        "leadDocId": "lead-001",
        "email": "ana@acme.test",
        "name": 'Ana "Zé" Silva — ☕',
        "company": None,
        "candidateSlots": [{"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T15:30:00Z"}],
        "emailBody": "line one\nline two",
    },
    "actions": ["calendar", "email", "drive"],
    "status": "accepted",
    "reason": None,
    "attempts": 0,
    "ratio": 0.5,
    "dryRun": False,
    "empty": {},
    "none": [],
    "big": 2**62,
    "createdAt": firestore.SERVER_TIMESTAMP,
    "updatedAt": firestore.SERVER_TIMESTAMP,
}


def _written(db: firestore.Client, fast: bool) -> dict[str, Any]:
    ref = db.collection("fastwrite").document(uuid.uuid4().hex)
    batch = db.batch()
    if fast:
        add_create(batch, ref, dict(DOC))
    else:
        batch.create(ref, dict(DOC))
    batch.commit()
    data = ref.get().to_dict() or {}
    assert data.pop("createdAt") is not None and data.pop("updatedAt") is not None
    return data


def test_fast_and_library_creates_store_the_same_document(db: firestore.Client) -> None:
    assert _written(db, fast=True) == _written(db, fast=False)


def test_fast_create_keeps_the_must_not_exist_precondition(db: firestore.Client) -> None:
    ref = db.collection("fastwrite").document(uuid.uuid4().hex)
    ref.set({"x": 1})
    batch = db.batch()
    add_create(batch, ref, {"x": 2})
    with pytest.raises(Conflict):
        batch.commit()
    assert ref.get().to_dict() == {"x": 1}


def test_values_it_cannot_encode_fall_back_to_the_library(db: firestore.Client) -> None:
    with pytest.raises(TypeError):
        create_write("projects/p/databases/(default)/documents/a/b", {"blob": b"\x00"})
    ref = db.collection("fastwrite").document(uuid.uuid4().hex)
    batch = db.batch()
    add_create(batch, ref, {"blob": b"\x00", "a.b": 1})
    batch.commit()
    assert ref.get().to_dict()["blob"] == b"\x00"


WHEN = datetime(2026, 12, 1, 15, 0, 0, 123456, tzinfo=UTC)
UPDATES: list[dict[str, Any]] = [
    {"attempts": 1, "lease": {"owner": "m:1", "expiresAt": WHEN}, "updatedAt": SERVER_TIMESTAMP},
    {"checkpoint.draftId": "r1", "checkpoint.kind": "confirmation"},
    {
        "status": "done",
        "outcome": "booked",
        "reason": None,
        "external": {"eventId": "e", "n": 2},
        "error": None,
        "lease": None,
        "updatedAt": SERVER_TIMESTAMP,
    },
    {"booked": True, "expiresAt": datetime(2026, 12, 1, 15, 30)},  # naive: taken as UTC
    {"updatedAt": SERVER_TIMESTAMP},
]


@pytest.mark.parametrize("data", UPDATES)
@pytest.mark.parametrize("guarded", [False, True])
def test_update_write_is_the_librarys_write(
    db: firestore.Client, data: dict[str, Any], guarded: bool
) -> None:
    ref = db.document("fastwrite/doc")
    option = db.write_option(last_update_time=WHEN) if guarded else None
    batch = db.batch()
    batch.update(ref, dict(data), option=option)
    (library,) = batch._write_pbs
    raw = update_write(ref._document_path, data, WHEN if guarded else None)
    assert write_types.Write.pb(library) == raw


def test_increment_write_is_the_librarys_write(db: firestore.Client) -> None:
    ref = db.document("fastwrite/shard-1")
    batch = db.batch()
    batch.set(
        ref,
        {
            "counts": {"booked": firestore.Increment(1), "pending": firestore.Increment(-1)},
            "reasons": {"no_slot": firestore.Increment(2)},
        },
        merge=True,
    )
    (library,) = batch._write_pbs
    raw = increment_write(
        ref._document_path, {"counts.booked": 1, "counts.pending": -1, "reasons.no_slot": 2}
    )
    assert write_types.Write.pb(library) == raw


def test_raw_commit_applies_guarded_writes_and_answers_like_the_library(
    db: firestore.Client,
) -> None:
    ref = db.collection("fastwrite").document(uuid.uuid4().hex)
    created = ref.create({"attempts": 0}).update_time
    commit = RawCommit(db)
    (version,) = commit([update_write(ref._document_path, UPDATES[0], created)])
    assert version == ref.get().update_time
    assert ref.get().to_dict()["lease"] == {"owner": "m:1", "expiresAt": WHEN}
    with pytest.raises(FailedPrecondition):  # the same guard again: the document has moved on
        commit([update_write(ref._document_path, {"attempts": 2}, created)])
    with pytest.raises(AlreadyExists):
        commit([create_write(ref._document_path, {"x": 1})])
    assert ref.get().to_dict()["attempts"] == 1
