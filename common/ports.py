"""What the handlers use, as small Protocols: the adapters implement them, tests fake them.

`Tools` is what one delivery may touch of Google. The wiring (`common.bootstrap`) gives a dry run
a calendar that can only read busy times and no writer at all, so no handler checks a mode to stay
read-only: there is nothing in a dry run that could write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from common.documents import Part
from common.holds import Settlement, SlotHold
from common.models import RunSettings
from common.receipts import Receipt
from common.slots import Interval
from common.store import Change, Claim


class Receipts(Protocol):
    """Runs, leads and receipts as a delivery sees them (`common.store.Store`)."""

    def run_mode(self, run_id: str) -> dict[str, Any] | None: ...
    def get_lead(self, run_id: str, lead_doc_id: str) -> dict[str, Any] | None: ...
    def lead_settings(self, run_id: str, lead: dict[str, Any]) -> RunSettings: ...
    def get_receipt(self, run_id: str, lead_doc_id: str, action: str) -> Receipt | None: ...
    def claim(
        self, run_id: str, lead_doc_id: str, action: str, owner: str, now: datetime
    ) -> Claim: ...
    def checkpoint(
        self, run_id: str, lead_doc_id: str, action: str, values: dict[str, Any]
    ) -> None: ...
    def record(
        self, run_id: str, lead_doc_id: str, action: str, move: Change, *, also: Part | None = None
    ) -> Receipt | None: ...
    def release(
        self, run_id: str, lead_doc_id: str, action: str, owner: str, error: dict[str, Any]
    ) -> None: ...


class Holds(Protocol):
    """Slot holds against double booking (`common.holds.SlotHolds`)."""

    def claim(
        self, calendar_key: str, hold: SlotHold, owner: str, ttl: timedelta, now: datetime
    ) -> list[SlotHold]: ...
    def settle(self, settlement: Settlement) -> None: ...


class Bus(Protocol):
    """Publishes lead action messages, and wakes the sweeper (`common.bus.PubSubBus`)."""

    def publish(
        self, messages: Iterable[Any], timeout_s: float = 30.0, traceparent: str | None = None
    ) -> int: ...
    def wake(self, timeout_s: float = 30.0) -> None: ...


class FreeBusy(Protocol):
    """Reads a calendar's busy times: all a dry run has of Calendar."""

    def busy(
        self, subject: str, calendar_id: str, window: Interval, time_zone: str
    ) -> list[Interval]: ...


class Calendar(FreeBusy, Protocol):
    """Books events (live runs only)."""

    def insert_event(
        self, subject: str, calendar_id: str, event: dict[str, Any]
    ) -> dict[str, Any]: ...
    def get_event(self, subject: str, calendar_id: str, event_id: str) -> dict[str, Any] | None: ...
    def cancel_event(self, subject: str, calendar_id: str, event_id: str) -> bool: ...


class Mailer(Protocol):
    """Gmail drafts and sends for a sender (live runs only)."""

    search_settle: timedelta  # how long Gmail's search may lag behind what was just made

    def create_draft(self, sender: str, raw: str) -> dict[str, Any]: ...
    def draft_exists(self, sender: str, draft_id: str) -> bool: ...
    def send_draft(self, sender: str, draft_id: str) -> dict[str, Any]: ...
    def find_sent(self, sender: str, message_id: str) -> dict[str, Any] | None: ...
    def find_drafts(self, sender: str, message_id: str) -> list[dict[str, Any]]: ...
    def delete_draft(self, sender: str, draft_id: str) -> bool: ...


class Drive(Protocol):
    """Drive folders for an owner (live runs only)."""

    def reserve_id(self, owner: str) -> str: ...
    def create_folder(
        self, owner: str, name: str, parent: str | None, tag: str, folder_id: str
    ) -> dict[str, Any]: ...
    def get_folder(self, owner: str, folder_id: str) -> dict[str, Any] | None: ...
    def trash_folder(self, owner: str, folder_id: str) -> bool: ...


@dataclass(frozen=True)
class Tools:
    """What of Google one delivery may use: in a dry run, `freebusy` alone."""

    freebusy: FreeBusy
    calendar: Calendar | None = None
    mailer: Mailer | None = None
    drive: Drive | None = None
