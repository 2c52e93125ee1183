"""Per-host lanes: how a host's calls to one API are paced, and held back when Google says so.

One document per (acting user, API), `google_limits/{api}_{host}`:
- the plan: `next` (when the lane is free for its next lead) and `factor` (the share of the
  configured rate it runs at: below 1 after Google refused a call, back up as calls succeed,
  slowly past `refusedFactor`, where Google last refused it), and the daily window of Gmail
  sends (`dayStart`, `dayUsed`);
- the gate: `until`, `reason`, `streak`: while closed, every delivery for the host on that API
  parks at once instead of finding the wall for itself.
Schedule reserves a whole request's starts with one write; deliveries only read it, and write it
only when Google refused a call (at most once a second) or when a slowed lane speeds up again
(at most once a second), so it is never a document that every delivery writes.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common import paths
from common.clock import SYSTEM, Clock
from common.documents import SERVER_TIME, Commit, Decision, Documents, Stored, change, guarded
from common.limits import Limit
from common.log import log
from common.models import stamp
from common.pacing import BRIEF, Limits, Plan, plan_lane, recovered, under_refused

SLOWDOWN = 0.5  # a refused call halves the lane's rate (a prompt refusal: by a tenth)...
SPEEDUP = 0.1  # ...and each second of calls that go through gives back a tenth of it
MIN_FACTOR = 0.05
CHANGE_EVERY = timedelta(seconds=1)


def host_key(host: str) -> str:
    """A document-id-safe key for an acting user."""
    return hashlib.sha256(host.lower().encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Lane:
    """A host's lane on one API, as read."""

    api: str
    limit: Limit | None = None  # the gate's last wait
    streak: int = 0
    next_free: datetime | None = None
    factor: float = 1.0
    changed_at: datetime | None = None
    day_start: datetime | None = None
    day_used: int = 0
    released_until: datetime | None = None  # the sweeper's own releases, while it re-spaces
    refused: float | None = None  # the factor Google last refused, if its refusals are prompt

    def respacing(self, now: datetime, ahead: timedelta) -> bool:
        """Whether due leads must be spaced anew before they go: the gate is closed, the lane
        is slowed, or earlier re-spaced leads still occupy it."""
        busy = self.released_until is not None and self.released_until > now + ahead
        return self.closed(now) is not None or self.factor < 1.0 or busy

    def closed(self, now: datetime) -> Limit | None:
        """The wait in force at `now`, or None."""
        return self.limit if self.limit is not None and self.limit.until > now else None

    def plan(
        self, count: int, now: datetime, free: datetime, interval: timedelta, **daily: Any
    ) -> Plan:
        """Starts for `count` leads from `free`, at this lane's rate and counting on its
        recovery as `passed` makes it (`pacing.plan_lane`; `daily`: Gmail's sending window)."""
        return plan_lane(
            count,
            now=now,
            next_free=free,
            interval=interval,
            factor=max(self.factor, MIN_FACTOR),
            speedup=SPEEDUP,
            refused=self.refused,
            **daily,
        )

    def may_speed_up(self, now: datetime) -> bool:
        """Slowed, and its rate did not move in the last second."""
        return self.factor < 1.0 and not self.recently_changed(now)

    def recently_changed(self, now: datetime) -> bool:
        """Whether the rate moved less than a second ago (one move a second at most)."""
        return self.changed_at is not None and now - self.changed_at < CHANGE_EVERY


def _lane_of(found: Stored | None, api: str) -> Lane:
    if found is None:
        return Lane(api)
    d = found.data
    until = d.get("until")
    limit = Limit(str(d.get("reason")), api, until) if isinstance(until, datetime) else None
    return Lane(
        api,
        limit,
        int(d.get("streak") or 0),
        d.get("next"),
        float(d.get("factor") or 1.0),
        d.get("changedAt"),
        d.get("dayStart"),
        int(d.get("dayUsed") or 0),
        d.get("releasedUntil"),
        d.get("refusedFactor"),
    )


