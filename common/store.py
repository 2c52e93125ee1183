"""Firestore adapter: runs, leads, receipts with leases, sharded counters, slot holds.

Every receipt transition is one atomic commit, guarded by the receipt's update time, that also moves
the counters by the difference between what the old and the new receipt count for
(`receipts.delta`), so diagnostics can never drift from the receipts, however often a message is
redelivered. No transactions: decisions 0001, 0005 and 0006.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.transaction import Transaction
from google.protobuf.timestamp_pb2 import Timestamp

from common import paths
from common.fastwrite import (
    RawCommit,
    Unsupported,
    add_create,
    create_write,
    increment_write,
    update_write,
)
from common.models import RunSettings
from common.receipts import counted_keys, delta, fold, is_terminal, lead_keys

# Matches the expanded search's grid: a 30-minute meeting touches two or three buckets.
HOLD_BUCKET = timedelta(minutes=15)
OPTIMISTIC_ROUNDS = 12
WRITES_PER_BATCH = 400
_COMMITS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="intake-commit")


# What a guarded write raises when the document changed since it was read.
CHANGED = (gexc.FailedPrecondition, gexc.Conflict, gexc.AlreadyExists, gexc.Aborted, gexc.NotFound)


class LeaseHeld(Exception):
    """Another delivery is working on this receipt right now: retry later."""


class ReceiptMissing(Exception):
    """A message names a receipt that schedule never wrote."""


def encode_version(update_time: Any) -> str:
    """A document's update time as `seconds.nanos`, to carry in a message."""
    pb = update_time.timestamp_pb()
    return f"{pb.seconds}.{pb.nanos:09d}"


def decode_version(text: Any) -> DatetimeWithNanoseconds | None:
    """The update time `encode_version` wrote, or None for anything else."""
    if not isinstance(text, str):
        return None
    seconds, dot, nanos = text.partition(".")
    if not (dot and seconds.isdigit() and nanos.isdigit() and len(nanos) == 9):
        return None
    return DatetimeWithNanoseconds.from_timestamp_pb(
        Timestamp(seconds=int(seconds), nanos=int(nanos))
    )


@dataclass
class Claim:
    """A delivery's hold on one receipt, or the news that there is nothing to do.

    `version` is the receipt's update time as this delivery last wrote it: while it still
    matches, the receipt is exactly `receipt`, so the next write needs no read first.
    """

    terminal: bool
    receipt: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    version: Any = None
    fresh: bool = False  # claimed with schedule's version: the receipt was untouched till now

    @property
    def resumed(self) -> bool:
        """An earlier delivery started this work: find out what it did before doing it again."""
        return self.attempt > 1


@dataclass(frozen=True)
class SlotHold:
    """An interval a lead holds on a calendar while it books."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Settlement:
    """Holds to keep as booked, written in the same commit as the booking's receipt."""

    calendar_key: str
    hold: SlotHold
    owner: str
    versions: Mapping[str, Any]


@dataclass
class SlotClaim:
    """The answer to a slot claim: conflicting holds, or (none) the versions of ours."""

    conflicts: list[SlotHold]
    versions: dict[str, Any] = field(default_factory=dict)  # hold path -> our write's time


