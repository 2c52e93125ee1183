"""The sweeper: every tick it publishes what falls due, and what was lost.

Pacing (docs/api.md, "Receipts": `waiting`): a lead that schedule gave a later start in its host's
lane, or that Google's limits held back, waits in Firestore, not in Pub/Sub (a nack would spend a
delivery attempt). For the length of a tick (`loop_s`: Cloud Scheduler ticks once a minute) the
sweeper publishes the waiting receipts whose start falls within the next `LOOKAHEAD`, in passes
at least `RESUME_EVERY` apart, each when the soonest wait it knows of falls due; each delivery
then waits in process for its exact start. While a lane is held back or slowed, the leads that
fall due are first spaced anew at the lane's current rate.

Nothing is spent at rest: a tick reads the soonest wait (one indexed read) and ends at once when
nothing falls due before the tick would end; a backlog waiting for a window hours away costs
nothing until it falls due. One tick at a time follows the waits (`Store.take_tick`); it looks at
the soonest wait again at least every `NAP_AT_MOST`, so waits that deliveries write meanwhile go
on time. A writer that leaves waits while no tick is live (schedule, a resume, an undo) wakes the
sweeper (`Bus.wake`), as Cloud Scheduler does; a tick that gives up its hold looks once more
after giving it up, so of that writer and that tick, one sees the other.

The safety net under "no lead without a receipt": Pub/Sub redelivers what it was given, but a
message can still be lost before it gets there (a publish that never happened after a crash, an
emulator that drops a push). Once a tick the sweeper publishes again every receipt still `pending`
long after its last change, with no live lease and no wait. Publishing again is always safe: a
terminal receipt acknowledges a duplicate, and every effect is idempotent. A run with such a
receipt more than `OVERDUE` past its planned start (its run's `eta` is its last lead's start) is
late: the sweeper says so in a log line, which an alert watches (docs/operations.md, "Alerts").
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from common import flow
from common.bus import Outgoing
from common.handlers.intake import Pace
from common.log import log
from common.pacing import LOOKAHEAD
from common.ports import Bus
from common.receipts import Receipt, Status
from common.store import Store

RESUME_EVERY = timedelta(milliseconds=250)
NAP_AT_MOST = timedelta(seconds=2)  # a live tick looks at the soonest wait at least this often
RESUME_AT_MOST = 500  # receipts one pass publishes or spaces anew
OVERDUE = timedelta(minutes=30)  # a pending action this long after its planned start is late
Row = tuple[str, str, str, Receipt]
Key = tuple[str, str, str, datetime]  # run, lead, action, the start it was published for


class Published:
    """What this process published lately, so that a receipt published for its start is not
    published again while its delivery is on the way (a lagging pipeline would otherwise get
    every due receipt again each tick). After `keep`, it may be: the message may be lost.
    Passes of overlapping ticks share it, and a receipt is taken by one of them only."""

    def __init__(self, keep: timedelta) -> None:
        self.keep = keep
        self._at: dict[Key, datetime] = {}
        self._lock = threading.Lock()

    def _recent(self, key: Key, now: datetime) -> bool:
        at = self._at.get(key)
        return at is not None and now - at < self.keep

    def seen(self, key: Key, now: datetime) -> bool:
        """Published less than `keep` before `now` (a look without a lock: `take` decides)."""
        return self._recent(key, now)

    def take(self, key: Key, now: datetime) -> bool:
        """Remember `key` as published at `now`; False if it was, less than `keep` before."""
        with self._lock:
            if self._recent(key, now):
                return False
            if len(self._at) > 100_000:
                self._at = {k: t for k, t in self._at.items() if now - t < self.keep}
            self._at[key] = now
            return True

    def forget(self, keys: list[Key]) -> None:
        """`keys` were taken but not published (the pass failed): they may be taken again."""
        with self._lock:
            for key in keys:
                self._at.pop(key, None)


_PUBLISHED: dict[float, Published] = {}


def published_here(keep: timedelta) -> Published:
    """This process's memory of what it published (one per `keep`)."""
    return _PUBLISHED.setdefault(keep.total_seconds(), Published(keep))