class Lanes:
    """The lanes, over a `Documents` port. A lane read is kept for `FRESH` in this process
    (every delivery reads its lane; a gate another instance closed is seen that much later)."""

    FRESH = timedelta(milliseconds=250)

    def __init__(
        self, docs: Documents, limits: Limits | None = None, clock: Clock = SYSTEM
    ) -> None:
        self.clock = clock
        self.docs = docs
        self.limits = limits  # the limits lanes pace to (for how long a refusal waits first)
        self._seen: dict[str, tuple[datetime, Lane]] = {}
        self._last: dict[str, datetime] = {}  # this process's last planned call, per lane
        self._lock = threading.Lock()

    def spaced_start(
        self, host: str, api: str, lane: Lane, start: datetime, now: datetime
    ) -> datetime:
        """When to call: `start`, not before `now`, and at least the lane's interval after
        this process's previous call on it (at most `pacing.BRIEF` later): a lead that
        arrives late goes, but not on the heels of the one before it."""
        interval = self.limits.interval(api) if self.limits is not None else None
        if interval is None:
            return start
        step = interval / max(lane.factor, MIN_FACTOR)
        at = max(start, now)
        with self._lock:
            key = f"{api}:{host}"
            if len(self._last) > 4096:
                self._last.clear()
            previous = self._last.get(key)
            if previous is not None:
                at = max(at, min(previous + step, at + BRIEF))
            self._last[key] = at
        return at

    def _prompt(self, api: str) -> bool:
        """Whether Google refuses a call on `api` within a speed-up step of the rate that
        overran it: its window is at most `CHANGE_EVERY`. With a longer window (Calendar's and
        Gmail's minute) the refusal comes once the window has filled, when the lane may have
        sped up far past the rate that filled it."""
        return self.limits is not None and self.limits.window_s(api) <= CHANGE_EVERY.total_seconds()

    def first_wait(self, api: str) -> timedelta:
        """How long a refusal without a "Retry after" holds the lane back at first."""
        return self.limits.window(api) if self.limits is not None else timedelta(seconds=1)

    def _change(self, host: str, api: str, decide: Any) -> Any:
        path = paths.gate(api, host_key(host))

        def on_read(found: dict[str, Stored | None]) -> Decision[Any]:
            lane = _lane_of(found[path], api)
            result, fields = decide(lane)
            if not fields:
                return Decision(result)
            doc = {"host": host, "api": api, **fields, "updatedAt": SERVER_TIME}
            return Decision(result, Commit([guarded(path, found[path], doc)]))

        self._seen.pop(path, None)
        return change(self.docs, [path], on_read)

    def read(self, host: str, api: str) -> Lane:
        """The host's lane on `api` (as read less than `FRESH` ago in this process)."""
        path = paths.gate(api, host_key(host))
        seen = self._seen.get(path)
        if seen is not None and self.clock.now() - seen[0] < self.FRESH:
            return seen[1]
        lane = _lane_of(self.docs.read([path])[path], api)
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen[path] = (self.clock.now(), lane)
        return lane

    def close(self, host: str, limit: Limit, now: datetime) -> Limit:
        """Google refused a call: hold the host's calls on `limit.api` back until at least
        `limit.until`, and slow the lane; returns the wait now in force (a later one stands).

        The lane's rate halves, or, where the refusal is prompt (`_prompt`: the rate refused is
        where the limit is), goes just under the rate refused (`pacing.under_refused`), where
        `pacing.recovered` brings it back to after any later slowdown. A refusal of the same kind
        while the gate is closed met a call already on its way: the wait in force stands, and
        it is not one more wait in a row (otherwise every call in flight when the gate closed
        would double the wait once more). Each refusal writes one log line: whether the lane
        slowed down (`lane` "slowed") or met a call already on its way ("held")."""

        decided: dict[str, float | None] = {}

        def decide(lane: Lane) -> tuple[Limit, dict[str, Any] | None]:
            decided.clear()
            current = lane.closed(now)
            if current is not None and (
                current.until >= limit.until or current.reason == limit.reason
            ):
                return current, None
            fields: dict[str, Any] = {
                "reason": limit.reason,
                "until": limit.until,
                "streak": lane.streak + 1,
            }
            if not lane.recently_changed(now):
                refused = lane.factor if self._prompt(limit.api) else None
                slower = under_refused(refused) if refused is not None else lane.factor * SLOWDOWN
                fields["factor"] = max(MIN_FACTOR, slower)
                fields["changedAt"] = now
                fields["refusedFactor"] = refused
            decided.update(factor=fields.get("factor"))
            return limit, fields

        result: Limit = self._change(host, limit.api, decide)
        factor = decided.get("factor")  # the decision committed (the last round's)
        log(
            "google refused a call",
            severity="WARNING",
            labels={"api": limit.api},
            host=host,
            reason=limit.reason,
            lane="held" if factor is None else "slowed",
            factor=factor,
            until=stamp(result.until),
        )
        return result

    def passed(self, host: str, api: str, now: datetime, *, in_use: bool) -> None:
        """A call went through: the next refusal backs off from the start, and a slowed lane
        that is `in_use` (its calls wait for each other) speeds up again, once a second at
        most: a lane its leads do not fill says nothing about a faster rate, and rising
        through idle seconds it met the next burst far above Google's limit. The lane is read
        as it is now (within `FRESH`), not as it was when the call began: refusals met
        meanwhile must not keep doubling the next wait after calls go through again."""
        lane = self.read(host, api)
        if not lane.streak and not (in_use and lane.may_speed_up(now)):
            return

        def decide(current: Lane) -> tuple[None, dict[str, Any] | None]:
            fields: dict[str, Any] = {}
            if current.streak:
                fields["streak"] = 0
            if in_use and current.may_speed_up(now):
                fields["factor"] = recovered(current.factor, SPEEDUP, current.refused)
                fields["changedAt"] = now
            return None, fields or None

        self._change(host, api, decide)

    def reserve(self, host: str, api: str, count: int, limits: Limits, now: datetime) -> Plan:
        """Starts for `count` leads in the host's lane (not before a closed gate opens)."""
        interval = limits.interval(api)
        daily = limits.daily_sends() if api == "gmail" else None

        def decide(lane: Lane) -> tuple[Plan, dict[str, Any] | None]:
            closed = lane.closed(now)
            after = (now, lane.next_free, lane.released_until, closed and closed.until)
            free = max(x for x in after if x)
            plan = lane.plan(
                count,
                now,
                free,
                interval or timedelta(0),
                daily=daily,
                day_start=lane.day_start,
                day_used=lane.day_used,
            )
            if interval is None and daily is None:
                return plan, None  # nothing to pace to
            fields = {"next": plan.next_free, "dayStart": plan.day_start, "dayUsed": plan.day_used}
            return plan, fields

        result: Plan = self._change(host, api, decide)
        return result

    def respace(self, host: str, api: str, count: int, limits: Limits, now: datetime) -> Plan:
        """New starts for `count` leads that fell due while the lane was held back or slowed:
        one every (slowed) interval from when the gate opens and the lane's earlier re-spaced
        leads are gone, closer together as the lane speeds up again (`pacing.plan_lane`). Only
        the sweeper calls this, once a lane a tick."""
        interval = limits.interval(api) or timedelta(0)

        def decide(lane: Lane) -> tuple[Plan, dict[str, Any] | None]:
            closed = lane.closed(now)
            free = max(x for x in (now, lane.released_until, closed and closed.until) if x)
            plan = lane.plan(count, now, free, interval)
            fields: dict[str, Any] = {"releasedUntil": plan.next_free}
            if lane.next_free is None or lane.next_free < plan.next_free:
                fields["next"] = plan.next_free
            return plan, fields

        result: Plan = self._change(host, api, decide)
        return result