def _shard_update(changes: Mapping[str, int]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        group, _, name = key.partition(".")
        nested.setdefault(group, {})[name] = firestore.Increment(value)
    return nested


class FirestoreStore:
    """Every read and write of the project's Firestore data."""

    def __init__(self, client: firestore.Client, shards: int = 8, lease_s: int = 120) -> None:
        self.db = client
        self._raw_commit = RawCommit(client)
        self.shards = shards
        self.lease = timedelta(seconds=lease_s)
        self._runs: dict[str, dict[str, Any]] = {}
        self._settings: dict[str, RunSettings] = {}

    # -- commits of known writes -----------------------------------------------------------
    def _commit(self, ops: list[Op]) -> list[Any]:
        """Commit `ops` atomically; the update time of each, in order.

        Raw protobuf writes (`common.fastwrite`: the same `Write`s, without proto-plus) unless a
        value needs the library; errors are the library's either way.
        """
        try:
            writes = [op.raw() for op in ops]
        except Unsupported:
            batch = self.db.batch()
            for op in ops:
                op.add_to(self.db, batch)
            return [result.update_time for result in batch.commit()]
        return self._raw_commit(writes)

    def _shard(self, run_id: str) -> Any:
        return self.db.document(paths.counter_shard(run_id, random.randrange(self.shards)))

    # -- counters -------------------------------------------------------------------------
    def _bump(self, writer: Any, run_id: str, changes: Mapping[str, int]) -> None:
        """Add `changes` to a random shard, inside the caller's transaction or batch."""
        if not changes:
            return
        shard = self.db.document(paths.counter_shard(run_id, random.randrange(self.shards)))
        writer.set(shard, _shard_update(changes), merge=True)

    def counters(self, run_id: str) -> dict[str, Any]:
        """The sum of a run's counter shards, folded into `counts` and `reasons`."""
        total: Counter[str] = Counter()
        for snap in self.db.collection(paths.counters(run_id)).stream():
            data = snap.to_dict() or {}
            for group in ("counts", "reasons"):
                for name, value in (data.get(group) or {}).items():
                    total[f"{group}.{name}"] += int(value)
        return fold(total)

    # -- runs -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run document, or None."""
        snap = self.db.document(paths.run(run_id)).get()
        return snap.to_dict() if snap.exists else None

    def run_mode(self, run_id: str) -> dict[str, Any] | None:
        """`ownerUid` and `dryRun` of a run, cached: neither ever changes once the run exists."""
        cached = self._runs.get(run_id)
        if cached is None:
            run = self.get_run(run_id)
            if run is None:
                return None
            cached = {"ownerUid": run.get("ownerUid"), "dryRun": bool(run.get("dryRun"))}
            if len(self._runs) > 4096:
                self._runs.clear()
            self._runs[run_id] = cached
        return cached

    def open_run(self, run_id: str, uid: str, dry_run: bool) -> dict[str, Any]:
        """Create the run, or return it as it is; the caller checks owner and mode."""
        ref = self.db.document(paths.run(run_id))

        @firestore.transactional
        def work(tx: Transaction) -> dict[str, Any]:
            snap = ref.get(transaction=tx)
            if snap.exists:
                return snap.to_dict() or {}
            data = {
                "ownerUid": uid,
                "dryRun": dry_run,
                "createdAt": firestore.SERVER_TIMESTAMP,
                "updatedAt": firestore.SERVER_TIMESTAMP,
            }
            tx.create(ref, data)
            return {"ownerUid": uid, "dryRun": dry_run, "created": True}

        return work(self.db.transaction())

    def touch_run(self, run_id: str) -> None:
        """Move the run's `updatedAt`."""
        self.db.document(paths.run(run_id)).update({"updatedAt": firestore.SERVER_TIMESTAMP})

    def set_client_stages(self, run_id: str, stages: dict[str, Any]) -> None:
        """Record the lead engine's own funnel stages (last write wins)."""
        doc = dict(stages, updatedAt=firestore.SERVER_TIMESTAMP)
        self.db.document(paths.client_stages(run_id)).set(doc)

    def client_stages(self, run_id: str) -> dict[str, Any]:
        """The lead engine's funnel stages, or {}."""
        snap = self.db.document(paths.client_stages(run_id)).get()
        return (snap.to_dict() or {}) if snap.exists else {}

    # -- leads ----------------------------------------------------------------------------
    def get_lead(self, run_id: str, lead_doc_id: str) -> dict[str, Any] | None:
        """One lead document, or None."""
        snap = self.db.document(paths.lead(run_id, lead_doc_id)).get()
        return snap.to_dict() if snap.exists else None

    def snapshot_leads(
        self, run_id: str, lead_ids: Iterable[str], actions: Iterable[str]
    ) -> dict[str, tuple[Any, dict[str, Any]]]:
        """Existing leads among `lead_ids`: id -> (lead snapshot, {action: receipt snapshot})."""
        refs = [self.db.document(paths.lead(run_id, lead_id)) for lead_id in lead_ids]
        found = {snap.id: snap for snap in self.db.get_all(refs) if snap.exists}
        receipt_refs = [
            self.db.document(paths.receipt(run_id, lead_id, action))
            for lead_id in found
            for action in actions
        ]
        receipts: dict[str, dict[str, Any]] = {lead_id: {} for lead_id in found}
        for snap in self.db.get_all(receipt_refs) if receipt_refs else []:
            if snap.exists:
                lead_id = snap.reference.parent.parent.id
                receipts[lead_id][snap.id] = snap
        return {lead_id: (found[lead_id], receipts[lead_id]) for lead_id in found}

    def lead_settings(self, run_id: str, lead: Mapping[str, Any]) -> RunSettings:
        """The settings a lead was submitted with (cached: a settings document never changes)."""
        if "settings" in lead:  # written before settings were shared between leads
            return RunSettings.model_validate(lead["settings"], strict=False)
        settings_id = str(lead["settingsId"])
        cached = self._settings.get(settings_id)
        if cached is None:
            snap = self.db.document(paths.run_settings(run_id, settings_id)).get()
            if not snap.exists:
                raise ReceiptMissing(f"settings {settings_id} of run {run_id}")
            cached = RunSettings.model_validate(snap.to_dict(), strict=False)
            if len(self._settings) > 1024:
                self._settings.clear()
            self._settings[settings_id] = cached
        actions = lead_actions(lead)
        if actions and actions != list(cached.actions):
            return cached.model_copy(update={"actions": actions})
        return cached

    def write_intake(
        self,
        run_id: str,
        writes: list[IntakeWrite],
        settings: tuple[str, dict[str, Any]] | None = None,
    ) -> dict[tuple[str, str], Any]:
        """Commit new and reopened leads with their receipts and counters, in batches.

        New documents are created with a must-not-exist precondition and reopened receipts
        with a last-update precondition, so two concurrent identical requests cannot both
        count a lead: the loser's batch fails and schedule re-reads.

        Returns the update time of every receipt created here ((leadDocId, action) -> time):
        a message that carries it lets the first delivery claim without reading.
        """
        batch = self.db.batch()
        labels: list[tuple[str, str] | None] = []  # what each write of `batch` is
        changes: Counter[str] = Counter()
        commits: list[tuple[Future[Any], list[tuple[str, str] | None]]] = []
        if settings is not None and writes:
            # Content-addressed: writing it again writes the same thing.
            batch.set(self.db.document(paths.run_settings(run_id, settings[0])), settings[1])
            labels.append(None)
        for write in writes:
            if len(labels) + write.size > WRITES_PER_BATCH:
                self._bump(batch, run_id, dict(changes))
                # The emulator or Firestore commits one batch while this thread builds the next.
                commits.append((_COMMITS.submit(batch.commit), labels))
                batch, labels, changes = self.db.batch(), [], Counter()
            labels.extend(write.apply(self.db, batch, run_id))
            changes.update(write.changes)
        if labels:
            self._bump(batch, run_id, dict(changes))
            commits.append((_COMMITS.submit(batch.commit), labels))
        # Wait for every batch before raising, so a retry never races this request's own commits.
        errors = [commit.exception() for commit, _ in commits]
        for error in errors:
            if error is not None:
                raise error
        versions: dict[tuple[str, str], Any] = {}
        for commit, batch_labels in commits:
            for label, result in zip(batch_labels, commit.result(), strict=False):
                if label is not None:
                    versions[label] = result.update_time
        return versions

    # -- receipts -------------------------------------------------------------------------
    def _receipt_ref(self, run_id: str, lead_doc_id: str, action: str) -> Any:
        return self.db.document(paths.receipt(run_id, lead_doc_id, action))

    def get_receipt(self, run_id: str, lead_doc_id: str, action: str) -> dict[str, Any] | None:
        """One receipt, or None."""
        snap = self._receipt_ref(run_id, lead_doc_id, action).get()
        return snap.to_dict() if snap.exists else None

    def _guarded(self, snap: Any) -> Any:
        """A write option that fails if the document changed since `snap` was read."""
        if snap.exists:
            return self.db.write_option(last_update_time=snap.update_time)
        return self.db.write_option(exists=False)

    def claim(
        self,
        run_id: str,
        lead_doc_id: str,
        action: str,
        owner: str,
        created: DatetimeWithNanoseconds | None = None,
    ) -> Claim:
        """Take the receipt's lease for this delivery (CONTRACT §4 state machine).

        Optimistic: read, then write guarded by the read's update time; a concurrent change
        makes the write fail and the receipt is read again. Cheaper than a transaction, and no
        lock is left behind by an instance that dies in the middle.

        `created`: the update time schedule's message carries for the pending receipt it
        created. The first delivery writes its lease guarded by that time, with no read; any
        change since (another delivery, a reopen) fails the write and the read path decides.
        """
        ref = self._receipt_ref(run_id, lead_doc_id, action)
        if created is not None:
            now = datetime.now(UTC)
            lease = {"owner": owner, "expiresAt": now + self.lease}
            update = {"attempts": 1, "lease": lease, "updatedAt": firestore.SERVER_TIMESTAMP}
            try:
                (version,) = self._commit([Op("update", ref, update, created)])
            except CHANGED:
                pass
            else:
                fresh: dict[str, Any] = {
                    "action": action,
                    "status": "pending",
                    "outcome": None,
                    "reason": None,
                    "attempts": 1,
                    "lease": lease,
                }
                return Claim(terminal=False, receipt=fresh, attempt=1, version=version, fresh=True)
        for _ in range(OPTIMISTIC_ROUNDS):
            snap = ref.get()
            if not snap.exists:
                raise ReceiptMissing(ref.path)
            receipt = snap.to_dict() or {}
            if is_terminal(receipt):
                return Claim(terminal=True, receipt=receipt)
            now = datetime.now(UTC)
            held = receipt.get("lease") or {}
            if held.get("owner") not in (None, owner) and held.get("expiresAt", now) > now:
                raise LeaseHeld(ref.path)
            attempt = int(receipt.get("attempts") or 0) + 1
            update = {
                "attempts": attempt,
                "lease": {"owner": owner, "expiresAt": now + self.lease},
                "updatedAt": firestore.SERVER_TIMESTAMP,
            }
            try:
                result = ref.update(update, option=self._guarded(snap))
            except CHANGED:
                continue
            receipt["attempts"] = attempt
            receipt["lease"] = update["lease"]
            return Claim(
                terminal=False, receipt=receipt, attempt=attempt, version=result.update_time
            )
        raise LeaseHeld(f"{ref.path}: changing too often")

    def checkpoint(
        self,
        run_id: str,
        lead_doc_id: str,
        action: str,
        values: dict[str, Any],
        claim: Claim | None = None,
    ) -> None:
        """Record progress inside an effect (e.g. a Gmail draft id) before the next step.

        With the delivery's `claim`, the write is guarded by its version and moves it on, so
        `finish` can still write without reading; if the receipt changed meanwhile, the
        checkpoint is written anyway and `finish` reads first.
        """
        ref = self._receipt_ref(run_id, lead_doc_id, action)
        update = {f"checkpoint.{k}": v for k, v in values.items()}
        if claim is not None and claim.version is not None:
            try:
                (claim.version,) = self._commit([Op("update", ref, update, claim.version)])
            except CHANGED:
                claim.version = None
            else:
                claim.receipt["checkpoint"] = {**(claim.receipt.get("checkpoint") or {}), **values}
                return
        ref.update(update)

    def finish(
        self,
        run_id: str,
        lead_doc_id: str,
        action: str,
        fields: dict[str, Any],
        *,
        only_if_open: bool = True,
        claim: Claim | None = None,
        settle: Settlement | None = None,
    ) -> bool:
        """Move a receipt to a new state with its counters; False if it was already terminal.

        The receipt update (guarded by the update time read) and the counter increments are one
        atomic batch, so a transition is counted exactly once. With the delivery's `claim`
        still current (its version), the receipt is known without reading it, and `settle`'s
        holds are kept as booked in the same commit; otherwise they are settled on their own.
        """
        ref = self._receipt_ref(run_id, lead_doc_id, action)
        if settle is not None and not self._versioned(settle):
            self.settle_slot(settle.calendar_key, settle.hold, settle.owner, booked=True)
            settle = None
        if claim is not None and claim.version is not None:
            version, claim.version = claim.version, None
            old = claim.receipt
            update = {**fields, "lease": None, "updatedAt": firestore.SERVER_TIMESTAMP}
            ops = [Op("update", ref, update, version)]
            changes = delta(counted_keys(old), counted_keys({**old, **fields, "lease": None}))
            if changes:
                ops.append(Op("increment", self._shard(run_id), changes))
            if settle is not None:
                ops.extend(self._settlement(settle.calendar_key, settle.hold, settle.versions))
            try:
                self._commit(ops)
            except CHANGED:
                pass
            else:
                return True
        try:
            return self._finish_read_first(ref, run_id, fields, only_if_open)
        finally:
            if settle is not None:
                self.settle_slot(
                    settle.calendar_key,
                    settle.hold,
                    settle.owner,
                    booked=True,
                    versions=settle.versions,
                )

    def _finish_read_first(
        self, ref: Any, run_id: str, fields: dict[str, Any], only_if_open: bool
    ) -> bool:
        for _ in range(OPTIMISTIC_ROUNDS):
            snap = ref.get()
            if not snap.exists:
                raise ReceiptMissing(ref.path)
            old = snap.to_dict() or {}
            if only_if_open and is_terminal(old):
                return False
            new = {**old, **fields, "lease": None}
            batch = self.db.batch()
            batch.update(
                ref,
                {**fields, "lease": None, "updatedAt": firestore.SERVER_TIMESTAMP},
                option=self._guarded(snap),
            )
            self._bump(batch, run_id, delta(counted_keys(old), counted_keys(new)))
            try:
                batch.commit()
            except CHANGED:
                continue
            return True
        raise LeaseHeld(f"{ref.path}: changing too often")

    def release(
        self, run_id: str, lead_doc_id: str, action: str, owner: str, error: dict[str, Any]
    ) -> None:
        """Give the lease back after a transient failure so the redelivery can go on at once."""
        ref = self._receipt_ref(run_id, lead_doc_id, action)
        for _ in range(OPTIMISTIC_ROUNDS):
            snap = ref.get()
            receipt = (snap.to_dict() or {}) if snap.exists else {}
            if not receipt or is_terminal(receipt):
                return
            update: dict[str, Any] = {"error": error, "updatedAt": firestore.SERVER_TIMESTAMP}
            if (receipt.get("lease") or {}).get("owner") == owner:
                update["lease"] = None
            try:
                ref.update(update, option=self._guarded(snap))
                return
            except CHANGED:
                continue

    def stale_receipts(
        self, older_than: datetime, now: datetime, limit: int
    ) -> list[tuple[str, str, str]]:
        """(runId, leadDocId, action) of pending receipts untouched since `older_than`, unleased."""
        query = (
            self.db.collection_group("receipts")
            .where(filter=FieldFilter("status", "==", "pending"))
            .where(filter=FieldFilter("updatedAt", "<", older_than))
            .limit(limit)
        )
        found = []
        for snap in query.stream():
            lease = (snap.to_dict() or {}).get("lease") or {}
            if lease.get("expiresAt") and lease["expiresAt"] > now:
                continue
            lead_ref = snap.reference.parent.parent
            found.append((lead_ref.parent.parent.id, lead_ref.id, snap.id))
        return found

    def pending_calendar(self, run_id: str, lead_doc_id: str) -> bool:
        """Whether the lead has a calendar receipt that is not terminal yet."""
        receipt = self.get_receipt(run_id, lead_doc_id, "calendar")
        return receipt is not None and not is_terminal(receipt)

    def touch_receipt(self, run_id: str, lead_doc_id: str, action: str) -> None:
        """Move `updatedAt`, so the next sweep waits a full period before publishing again."""
        ref = self._receipt_ref(run_id, lead_doc_id, action)
        ref.update({"updatedAt": firestore.SERVER_TIMESTAMP})

    def run_receipts(self, run_id: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Every lead of a run with its receipts: [(leadDocId, lead, {action: receipt})]."""
        leads = {
            snap.id: snap.to_dict() or {}
            for snap in self.db.collection(paths.leads(run_id)).stream()
        }
        refs = [
            self._receipt_ref(run_id, lead_id, action)
            for lead_id, lead in leads.items()
            for action in lead_actions(lead)
        ]
        receipts: dict[str, dict[str, Any]] = {lead_id: {} for lead_id in leads}
        for start in range(0, len(refs), 300):
            for snap in self.db.get_all(refs[start : start + 300]):
                if snap.exists:
                    receipts[snap.reference.parent.parent.id][snap.id] = snap.to_dict() or {}
        return [(lead_id, leads[lead_id], receipts[lead_id]) for lead_id in sorted(leads)]

    # -- slot holds -----------------------------------------------------------------------
    def _hold_ids(self, calendar_key: str, start: datetime, end: datetime) -> list[str]:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = int((start - epoch) // HOLD_BUCKET)
        last = int((end - epoch - timedelta(microseconds=1)) // HOLD_BUCKET)
        return [f"{calendar_key}_{bucket}" for bucket in range(first, last + 1)]

    def _hold_refs(self, calendar_key: str, hold: SlotHold) -> list[Any]:
        ids = self._hold_ids(calendar_key, hold.start, hold.end)
        return [self.db.document(paths.hold(hold_id)) for hold_id in ids]

    def _hold_doc(
        self, calendar_key: str, hold: SlotHold, owner: str, expires: datetime
    ) -> dict[str, Any]:
        return {
            "calendarKey": calendar_key,
            "owner": owner,
            "start": hold.start,
            "end": hold.end,
            "booked": False,
            "expiresAt": expires,
        }

    def claim_slot(
        self, calendar_key: str, hold: SlotHold, owner: str, ttl: timedelta
    ) -> SlotClaim:
        """Hold every bucket `hold` touches; returns conflicting holds (none: held).

        First a batch that creates every bucket (must not exist): the usual case, one write.
        If one exists, read the buckets and write one batch guarded by what was read (create
        the missing, update the expired or our own); if another claim got in between, again.
        """
        refs = self._hold_refs(calendar_key, hold)
        doc = self._hold_doc(calendar_key, hold, owner, datetime.now(UTC) + ttl)
        try:
            created = self._commit([Op("create", ref, doc) for ref in refs])
        except CHANGED:
            pass
        else:
            return SlotClaim([], {ref.path: time for ref, time in zip(refs, created, strict=True)})
        for _ in range(OPTIMISTIC_ROUNDS):
            now = datetime.now(UTC)
            snaps = list(self.db.get_all(refs))
            conflicts: list[SlotHold] = []
            for snap in snaps:
                data = snap.to_dict() if snap.exists else None
                if data and data.get("owner") != owner and data.get("expiresAt", now) > now:
                    conflicts.append(SlotHold(data["start"], data["end"]))
            if conflicts:
                return SlotClaim(conflicts)
            doc = self._hold_doc(calendar_key, hold, owner, now + ttl)
            batch = self.db.batch()
            for snap in snaps:
                if snap.exists:
                    batch.update(snap.reference, doc, option=self._guarded(snap))
                else:
                    batch.create(snap.reference, doc)
            try:
                results = batch.commit()
            except CHANGED:
                continue
            return SlotClaim([], self._versions(refs, results))
        raise LeaseHeld(f"slot claims on {calendar_key} are changing too often")

    def _versioned(self, settle: Settlement) -> bool:
        refs = self._hold_refs(settle.calendar_key, settle.hold)
        return all(ref.path in settle.versions for ref in refs)

    def _settlement(
        self, calendar_key: str, hold: SlotHold, versions: Mapping[str, Any]
    ) -> list[Op]:
        """Keep the holds as booked until the meeting ends, each guarded by its version."""
        kept = {"booked": True, "expiresAt": hold.end}
        return [
            Op("update", ref, kept, versions[ref.path])
            for ref in self._hold_refs(calendar_key, hold)
        ]

    @staticmethod
    def _versions(refs: list[Any], results: list[Any]) -> dict[str, Any]:
        return {ref.path: result.update_time for ref, result in zip(refs, results, strict=True)}

    def settle_slot(
        self,
        calendar_key: str,
        hold: SlotHold,
        owner: str,
        *,
        booked: bool,
        versions: Mapping[str, Any] | None = None,
    ) -> None:
        """After the insert: keep a booked hold until the meeting ends, or release it.

        `versions` (from `claim_slot`) guard the write without reading first; if a hold
        changed since, the holds are read and settled as they are.
        """
        refs = self._hold_refs(calendar_key, hold)
        if versions is not None and self._versioned(
            Settlement(calendar_key, hold, owner, versions)
        ):
            if booked:
                try:
                    self._commit(self._settlement(calendar_key, hold, versions))
                    return
                except CHANGED:
                    pass
            batch = self.db.batch()
            if not booked:
                for ref in refs:
                    batch.delete(
                        ref, option=self.db.write_option(last_update_time=versions[ref.path])
                    )
            try:
                batch.commit()
                return
            except CHANGED:
                pass
        for _ in range(OPTIMISTIC_ROUNDS):
            batch = self.db.batch()
            for snap in self.db.get_all(refs):
                data = snap.to_dict() if snap.exists else None
                if not data or data.get("owner") != owner:
                    continue
                if booked:
                    batch.update(
                        snap.reference,
                        {"booked": True, "expiresAt": hold.end},
                        option=self._guarded(snap),
                    )
                else:
                    batch.delete(snap.reference, option=self._guarded(snap))
            try:
                batch.commit()
                return
            except CHANGED:
                continue


@dataclass(frozen=True)
class Op:
    """One write of a commit: `update` (guarded by `version`, else must exist), `create`
    (must not exist) or `increment` (`{"group.name": n}`, merged)."""

    kind: str
    ref: Any
    data: Mapping[str, Any]
    version: Any = None

    def raw(self) -> Any:
        """The raw protobuf `Write` (`Unsupported` if a value needs the library)."""
        name = self.ref._document_path
        if self.kind == "update":
            return update_write(name, self.data, self.version)
        if self.kind == "create":
            return create_write(name, dict(self.data))
        return increment_write(name, self.data)

    def add_to(self, db: firestore.Client, batch: Any) -> None:
        """The same write through the library."""
        if self.kind == "update":
            option = db.write_option(last_update_time=self.version) if self.version else None
            batch.update(self.ref, dict(self.data), option=option)
        elif self.kind == "create":
            batch.create(self.ref, dict(self.data))
        else:
            batch.set(self.ref, _shard_update(self.data), merge=True)


@dataclass
class IntakeWrite:
    """What schedule writes for one lead: its document, its receipts, and the counter change."""

    lead_doc_id: str
    lead: dict[str, Any] | None  # None: the lead document stays as it is
    lead_exists: bool
    receipts: dict[str, dict[str, Any]]  # action -> full receipt to write
    receipt_update_times: dict[str, Any]  # action -> update_time precondition (reopened)
    changes: Counter[str]
    # action -> update_time of a pending receipt to give a new version (the lead is rewritten)
    touched: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many writes this takes in a batch."""
        return (1 if self.lead is not None else 0) + len(self.receipts) + len(self.touched)

    def apply(self, db: firestore.Client, batch: Any, run_id: str) -> list[tuple[str, str] | None]:
        """Add this lead's writes to `batch`; returns, for each write in order, the
        (leadDocId, action) of a pending receipt it creates, else None."""
        now = firestore.SERVER_TIMESTAMP
        labels: list[tuple[str, str] | None] = []
        if self.lead is not None:
            ref = db.document(paths.lead(run_id, self.lead_doc_id))
            doc = {**self.lead, "updatedAt": now}
            if self.lead_exists:
                batch.set(ref, doc, merge=True)
            else:
                add_create(batch, ref, {**doc, "createdAt": now})
            labels.append(None)
        for action, receipt in self.receipts.items():
            ref = db.document(paths.receipt(run_id, self.lead_doc_id, action))
            doc = {**receipt, "updatedAt": now}
            if action in self.receipt_update_times:
                option = db.write_option(last_update_time=self.receipt_update_times[action])
                batch.update(ref, doc, option=option)
                labels.append(None)
            else:
                add_create(batch, ref, {**doc, "createdAt": now})
                created = receipt.get("status") == "pending" and not receipt.get("attempts")
                labels.append((self.lead_doc_id, action) if created else None)
        for action, update_time in self.touched.items():
            ref = db.document(paths.receipt(run_id, self.lead_doc_id, action))
            option = db.write_option(last_update_time=update_time)
            batch.update(ref, {"updatedAt": now}, option=option)
            labels.append(None)
        return labels


def intake_changes(
    old_lead: Mapping[str, Any] | None,
    new_lead: Mapping[str, Any] | None,
    old_receipts: Mapping[str, Mapping[str, Any]],
    new_receipts: Mapping[str, Mapping[str, Any]],
) -> Counter[str]:
    """The counter change when schedule writes a lead and its receipts."""
    before: Counter[str] = Counter(lead_keys(old_lead))
    after: Counter[str] = Counter(lead_keys(new_lead if new_lead is not None else old_lead))
    for action, receipt in new_receipts.items():
        before.update(counted_keys(old_receipts.get(action)))
        after.update(counted_keys(receipt))
    return Counter(delta(before, after))


def lead_actions(lead: Mapping[str, Any]) -> list[str]:
    """The actions requested for a lead document."""
    return list(lead.get("actions") or (lead.get("settings") or {}).get("actions") or ())
