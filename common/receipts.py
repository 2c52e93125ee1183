"""A receipt's life: one typed value and its transitions (pure), and how it is stored.

docs/api.md, "Receipts", says what a user sees of a receipt. Here is the whole state machine:

    pending ──claim──▶ pending (leased) ──finish──▶ done | simulated | rejected | failed
       ▲   └─wait_for / park (Google's limit, or a start in the host's lane)─▶ pending (waiting)
       └──────────── reopen (replay, redrive, a resubmitted lead) ◀── failed | rejected | …
    pending ──pause / resume──▶ pending (paused) ; pending ──cancel──▶ cancelled
    done ──undo──▶ done (revert queued) ──claim, revert──▶ reverted ; a queued revert pauses too

Every transition is a method that returns the new value; the store persists the difference
(`changes`) in one guarded commit with the counters it moves. The stored field names appear here
and in the Firestore adapter's queries only; a new state is a change to this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from common.errors import Transient
from common.limits import ACTION_API, RATE_LIMIT, Limit
from common.models import parse_time, stamp
from common.pacing import LOOKAHEAD


class Status(StrEnum):
    """A receipt's status (docs/api.md, "Receipts")."""

    PENDING = "pending"
    DONE = "done"
    SIMULATED = "simulated"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVERTED = "reverted"


TERMINAL: frozenset[str] = frozenset(s.value for s in Status if s is not Status.PENDING)

PAUSED = "paused"  # `waiting.reason` of a paused receipt
CANCELLED = "cancelled"  # the reason of a cancelled receipt


class LeaseHeld(Transient):
    """Another delivery is working on this receipt right now: retry later."""


@dataclass(frozen=True)
class Lease:
    """Who works on a receipt, until when (an instance that dies leaves no lock behind)."""

    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class Revert:
    """An undo's revert of what a receipt made: queued while `at` is None, then made."""

    at: datetime | None = None
    effect: str | None = None  # event_cancelled | folder_trashed | draft_deleted | already_gone


# What an undo reverts, by action: (outcome that made it, id in `external`, kind in `toRevert`).
MADE: dict[str, tuple[str, str, str]] = {
    "calendar": ("booked", "eventId", "events"),
    "email": ("drafted", "draftId", "drafts"),
    "drive": ("created", "folderId", "folders"),
}


@dataclass(frozen=True)
class Ending:
    """How an action ended: a terminal receipt's status, outcome, reason, external, error."""

    status: Status
    outcome: str | None = None
    reason: str | None = None
    external: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def failed(reason: str, code: str, message: str) -> Ending:
    """A `failed` ending with its reason and error."""
    return Ending(Status.FAILED, reason=reason, error={"code": code, "message": message})


def rejected(reason: str, message: str | None = None) -> Ending:
    """A `rejected` ending (with an error when `message` says why)."""
    error = None if message is None else {"code": reason, "message": message}
    return Ending(Status.REJECTED, reason=reason, error=error)