def _waits_for_booking(store: Store, run_id: str, lead_doc_id: str) -> bool:
    """`flow.waits_for_calendar` for a lead's email: a calendar receipt means the lead asked for
    both actions, so only that receipt is read (book publishes the email once it settles)."""
    calendar = store.get_receipt(run_id, lead_doc_id, "calendar")
    actions = ("calendar", "email") if calendar is not None else ("email",)
    return flow.waits_for_calendar("email", actions, {"calendar": calendar})


def _starts(pace: Pace | None, rows: list[Row], now: datetime) -> list[datetime]:
    """When each of one lane's due leads starts: as planned, or, while the lane is held back or
    slowed, spaced anew (once: a lead the sweeper spaced keeps its start)."""
    _, _, _, first = rows[0]
    assert first.waiting is not None
    host, api = first.host, first.waiting.api
    planned = [receipt.waiting.until for _, _, _, receipt in rows if receipt.waiting is not None]
    if pace is None or not host or api not in ("calendar", "gmail", "drive"):
        return planned
    if not pace.lanes.read(host, api).respacing(now, LOOKAHEAD):
        return planned
    anew = [i for i, (_, _, _, receipt) in enumerate(rows) if not receipt.spaced]
    if anew:
        spaced = pace.lanes.respace(host, api, len(anew), pace.limits, now).starts
        for i, start in zip(anew, spaced, strict=True):
            planned[i] = start
    return planned


def resume_due(
    store: Store,
    bus: Bus,
    now: datetime,
    pace: Pace | None = None,
    published: Published | None = None,
    after: datetime | None = None,
) -> int:
    """Publish the waiting actions whose start falls within `LOOKAHEAD`; returns how many.

    A published receipt keeps waiting until its delivery claims it (the claim ends the wait),
    so this costs no write; `published` keeps it from being published again meanwhile. A lead
    that a held-back lane spaces anew gets its new start written. `after`: only what fell due
    since the previous pass (a tick's first pass looks at everything due).
    """
    return _resume_pass(store, bus, now, pace, published, after)[0]


def _resume_pass(
    store: Store,
    bus: Bus,
    now: datetime,
    pace: Pace | None,
    published: Published | None,
    after: datetime | None,
) -> tuple[int, bool]:
    """`resume_due`, and whether it looked at everything due (False: it stopped at
    `RESUME_AT_MOST`, and the next pass must look from the same place again)."""
    seen = published if published is not None else Published(timedelta(minutes=10))
    lanes: dict[tuple[Any, Any], list[Row]] = {}
    keys: list[Key] = []
    complete = True
    for row in store.due_receipts(now + LOOKAHEAD, after):
        run_id, lead_id, action, receipt = row
        if receipt.waiting is None:
            continue
        key = (run_id, lead_id, action, receipt.waiting.until)
        if seen.seen(key, now):  # published already: no read of its booking
            continue
        if action == "email" and _waits_for_booking(store, run_id, lead_id):
            continue
        if not seen.take(key, now):  # another pass took it meanwhile
            continue
        lanes.setdefault((receipt.host, receipt.waiting.api), []).append(row)
        keys.append(key)
        if len(keys) >= RESUME_AT_MOST:
            complete = False  # the rest next pass, which looks from the same place again
            break
    try:
        messages = _publish_or_space(store, bus, now, pace, lanes)
    except Exception:
        seen.forget(keys)  # not published: the next pass takes them again
        raise
    return messages, complete


def _publish_or_space(
    store: Store, bus: Bus, now: datetime, pace: Pace | None, lanes: dict[Any, list[Row]]
) -> int:
    """Publish the taken receipts that start within `LOOKAHEAD` (lane by lane, spaced anew
    while the lane is held back), and write the later start of the others; how many went."""
    messages = []
    for rows in lanes.values():
        for (run_id, lead_id, action, _), start in zip(rows, _starts(pace, rows, now), strict=True):
            if start - now <= LOOKAHEAD:
                messages.append(Outgoing(run_id, lead_id, action))
            else:
                store.rewait(run_id, lead_id, action, start)
    if messages:
        bus.publish(messages)
    return len(messages)


