"""A whole pipeline in one process on the fakes: schedule, a Pub/Sub stand-in, every subscriber.

`World.pump()` delivers what was published the way push delivery does: a handler that raises
`Retry` gets the message again (up to `max_deliveries`, then it is dead-lettered), anything else
acknowledges it. Receipts, counters and the Google fakes are what the tests look at.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common.config import HostAllowlist
from common.counts import recount
from common.handlers.book import book
from common.handlers.dead_letter import handle_dead_letter
from common.handlers.delivery import Delivery, Deps, Outcome, Retry, Work, handle_delivery
from common.handlers.drive import drive
from common.handlers.intake import HttpResult, Pace, handle_schedule
from common.handlers.notify import notify
from common.handlers.revert import REVERTS
from common.handlers.sweep import resume_due
from common.holds import SlotHolds
from common.lanes import Lanes
from common.pacing import Limits, parse_limits
from common.ports import Tools
from common.store import Store
from tests.fakes import (
    Calls,
    FakeBus,
    FakeCalendar,
    FakeDrive,
    FakeMailer,
    FreeBusyOnly,
    MemoryDocuments,
)

EFFECTS: dict[str, Callable[[Work], Outcome]] = {"calendar": book, "email": notify, "drive": drive}


@dataclass
class World:
    """Stores, bus and Google fakes wired as `common.bootstrap` wires the real ones."""

    max_deliveries: int = 10
    calls: Calls = field(default_factory=Calls)
    docs: MemoryDocuments = field(default_factory=MemoryDocuments)
    bus: FakeBus = field(default_factory=FakeBus)
    outcomes: list[str] = field(default_factory=list)
    deliveries: int = 0
    # The handlers' clock: it stands still at `start + later` until a test or a handler's
    # wait moves it on, so a test asserts exact times.
    start: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    )
    later: timedelta = timedelta(0)
    limits: Limits = field(default_factory=lambda: parse_limits('{"gmail": {}}'))

    def clock(self) -> datetime:
        """The handlers' time."""
        return self.start + self.later

    def wait(self, seconds: float) -> None:
        """A delivery's in-process wait: this world's time moves on instead."""
        self.later += timedelta(seconds=max(seconds, 0.0))

    # `common.clock.Clock`, for what takes the clock whole (the lanes).
    now = clock
    sleep = wait

    def tick(self, seconds: float) -> int:
        """Let `seconds` pass, then run the sweeper's resume and deliver what it published."""
        self.later += timedelta(seconds=seconds)
        resumed = resume_due(self.store, self.bus, self.clock(), self.pace)
        self.pump()
        return resumed

    def __post_init__(self) -> None:
        self.store = Store(self.docs, lease_s=60)
        self.holds = SlotHolds(self.docs, self.store.known)
        self.calendar = FakeCalendar(self.calls)
        self.mailer = FakeMailer(self.calls, self.clock)
        self.drive = FakeDrive(self.calls)
        live = Tools(self.calendar, self.calendar, self.mailer, self.drive)
        dry = Tools(FreeBusyOnly(self.calendar))
        self.lanes = Lanes(self.docs, self.limits, self)
        self.pace = Pace(self.lanes, self.limits, self.clock)
        self.deps = Deps(
            self.store,
            self.holds,
            self.lanes,
            self.bus,
            lambda dry_run: dry if dry_run else live,
            self.clock,
            self.wait,
        )

    def schedule(self, body: dict[str, Any], uid: str = "alice") -> HttpResult:
        """POST the request to schedule."""
        hosts = HostAllowlist.parse("", open_when_unset=True)
        data = json.dumps(body).encode()
        return handle_schedule(self.store, self.bus, uid, data, hosts=hosts, pace=self.pace)

    def deliver(self, message: Any, message_id: str = "m-1") -> str:
        """One delivery of one published message."""
        self.deliveries += 1
        delivery = Delivery(
            message.run_id,
            message.lead_doc_id,
            message.action,
            message_id,
            self.clock(),
            booking=message.booking,
        )
        return handle_delivery(
            self.deps, delivery, EFFECTS[message.action], REVERTS[message.action]
        )

    def pump(self, duplicates: int = 1) -> None:
        """Deliver everything published (each message `duplicates` times) until nothing is left."""
        sequence = 0
        while self.bus.published:
            message = self.bus.published.pop(0)
            for _ in range(duplicates):
                for attempt in range(1, self.max_deliveries + 1):
                    sequence += 1
                    try:
                        self.outcomes.append(self.deliver(message, f"m-{sequence}"))
                        break
                    except Retry:
                        if attempt == self.max_deliveries:
                            handle_dead_letter(
                                self.store, _delivery_of(message), str(attempt), self.clock()
                            )

    def receipts(self, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Every receipt of a run, by (leadDocId, action)."""
        rows = self.store.run_receipts(run_id)
        return {(lead, action): r for lead, _, rs in rows for action, r in rs.items()}

    def counts_match_receipts(self, run_id: str) -> bool:
        """Guarantee 5: the counters equal a recount of the receipts."""
        rows = self.store.run_receipts(run_id)
        return self.store.counters(run_id) == recount(
            (lead, list(rs.values())) for _, lead, rs in rows
        )


def _delivery_of(message: Any) -> Delivery:
    return Delivery(message.run_id, message.lead_doc_id, message.action, "dead", None)