@dataclass(frozen=True)
class Receipt:
    """One action's receipt. Fields past `waiting` are the pipeline's own bookkeeping."""

    action: str
    dry_run: bool = False
    status: Status = Status.PENDING
    outcome: str | None = None
    reason: str | None = None
    attempts: int = 0
    external: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    waiting: Limit | None = None  # Google's limit, or its start in the lane, holds it back
    paused: bool = False  # its owner paused it (stored as `waiting.reason` "paused")
    cancelling: bool = False  # cancelled while a delivery works on it: ends cancelled unless done
    revert: Revert | None = None  # an undo's revert of what it made (docs/api.md, "Control")
    host: str | None = None  # the lane (sender) a waiting receipt is paced in
    start_at: datetime | None = None  # its start in the lane, once its wait is over
    spaced: bool = False  # the sweeper gave it a new start: it keeps that one
    lease: Lease | None = None
    checkpoint: Mapping[str, Any] = field(default_factory=dict)
    clean_through: int | None = None  # every try up to this one parked before calling Google
    extra: Mapping[str, Any] = field(default_factory=dict)  # createdAt, updatedAt, …

    # -- what it is ----------------------------------------------------------------------
    @property
    def terminal(self) -> bool:
        """Whether it has reached a final status."""
        return self.status in TERMINAL

    @property
    def reverting(self) -> bool:
        """Whether an undo queued a revert of what it made (or of what its delivery makes)."""
        return self.revert is not None and self.revert.at is None

    @property
    def to_revert(self) -> bool:
        """Whether it ended having made something whose revert an undo queued."""
        return self.reverting and self.terminal

    @property
    def closed(self) -> bool:
        """Terminal with no revert queued: no delivery has anything to do with it."""
        return self.terminal and not self.reverting

    @property
    def made(self) -> str | None:
        """What it made that an undo can revert ("events", "drafts", "folders"), else None."""
        outcome, key, kind = MADE.get(self.action, ("", "", ""))
        done = self.status is Status.DONE and self.outcome == outcome
        return kind if done and (self.external or {}).get(key) else None

    @property
    def unrecallable(self) -> bool:
        """A sent email: no undo can recall it."""
        return self.status is Status.DONE and self.action == "email" and self.outcome == "sent"

    @property
    def planned(self) -> datetime | None:
        """When it is to start: the end of its wait, else its start in the lane (None: now)."""
        return self.waiting.until if self.waiting is not None else self.start_at

    def waits_past(self, by: datetime) -> bool:
        """Whether a wait holds it past `by` (the one rule of "is this start due?")."""
        return self.waiting is not None and self.waiting.until > by

    def resumed(self, attempt: int) -> bool:
        """Whether a try before `attempt` may have started the work: look before acting again.
        Not when every earlier try parked before calling Google."""
        return attempt > 1 and self.clean_through != attempt - 1

    # -- transitions -----------------------------------------------------------------------
    def leased(self, now: datetime) -> bool:
        """Whether a delivery works on it at `now` (its lease is live)."""
        return self.lease is not None and self.lease.expires_at > now

    def on_its_course(self, now: datetime) -> bool:
        """Whether a live lease, a wait for a time or a pause carries it on, not its message."""
        return self.leased(now) or self.waiting is not None or self.paused

    def claim(self, owner: str, now: datetime, lease: timedelta, due_by: datetime) -> Receipt:
        """Take the lease for a delivery (raises `LeaseHeld`); a wait over by `due_by` ends
        here, its end kept as the start. The caller refuses a paused receipt (`paused`)."""
        if self.lease is not None and self.lease.owner != owner and self.leased(now):
            raise LeaseHeld(self.action)
        taken = replace(self, attempts=self.attempts + 1, lease=Lease(owner, now + lease))
        if self.waiting is not None and not self.waits_past(due_by):
            taken = replace(taken, waiting=None, start_at=self.waiting.until)
        return taken

    def finish(self, ending: Ending) -> Receipt:
        """The action ended: terminal, lease given back. A revert queued while its delivery
        worked stays queued if that delivery made something. A revert that ends here (Google
        refused it for good) leaves the receipt as it was, with the error."""
        if self.to_revert:
            return replace(self, error=ending.error, revert=None, waiting=None, lease=None)
        ended = replace(
            self,
            status=ending.status,
            outcome=ending.outcome,
            reason=ending.reason,
            external=ending.external,
            error=ending.error,
            waiting=None,
            lease=None,
            paused=False,
            cancelling=False,
        )
        return replace(ended, revert=self.revert if ended.made else None)

    def wait_for(self, wait: Limit, clean_through: int | None = None) -> Receipt:
        """Google's limit holds it back until `wait.until`; spaced anew in its lane then."""
        kept = self.outcome if self.reverting else None  # a revert keeps what it undoes
        parked = self._parked(clean_through)
        return replace(parked, outcome=kept, waiting=wait, spaced=False, lease=None)

    def park(self, clean_through: int | None = None) -> Receipt:
        """It came before its start (a replay, a duplicate): it keeps waiting for it."""
        kept = self.outcome if self.reverting else None  # a revert keeps what it undoes
        return replace(self._parked(clean_through), outcome=kept, lease=None)

    def _parked(self, clean_through: int | None) -> Receipt:
        keep = self.clean_through if clean_through is None else clean_through
        status = self.status if self.reverting else Status.PENDING  # a revert keeps it done
        return replace(self, status=status, clean_through=keep)

    def respaced(self, until: datetime) -> Receipt:
        """The sweeper gave it a new start in a held-back lane; it keeps that start."""
        assert self.waiting is not None
        return replace(self, waiting=replace(self.waiting, until=until), spaced=True)

    def later(self, code: str, message: str, wait: Limit | None = None) -> Receipt:
        """Nothing can be decided yet: still pending, lease given back, `code` as its error;
        with `wait`, it waits for `wait.until` (the sweeper publishes it then)."""
        left = replace(self, error={"code": code, "message": message}, lease=None)
        return left if wait is None else left.wait_for(wait)

    def release(self, owner: str, code: str, message: str) -> Receipt:
        """A try failed for now: the error recorded, the lease given back if it is `owner`'s."""
        mine = self.lease is not None and self.lease.owner == owner
        return replace(
            self, error={"code": code, "message": message}, lease=None if mine else self.lease
        )

    def pause(self) -> Receipt:
        """Its owner paused it: it waits, whatever it waited for, until resumed."""
        return replace(self, paused=True)

    def cancel(self, now: datetime) -> Receipt:
        """Its owner cancelled it: it ends `cancelled`, unless a delivery works on it, which
        finishes first (its effect, if made, is recorded `done`; `settled` decides)."""
        if self.leased(now):
            return replace(self, cancelling=True)
        return self.finish(Ending(Status.CANCELLED, reason=CANCELLED))

    def undo(self, now: datetime) -> Receipt:
        """Its owner undid it: an open action is cancelled (`cancel`; one a delivery works on
        gets a revert queued for what that delivery makes); what it made gets a revert queued."""
        if self.status is Status.PENDING:
            cancelled = self.cancel(now)
            return replace(cancelled, revert=Revert()) if cancelled.cancelling else cancelled
        if self.to_revert and self.paused:  # an undo asks for its reverts now: no pause holds them
            return self.resume()
        return replace(self, revert=Revert(), error=None) if self.made and not self.revert else self

    def reverted(self, at: datetime, effect: str) -> Receipt:
        """Its revert was made (or found made): `reverted`, keeping its outcome and external."""
        return replace(self.resume(), status=Status.REVERTED, revert=Revert(at, effect), lease=None)

    def settled(self) -> Receipt:
        """What a delivery's result becomes under a brake that took hold meanwhile: an open
        result of a cancelled action ends it `cancelled` (a paused one stays paused)."""
        made = self.status in (Status.DONE, Status.SIMULATED)
        if self.cancelling and not made and self.status is not Status.CANCELLED:
            return self.finish(Ending(Status.CANCELLED, reason=CANCELLED))
        return self

    def resume(self) -> Receipt:
        """Its owner lifted the pause: it is planned anew (no start, no wait kept)."""
        return replace(self, paused=False, waiting=None, start_at=None, spaced=False)

    def checkpointed(self, values: Mapping[str, Any]) -> Receipt:
        """Progress inside an effect (a draft id, a folder id), merged into the checkpoint."""
        return replace(self, checkpoint={**self.checkpoint, **values})

    def reopen(self) -> Receipt:
        """Tried again (replay, redrive): pending, with nothing of how it ended."""
        return replace(
            self,
            revert=None,
            status=Status.PENDING,
            outcome=None,
            reason=None,
            error=None,
            waiting=None,
            lease=None,
        )

    def anew(self, dry_run: bool) -> Receipt:
        """A resubmitted lead's action tried again with its new data: nothing of how it ended,
        no start; attempts and checkpoints kept (a retry still finds what a try made)."""
        return replace(self.reopen(), dry_run=dry_run, external=None, start_at=None)

    def planned_at(self, host: str, api: str, start: datetime, now: datetime) -> Receipt:
        """Its start in `host`'s lane: a start within `LOOKAHEAD` of `now` is kept for the
        delivery to wait for; a later one waits in the store (the sweeper publishes it then)."""
        if start - now > LOOKAHEAD:
            return replace(self, host=host, waiting=Limit(RATE_LIMIT, api, start))
        return replace(self, host=host, start_at=start)

    # -- storage -----------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        """The stored document (docs/api.md, "Receipts", and the bookkeeping fields)."""
        return {
            **self.extra,
            "action": self.action,
            "status": self.status.value,
            "outcome": self.outcome,
            "reason": self.reason,
            "dryRun": self.dry_run,
            "attempts": self.attempts,
            "external": self.external,
            "error": self.error,
            "waiting": self._waiting_doc(),
            "host": self.host,
            "startAt": None if self.start_at is None else stamp(self.start_at),
            "spaced": self.spaced,
            "lease": None
            if self.lease is None
            else {"owner": self.lease.owner, "expiresAt": self.lease.expires_at},
            "checkpoint": dict(self.checkpoint) or None,
            "cleanThrough": self.clean_through,
            "cancelling": self.cancelling or None,
            "revert": None
            if self.revert is None
            else {
                "at": None if self.revert.at is None else stamp(self.revert.at),
                "effect": self.revert.effect,
            },
            # the sweeper's due query, and its stale query (a wait for a time is published when due)
            "sweepable": self.sweepable,
            "watched": self.sweepable and not (self._waiting_doc() or {}).get("until"),
        }

    @property
    def sweepable(self) -> bool:
        """Whether it has work left that no owner holds back (pending, or a revert queued)."""
        return (self.reverting and not self.paused) or (
            self.status is Status.PENDING and (not self.paused or self.cancelling)
        )

    @property
    def held(self) -> bool:
        """Whether its owner's pause holds work it has left (an action, or a queued revert)."""
        return self.paused and (self.status is Status.PENDING or self.to_revert)

    def _waiting_doc(self) -> dict[str, Any] | None:
        if self.held:
            return {"reason": PAUSED, "api": ACTION_API.get(self.action), "until": None}
        return None if self.waiting is None else self.waiting.waiting()

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Receipt:
        """The receipt a stored document holds."""
        lease = doc.get("lease") or {}
        start = doc.get("startAt")
        waiting = doc.get("waiting") or {}
        return cls(
            action=str(doc.get("action")),
            dry_run=bool(doc.get("dryRun")),
            status=Status(doc.get("status") or Status.PENDING),
            outcome=doc.get("outcome"),
            reason=doc.get("reason"),
            attempts=int(doc.get("attempts") or 0),
            external=doc.get("external"),
            error=doc.get("error"),
            waiting=_wait_of(waiting),
            paused=waiting.get("reason") == PAUSED,
            host=doc.get("host"),
            start_at=parse_time(str(start)) if start else None,
            spaced=bool(doc.get("spaced")),
            lease=Lease(str(lease["owner"]), lease["expiresAt"])
            if lease.get("owner") is not None and lease.get("expiresAt") is not None
            else None,
            checkpoint=dict(doc.get("checkpoint") or {}),
            clean_through=doc.get("cleanThrough"),
            cancelling=bool(doc.get("cancelling")),
            revert=_revert_of(doc.get("revert")),
            extra={k: v for k, v in doc.items() if k not in _OWN},
        )


