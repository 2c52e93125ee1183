"""How fast one host's leads may go, from Google's per-user limits (pure).

`LEADRUN_GOOGLE_LIMITS` (docs/api.md, "Sandbox limits"; default Google's published per-user figures)
gives, per API, a count per window. Each action costs its API a known amount (a confirmation 110
Gmail units: drafts.create 10 + drafts.send 100; a booking 2 Calendar requests: freeBusy + insert; a
folder 1 Drive write), so each host has one lane per API with a steady interval between leads. Lanes
run a little under the limit (`HEADROOM`) because calls do not happen exactly when planned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Google's published per-user figures, in the shape of docs/api.md, "Sandbox limits".
PUBLISHED: dict[str, dict[str, float]] = {
    "gmail": {
        "units": 15000,
        "perSeconds": 60,
        "concurrent": 10,
        "sends": 2000,
        "sendsPerSeconds": 86400,
    },
    "calendar": {
        "requests": 600,
        "perSeconds": 60,
        "externalInvites": 10000,
        "invitesPerSeconds": 86400,
        "lockoutSeconds": 3600,
    },
    "drive": {"writes": 3, "perSeconds": 1},
}
# What one lead's action costs its API, in the unit the limit counts.
COSTS: dict[str, tuple[str, float]] = {
    "gmail": ("units", 110.0),  # drafts.create 10 + drafts.send 100
    "calendar": ("requests", 2.0),  # freebusy.query + events.insert
    "drive": ("writes", 1.0),  # files.create (ids are reserved 100 at a time)
}
HEADROOM = 0.95
# The longest a delivery waits in process for its start (or for a brief "Retry after").
BRIEF = timedelta(seconds=1)
# A lead due within this long is published now with its `startAt`; a later one waits in
# Firestore and the sweeper publishes it this long before its start (its resume cadence).
LOOKAHEAD = timedelta(milliseconds=500)
# From a lead's start to its receipt being terminal, for the expected finish (`eta`).
LEAD_SECONDS = timedelta(seconds=2)
# A slowed lane speeds up quickly to just under the rate Google last refused (`RECOVER` of it),
# and beyond it a tenth as fast (`PROBE`): that is where the limit was.
RECOVER = 0.9
PROBE = 0.1


class LimitsError(ValueError):
    """`LEADRUN_GOOGLE_LIMITS` is not a limits document."""


@dataclass(frozen=True)
class Limits:
    """The per-user limits the pipeline paces to."""

    document: Mapping[str, Any]

    def interval(self, api: str) -> timedelta | None:
        """The steady time between two leads' actions on `api` (None: no limit).

        At most `HEADROOM` of the limit, and at least half a lead's room in every window: a
        window that holds a few calls (Drive's 3 a second) is missed by a call that runs a
        little late or early, unless the plan leaves room for one.
        """
        figures = self.document.get(api) or {}
        unit, cost = COSTS[api]
        count, window = figures.get(unit), figures.get("perSeconds")
        if not count or not window:
            return None
        per_window = min(float(count) / cost * HEADROOM, float(count) / cost - 0.5)
        return timedelta(seconds=float(window) / max(per_window, 0.5))

    def window(self, api: str) -> timedelta:
        """The API's rate window (one second when not told): how long a refusal without a
        "Retry after" waits first, at most a second."""
        return timedelta(seconds=min(self.window_s(api), 1.0))

    def window_s(self, api: str) -> float:
        """The API's rate window in seconds (one when not told)."""
        return float((self.document.get(api) or {}).get("perSeconds") or 1.0)

    def daily_sends(self) -> tuple[int, timedelta] | None:
        """Gmail's cap on sends and its window, if any."""
        gmail = self.document.get("gmail") or {}
        sends, window = gmail.get("sends"), gmail.get("sendsPerSeconds")
        if not sends or not window:
            return None
        return int(sends), timedelta(seconds=float(window))


def parse_limits(raw: str | None) -> Limits:
    """The limits of `LEADRUN_GOOGLE_LIMITS` (unset or empty: Google's published figures)."""
    if not raw or not raw.strip():
        return Limits(PUBLISHED)
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise LimitsError(f"LEADRUN_GOOGLE_LIMITS is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise LimitsError("LEADRUN_GOOGLE_LIMITS must be a JSON object")
    for api in ("gmail", "calendar", "drive"):
        figures = document.get(api, {})
        if not isinstance(figures, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in figures.values()
        ):
            raise LimitsError(f"LEADRUN_GOOGLE_LIMITS: {api} must map names to numbers")
    return Limits(document)


@dataclass(frozen=True)
class Plan:
    """Start times for a lane's next leads, and the lane's state after them."""

    starts: list[datetime]
    next_free: datetime
    day_start: datetime | None
    day_used: int
    over_daily: int  # how many of them wait for the next daily window


def under_refused(refused: float | None) -> float:
    """Where a lane Google refused promptly at factor `refused` goes at once, and what it comes
    back to quickly after any later slowdown: `RECOVER` of it (None: no such factor, 1)."""
    return 1.0 if refused is None else RECOVER * refused


def recovered(factor: float, by: float, refused: float | None = None) -> float:
    """A slowed lane's factor after speeding up by `by`: quickly up to `under_refused(refused)`
    (`refused`: the factor Google last refused promptly, if known), then `PROBE` as fast, to 1."""
    ceiling = under_refused(refused)
    if factor < ceiling - 1e-9:  # (tenths added up fall a hair short of it)
        return min(ceiling, factor + by)
    return min(1.0, factor + by * PROBE)


def plan_lane(
    count: int,
    *,
    now: datetime,
    next_free: datetime,
    interval: timedelta,
    daily: tuple[int, timedelta] | None = None,
    day_start: datetime | None = None,
    day_used: int = 0,
    factor: float = 1.0,
    speedup: float = 0.0,
    refused: float | None = None,
) -> Plan:
    """Give `count` leads their start in a lane that is free from `next_free`, one every
    `interval / factor`; with a daily cap, a lead past it starts when the next window opens.

    A slowed lane (`factor` < 1) speeds up by `speedup` a second while its calls go through, at
    most once a call, as `recovered` says (`lanes.Lanes.passed`): the plan counts on that, so
    leads spaced while the lane was slow do not keep its slowest pace after it has recovered. If
    the calls are refused again, the gate closes and they are spaced anew at the pace of then."""
    at = max(now, next_free)
    starts = []
    over = 0
    rolled = False  # a lead after the first full window waits for a later one
    for _ in range(count):
        if daily is not None:
            cap, window = daily
            if day_start is None or at >= day_start + window:
                day_start, day_used = at, 0
            if day_used >= cap:
                at = max(at, day_start + window)
                day_start, day_used, rolled = at, 0, True
            day_used += 1
            over += rolled
        starts.append(at)
        step = interval / factor
        at = at + step
        factor = recovered(factor, speedup * min(step.total_seconds(), 1.0), refused)
    return Plan(starts, at, day_start, day_used, over)
