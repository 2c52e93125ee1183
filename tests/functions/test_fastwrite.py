"""The raw-protobuf create path writes exactly what the client library's `create` writes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from google.api_core.exceptions import Conflict
from google.cloud import firestore

from common.fastwrite import add_create, create_write

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
    from datetime import UTC, datetime

    with pytest.raises(TypeError):
        create_write("projects/p/databases/(default)/documents/a/b", {"when": datetime.now(UTC)})
    ref = db.collection("fastwrite").document(uuid.uuid4().hex)
    batch = db.batch()
    add_create(batch, ref, {"when": datetime(2026, 1, 1, tzinfo=UTC), "a.b": 1})
    batch.commit()
    assert ref.get().to_dict()["when"] == datetime(2026, 1, 1, tzinfo=UTC)