_OWN = frozenset(Receipt("").to_doc())


def _revert_of(doc: Mapping[str, Any] | None) -> Revert | None:
    if not isinstance(doc, Mapping):
        return None
    at = doc.get("at")
    return Revert(parse_time(str(at)) if at else None, doc.get("effect"))


def _wait_of(doc: Mapping[str, Any]) -> Limit | None:
    if doc.get("reason") == PAUSED or not doc.get("until"):
        return None
    return Limit(str(doc.get("reason")), str(doc.get("api")), parse_time(str(doc["until"])))


def changes(old: Receipt | None, new: Receipt) -> dict[str, Any]:
    """The fields to write to turn the stored `old` into `new` (all of them for a new one)."""
    after = new.to_doc()
    if old is None:
        return after
    before = old.to_doc()
    return {k: v for k, v in after.items() if k not in before or before[k] != v}


# -- what a lead keeps of its receipts' waits -------------------------------------------------
def lead_waits(lead: Mapping[str, Any] | None) -> dict[str, str]:
    """When each of a lead's waiting receipts starts (action -> RFC 3339), as the lead keeps it."""
    return dict((lead or {}).get("waiting") or {})


def lead_wait_fields(waits: Mapping[str, str]) -> dict[str, Any]:
    """The lead's fields for its receipts' waits: `waiting`, and the latest as `waitingUntil`
    (so diagnostics finds a run's latest wait with one indexed read)."""
    return {"waiting": dict(waits), "waitingUntil": max(waits.values(), default=None)}


def _kept_wait(receipt: Receipt) -> datetime | None:
    """The start a lead keeps for its receipt: none while paused (it waits for a resume)."""
    if receipt.waiting is None or receipt.paused or receipt.terminal:
        return None
    return receipt.waiting.until


def waits_of(receipts: Mapping[str, Receipt]) -> dict[str, str]:
    """`lead_waits` of a lead whose receipts are `receipts`."""
    return {a: stamp(until) for a, r in receipts.items() if (until := _kept_wait(r))}


def lead_wait_change(
    lead: Mapping[str, Any], action: str, old: Receipt | None, new: Receipt
) -> dict[str, Any]:
    """The lead's wait fields after one receipt goes from `old` to `new` ({}: unchanged)."""
    until, before = _kept_wait(new), None if old is None else _kept_wait(old)
    if until == before:
        return {}
    waits = {k: v for k, v in lead_waits(lead).items() if k != action}
    if until is not None:
        waits[action] = stamp(until)
    return lead_wait_fields(waits)
