"""Slot holds: a lead claims the interval it is about to book, so two instances booking for one
host at once cannot both take it (freeBusy cannot see a booking being made elsewhere).

A hold is one document per 15-minute bucket the meeting (with its buffers) touches, so two holds
that overlap share a document; claims and settlements are `documents.change`s over those buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common import paths
from common.documents import (
    Commit,
    Contended,
    Decision,
    Documents,
    Known,
    Stored,
    Write,
    change,
    guarded,
)
from common.errors import Transient

# Matches the expanded search's grid: a 30-minute meeting touches two or three buckets.
HOLD_BUCKET = timedelta(minutes=15)


class HoldsContended(Transient):
    """Claims on this calendar keep changing: retry later."""


@dataclass(frozen=True)
class SlotHold:
    """An interval a lead holds on a calendar while it books."""

    start: datetime
    end: datetime


def hold_paths(calendar_key: str, hold: SlotHold) -> list[str]:
    """The bucket documents `hold` touches."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = int((hold.start - epoch) // HOLD_BUCKET)
    last = int((hold.end - epoch - timedelta(microseconds=1)) // HOLD_BUCKET)
    return [paths.hold(f"{calendar_key}_{bucket}") for bucket in range(first, last + 1)]


@dataclass(frozen=True)
class Settlement:
    """After the insert: a lead's holds kept as booked until the meeting ends, or released.
    A `documents.Part`: the booking's receipt is finished in the same commit."""

    calendar_key: str
    hold: SlotHold
    owner: str
    booked: bool

    @property
    def paths(self) -> list[str]:
        """The bucket documents of the hold."""
        return hold_paths(self.calendar_key, self.hold)

    def writes(self, found: Mapping[str, Stored | None]) -> list[Write]:
        """Keep or release the buckets this owner still holds (others' are left alone)."""
        kept = {"booked": True, "expiresAt": self.hold.end}
        return [
            guarded(path, doc, kept if self.booked else None)
            for path in self.paths
            if (doc := found.get(path)) is not None and doc.data.get("owner") == self.owner
        ]


class SlotHolds:
    """Slot holds over a `Documents` port."""

    def __init__(self, docs: Documents, known: Known | None = None) -> None:
        self.docs = docs
        self.known = known if known is not None else Known()  # what this process left

    def claim(
        self, calendar_key: str, hold: SlotHold, owner: str, ttl: timedelta, now: datetime
    ) -> list[SlotHold]:
        """Hold every bucket `hold` touches until `now + ttl`; the conflicting holds of others
        (none: held)."""
        bucket_paths = hold_paths(calendar_key, hold)

        def decide(found: dict[str, Stored | None]) -> Decision[list[SlotHold]]:
            conflicts = [
                SlotHold(doc.data["start"], doc.data["end"])
                for doc in found.values()
                if doc is not None
                and doc.data.get("owner") != owner
                and doc.data.get("expiresAt", now) > now
            ]
            if conflicts:
                return Decision(conflicts)
            held = {
                "calendarKey": calendar_key,
                "owner": owner,
                "start": hold.start,
                "end": hold.end,
                "booked": False,
                "expiresAt": now + ttl,
            }
            return Decision([], Commit([guarded(path, found[path], held) for path in bucket_paths]))

        return self._change(bucket_paths, decide)

    def settle(self, settlement: Settlement) -> None:
        """Keep or release a lead's holds on their own (a booking keeps them as it finishes)."""

        def decide(found: dict[str, Stored | None]) -> Decision[None]:
            return Decision(None, Commit(settlement.writes(found)))

        self._change(settlement.paths, decide)

    def _change(self, bucket_paths: list[str], decide: Any) -> Any:
        try:
            return change(self.docs, bucket_paths, decide, known=self.known)
        except Contended as exc:
            raise HoldsContended(str(exc)) from exc
