"""Firestore adapter of `common.documents.Documents`, on the library's public API only.

A guarded write is a `WriteBatch` write with the library's preconditions: `create` (must not
exist) or `update`/`delete` with `last_update_time`. A batch is atomic: one failed precondition
and nothing is written. Counters are sharded (one Firestore document sustains about one write a
second): each commit adds its counter changes to one random shard with `Increment`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from common import paths
from common.documents import ABSENT, SERVER_TIME, Changed, Commit, Stored

# What a commit raises when a precondition failed: the documents changed since they were read.
CHANGED = (gexc.FailedPrecondition, gexc.Conflict, gexc.AlreadyExists, gexc.Aborted, gexc.NotFound)


def _value(value: Any) -> Any:
    return firestore.SERVER_TIMESTAMP if value is SERVER_TIME else value


def _fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _value(value) for key, value in data.items()}


def _increments(changes: Mapping[str, int]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        group, _, name = key.partition(".")
        nested.setdefault(group, {})[name] = firestore.Increment(value)
    return nested


class FirestoreDocuments:
    """Documents in Firestore (or its emulator, when FIRESTORE_EMULATOR_HOST is set)."""

    def __init__(self, client: firestore.Client, shards: int = 8) -> None:
        self.db = client
        self.shards = shards

    def read(self, doc_paths: Sequence[str]) -> dict[str, Stored | None]:
        """The documents at `doc_paths`, in one round trip."""
        found: dict[str, Stored | None] = dict.fromkeys(doc_paths)
        refs = [self.db.document(path) for path in dict.fromkeys(doc_paths)]
        for snap in self.db.get_all(refs):
            if snap.exists:
                found[snap.reference.path] = Stored(snap.to_dict() or {}, snap.update_time)
        return found

    def commit(self, commits: Sequence[Commit]) -> dict[str, Any]:
        """All writes of `commits` as one atomic batch; the version each document has now."""
        batch = self.db.batch()
        written: list[str] = []  # the path of each write, in the order of the batch's results
        for commit in commits:
            for write in commit.writes:
                if self._add(batch, write.path, write.data, write.guard, write.merge):
                    written.append(write.path)
            changes = {k: v for k, v in commit.counts.items() if v}
            if changes and commit.run_id is not None:
                shard = paths.counter_shard(commit.run_id, random.randrange(self.shards))
                batch.set(self.db.document(shard), _increments(changes), merge=True)
                written.append(shard)
        try:
            results = batch.commit()
        except CHANGED as exc:
            raise Changed(str(exc)) from exc
        if len(results) != len(written):  # not one result a write: say no version at all
            return {}
        return {
            path: result.update_time
            for path, result in zip(written, results, strict=True)
            if result.update_time is not None  # a delete leaves none
        }

    def _add(
        self, batch: Any, path: str, data: Mapping[str, Any] | None, guard: Any, merge: bool
    ) -> bool:
        """Add one write to `batch` (False: there was nothing to write)."""
        ref = self.db.document(path)
        if guard is ABSENT:
            if data is not None:
                batch.create(ref, _fields(data))
            return data is not None
        option = None if guard is None else self.db.write_option(last_update_time=guard)
        if data is None:
            batch.delete(ref, option=option)
        elif guard is None:
            batch.set(ref, _fields(data), merge=merge)
        else:
            batch.update(ref, _fields(data), option=option)
        return True

    def children(self, collection: str) -> list[tuple[str, Stored]]:
        """Every document of one collection."""
        return [
            (snap.id, Stored(snap.to_dict() or {}, snap.update_time))
            for snap in self.db.collection(collection).stream()
        ]

    def page(
        self,
        collection: str,
        equal: Mapping[tuple[str, ...], Any],
        after: str | None,
        limit: int,
    ) -> list[tuple[str, Stored]]:
        """One query ordered by document id from a start-after cursor, with a limit. Equalities
        alone need no composite index: Firestore merges the single-field ones."""
        query: Any = self.db.collection(collection)
        for segments, value in equal.items():
            path = FieldPath(*segments).to_api_repr()  # quotes a map key of any characters
            query = query.where(filter=FieldFilter(path, "==", value))
        query = query.order_by(FieldPath.document_id())
        if after is not None:
            query = query.start_after({FieldPath.document_id(): after})
        return [
            (snap.id, Stored(snap.to_dict() or {}, snap.update_time))
            for snap in query.limit(limit).stream()
        ]

    def latest(self, collection: str, field_name: str) -> Any:
        """One indexed read: the collection ordered by the field, descending (the automatic
        single-field index); `> ""` keeps documents without it, or with null, out."""
        query = (
            self.db.collection(collection)
            .where(filter=FieldFilter(field_name, ">", ""))
            .order_by(field_name, direction=firestore.Query.DESCENDING)
            .limit(1)
        )
        for snap in query.stream():
            return (snap.to_dict() or {}).get(field_name)
        return None

    def counters(self, run_id: str) -> Counter[str]:
        """The sum of a run's counter shards, as `{"counts.booked": 3, ...}`."""
        total: Counter[str] = Counter()
        for _, shard in self.children(paths.counters(run_id)):
            for group, values in shard.data.items():
                for name, value in (values or {}).items():
                    total[f"{group}.{name}"] += int(value)
        return total

    def stale_receipts(
        self, older_than: datetime, limit: int
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Receipts with work left and no time to wait for (`watched`) untouched since
        `older_than` (collection-group index on watched + updatedAt,
        infra/firestore.indexes.json)."""
        query = (
            self.db.collection_group("receipts")
            .where(filter=FieldFilter("watched", "==", True))
            .where(filter=FieldFilter("updatedAt", "<", older_than))
            .limit(limit)
        )
        found = []
        for snap in query.stream():
            lead_ref = snap.reference.parent.parent
            found.append((lead_ref.parent.parent.id, lead_ref.id, snap.id, snap.to_dict() or {}))
        return found

    def due_receipts(
        self, now_stamp: str, after_stamp: str | None = None
    ) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Waiting receipts (an action, or a revert) now due (collection-group index on sweepable
        + waiting.until, infra/firestore.indexes.json). Stamps are all UTC with a Z, so text order
        is time order."""
        query = (
            self.db.collection_group("receipts")
            .where(filter=FieldFilter("sweepable", "==", True))
            .where(filter=FieldFilter("waiting.until", "<=", now_stamp))
        )
        if after_stamp is not None:
            query = query.where(filter=FieldFilter("waiting.until", ">", after_stamp))
        for snap in query.order_by("waiting.until").stream():
            lead_ref = snap.reference.parent.parent
            yield lead_ref.parent.parent.id, lead_ref.id, snap.id, snap.to_dict() or {}

    def next_wait(self, after_stamp: str | None = None) -> str | None:
        """The soonest wait's end (the due query's index, one document read)."""
        query = self.db.collection_group("receipts").where(
            filter=FieldFilter("sweepable", "==", True)
        )
        if after_stamp is not None:
            query = query.where(filter=FieldFilter("waiting.until", ">", after_stamp))
        else:
            query = query.where(filter=FieldFilter("waiting.until", ">", ""))
        for snap in query.order_by("waiting.until").limit(1).stream():
            return str(((snap.to_dict() or {}).get("waiting") or {}).get("until"))
        return None