def republish_stale(
    store: Store, bus: Bus, stale_after: timedelta, now: datetime, limit: int = 500
) -> int:
    """Publish again every stale pending action (at most `limit`); returns how many."""
    stale = store.stale_receipts(now - stale_after, now, limit)
    messages = []
    late: dict[str, int] = {}
    for run_id, lead_doc_id, action, receipt in stale:
        if action == "email" and _waits_for_booking(store, run_id, lead_doc_id):
            continue
        messages.append(Outgoing(run_id, lead_doc_id, action))
        due = receipt.planned or receipt.extra.get("createdAt")
        if receipt.status is Status.PENDING and isinstance(due, datetime) and now - due > OVERDUE:
            late[run_id] = late.get(run_id, 0) + 1
    if messages:
        bus.publish(messages)
        for message in messages:
            store.touch_receipt(message.run_id, message.lead_doc_id, message.action)
    for run_id, count in late.items():
        log("run pending past its eta", severity="WARNING", labels={"runId": run_id}, late=count)
    return len(messages)


def _within(upcoming: datetime | None, ends: datetime) -> bool:
    """Whether a wait ending at `upcoming` is published before `ends`."""
    return upcoming is not None and upcoming - LOOKAHEAD < ends


def _follow(
    store: Store,
    bus: Bus,
    pace: Pace | None,
    published: Published,
    owner: str,
    ends: datetime,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
) -> int:
    """The live tick: a pass when the soonest wait falls due (passes `RESUME_EVERY` apart),
    looking again at least every `NAP_AT_MOST`, until nothing falls due before `ends`."""
    resumed = 0
    after: datetime | None = None  # the first pass looks at everything due
    passed: datetime | None = None  # when the last pass ran
    busy = False  # the last pass published: the next one goes a turn later, without a look first
    while clock() < ends:
        upcoming = None if busy else store.next_wait(after)
        if not busy and not _within(upcoming, ends):
            store.take_tick(owner, clock(), clock())  # given up; then one more look
            upcoming = store.next_wait(after)
            if not _within(upcoming, ends) or not store.take_tick(owner, clock(), ends):
                break
        now = clock()
        turn = now if passed is None else passed + RESUME_EVERY
        wake = turn if upcoming is None else max(upcoming - LOOKAHEAD, turn)
        if wake > now:
            sleep((min(wake, now + NAP_AT_MOST, ends) - now).total_seconds())
            if not busy:
                continue  # look again: a sooner wait may have been written meanwhile
            now = clock()
        passed = now
        count, complete = _resume_pass(store, bus, now, pace, published, after)
        resumed += count
        busy = count > 0
        if complete:  # else the next pass looks from the same place: the rest is due there
            after = now + LOOKAHEAD
    return resumed


def sweep(
    store: Store,
    bus: Bus,
    pace: Pace | None,
    *,
    stale_after: timedelta,
    loop_s: float,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
) -> int:
    """One tick: republish what was lost, then publish what falls due until `loop_s` seconds
    after the tick began (the scheduler's period: a start between two ticks would wait for the
    next one's first pass, and the lane it is in would keep that lag). Between passes it sleeps
    until the soonest wait falls due; it ends when none does before the tick ends."""
    ends = clock() + timedelta(seconds=loop_s)
    republished = republish_stale(store, bus, stale_after, clock())
    resumed = 0
    upcoming = store.next_wait(None)
    owner = uuid.uuid4().hex
    if _within(upcoming, ends) and store.take_tick(owner, clock(), ends):
        resumed = _follow(store, bus, pace, published_here(stale_after), owner, ends, clock, sleep)
    log(
        "sweep",
        outcome="republished" if republished or resumed else "nothing due",
        republished=republished,
        resumed=resumed,
    )
    return republished + resumed
