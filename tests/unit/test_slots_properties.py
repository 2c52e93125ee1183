"""Slot selection against brute force: random calendars, zones near DST changes, buffers, holds.

The references below share no code with ``common.slots``: they scan every busy interval for
every slot, walk the clock minute by minute to resolve wall times in a DST gap, and put the
expanded grid on UTC quarter hours (the same as local quarter hours, because every zone used
here has offsets that are whole quarter hours, which the reference checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.slots import (
    FREEBUSY_MAX_SPAN,
    Interval,
    SlotRules,
    Workday,
    candidates_window,
    expanded_grid,
    expanded_window,
    first_free_candidate,
    first_free_expanded,
)

MIN = timedelta(minutes=1)
QUARTER = timedelta(minutes=15)

# Each zone with instants near its clock changes (weekday ones where the zone has them:
# Cairo changes on Thursday night and Friday, Tehran changed on weekdays until 2022).
ZONES_AND_MOMENTS: dict[str, tuple[str, ...]] = {
    "UTC": ("2026-06-03T12:00",),
    "America/New_York": ("2026-03-08T07:00", "2026-11-01T06:00"),
    "Europe/London": ("2026-03-29T01:00", "2026-10-25T01:00"),
    "Asia/Kolkata": ("2026-12-01T03:30",),
    "Asia/Kathmandu": ("2026-12-01T03:15",),
    "America/Los_Angeles": ("2026-03-08T10:00", "2026-11-01T09:00"),
    "Pacific/Auckland": ("2026-04-04T14:00", "2026-09-26T14:00"),
    "Pacific/Chatham": ("2026-04-04T14:00",),
    "Australia/Lord_Howe": ("2026-04-04T15:00", "2026-10-03T15:30"),
    "Africa/Cairo": ("2026-04-23T22:00", "2026-10-29T21:00"),
    "Asia/Tehran": ("2021-03-21T20:30", "2021-09-21T19:30"),
}
ZONE_MOMENTS = [(zone, moment) for zone, moments in ZONES_AND_MOMENTS.items() for moment in moments]


@dataclass(frozen=True)
class Scenario:
    """Everything one booking decision sees."""

    tz: ZoneInfo
    now: datetime
    candidates: list[Interval]
    busy: list[Interval]
    holds: list[Interval]
    rules: SlotRules
    workday: Workday


def _minutes(low: int, high: int, step: int = 5) -> st.SearchStrategy[timedelta]:
    return st.integers(low // step, high // step).map(lambda k: timedelta(minutes=k * step))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    zone, moment = draw(st.sampled_from(ZONE_MOMENTS))
    tz = ZoneInfo(zone)
    now = datetime.fromisoformat(moment).replace(tzinfo=UTC) + draw(_minutes(-4 * 1440, 2 * 1440))
    # Sometimes a "now" that is not on a 5-minute mark, to exercise grid rounding.
    now += timedelta(seconds=draw(st.sampled_from([0, 0, 0, 1, 37, 299])))

    def intervals(max_size: int, lengths: st.SearchStrategy[timedelta]) -> list[Interval]:
        spans = draw(st.lists(st.tuples(_minutes(-1440, 6 * 1440), lengths), max_size=max_size))
        base = now.replace(second=0)
        return [Interval(base + offset, base + offset + length) for offset, length in spans]

    candidates = intervals(8, _minutes(-30, 240))
    busy = intervals(25, _minutes(0, 600))
    holds = intervals(5, _minutes(0, 120))
    # Blocks placed where decisions happen, so edges (touching, one minute over, buffers) get
    # hit: around candidate starts, and on quarter hours of the next days for the expanded search.
    for candidate in candidates:
        if draw(st.booleans()):
            nudge = draw(_minutes(-120, 60))
            busy.append(
                Interval(
                    candidate.start + nudge, candidate.start + nudge + draw(_minutes(1, 90, 1))
                )
            )
    quarter_hours = draw(st.lists(st.integers(0, 4 * 96), max_size=30))
    base = now.replace(minute=0, second=0)
    for k in quarter_hours:
        length = draw(_minutes(1, 240, 1))
        (holds if k % 7 == 0 else busy).append(
            Interval(base + k * QUARTER, base + k * QUARTER + length)
        )
    rules = SlotRules(
        duration=draw(st.sampled_from([15, 20, 30, 45, 60, 90])) * MIN,
        notice=draw(_minutes(0, 60)),
        buffer_before=draw(_minutes(0, 30)),
        buffer_after=draw(_minutes(0, 30)),
    )
    start_minute = draw(
        st.one_of(st.integers(0, 22 * 60), st.sampled_from([0, 30, 9 * 60, 23 * 60 + 30]))
    )
    length = draw(st.integers(1, 24 * 60 - 1 - start_minute))
    end_minute = start_minute + length
    workday = Workday(
        tz,
        time(start_minute // 60, start_minute % 60),
        time(end_minute // 60, end_minute % 60),
        draw(st.integers(0, 6)),
    )
    return Scenario(tz, now, candidates, busy, holds, rules, workday)


# --- brute-force references ------------------------------------------------------------------


def ref_is_free(span: Interval, blocks: list[Interval]) -> bool:
    """No non-empty block shares an instant with ``span`` (a plain scan)."""
    return all(
        not (block.start < block.end and block.start < span.end and span.start < block.end)
        for block in blocks
    )


def ref_needs_free(start: datetime, rules: SlotRules) -> Interval:
    return Interval(start - rules.buffer_before, start + rules.duration + rules.buffer_after)


def ref_first_free_candidate(s: Scenario) -> Interval | None:
    blocks = s.busy + s.holds
    for candidate in sorted(s.candidates, key=lambda c: c.start):
        if candidate.end - candidate.start < s.rules.duration:
            continue
        if candidate.start < s.now + s.rules.notice:
            continue
        if ref_is_free(ref_needs_free(candidate.start, s.rules), blocks):
            return Interval(candidate.start, candidate.start + s.rules.duration)
    return None


def ref_wall_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """First instant at which the clock shows ``wall`` on ``day`` or later, found by walking."""
    naive = datetime.combine(day, wall)
    readings = [naive.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [u for u in readings if u.astimezone(tz).replace(tzinfo=None) == naive]
    if real:
        return min(real)
    instant = min(readings)
    while instant.astimezone(tz).replace(tzinfo=None) < naive:
        instant += MIN
    return instant


def ref_grid(s: Scenario) -> list[Interval]:
    """The expanded search's slots, built the slow way."""
    tz = s.tz
    search_start = s.now + s.rules.notice
    valid = [c for c in s.candidates if c.start < c.end]
    if valid:
        first_day = min(c.start for c in valid).astimezone(tz).date()
        search_start = max(search_start, ref_wall_instant(first_day, time(0), tz))
    days: list[date] = []
    day = search_start.astimezone(tz).date()
    while len(days) < s.workday.expand_days:
        if day.isoweekday() <= 5:
            days.append(day)
        day += timedelta(days=1)
    grid: list[Interval] = []
    for day in days:
        opening = max(ref_wall_instant(day, s.workday.start, tz), search_start)
        closing = ref_wall_instant(day, s.workday.end, tz)
        seconds = int(opening.timestamp())
        slot = datetime.fromtimestamp(-(-seconds // 900) * 900, UTC)
        if slot < opening:  # opening had sub-second parts on a quarter-hour mark
            slot += QUARTER
        while slot + s.rules.duration <= closing:
            assert slot.astimezone(tz).minute % 15 == 0, "zone offset is not whole quarter hours"
            grid.append(Interval(slot, slot + s.rules.duration))
            slot += QUARTER
    return grid


def ref_first_free_expanded(s: Scenario) -> Interval | None:
    blocks = s.busy + s.holds
    for meeting in ref_grid(s):
        if ref_is_free(ref_needs_free(meeting.start, s.rules), blocks):
            return meeting
    return None


# --- properties --------------------------------------------------------------------------------

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def touching(window: Interval, reach: timedelta) -> list[Interval]:
    """Busy blocks just outside ``window``, touching its edges: never fetched by the caller."""
    return [Interval(window.start - reach, window.start), Interval(window.end, window.end + reach)]


@SETTINGS
@given(scenarios(), _minutes(5, 3 * 1440))
def test_candidate_choice_is_free_inside_a_candidate_and_earliest(
    s: Scenario, reach: timedelta
) -> None:
    meeting = first_free_candidate(s.candidates, s.busy, s.holds, s.rules, s.now)
    assert meeting == ref_first_free_candidate(s)
    window = candidates_window(s.candidates, s.rules, s.now)
    if window is not None:
        # One freeBusy call over the window is enough: busy time outside it changes nothing.
        with_outside = s.busy + touching(window, reach)
        assert first_free_candidate(s.candidates, with_outside, s.holds, s.rules, s.now) == meeting
    if meeting is None:
        return
    assert meeting.duration == s.rules.duration
    assert any(c.start == meeting.start and c.contains(meeting) for c in s.candidates)
    assert meeting.start >= s.now + s.rules.notice
    needed = ref_needs_free(meeting.start, s.rules)
    assert not any(needed.overlaps(block) for block in s.busy + s.holds)
    for covering in (window, candidates_window(s.candidates, s.rules)):
        assert covering is not None and covering.contains(needed)


@SETTINGS
@given(scenarios(), _minutes(5, 3 * 1440))
def test_expanded_choice_is_free_in_working_hours_and_earliest(
    s: Scenario, reach: timedelta
) -> None:
    grid = list(expanded_grid(s.candidates, s.workday, s.rules, s.now))
    assert grid == ref_grid(s)
    meeting = first_free_expanded(s.candidates, s.busy, s.holds, s.workday, s.rules, s.now)
    assert meeting == ref_first_free_expanded(s)
    window = expanded_window(s.candidates, s.workday, s.rules, s.now)
    if not grid:
        assert window is None and meeting is None
        return
    assert window is not None and window.duration < FREEBUSY_MAX_SPAN
    with_outside = s.busy + touching(window, reach)
    assert (
        first_free_expanded(s.candidates, with_outside, s.holds, s.workday, s.rules, s.now)
        == meeting
    )
    for slot in grid:
        assert window.contains(ref_needs_free(slot.start, s.rules))
        local = slot.start.astimezone(s.tz)
        assert local.isoweekday() <= 5
        assert (local.minute % 15, local.second, local.microsecond) == (0, 0, 0)
        assert slot.start >= s.now + s.rules.notice
    assert all(a.start + QUARTER <= b.start for a, b in pairwise(grid))
    if meeting is None:
        return
    local_day = meeting.start.astimezone(s.tz).date()
    assert ref_wall_instant(local_day, s.workday.start, s.tz) <= meeting.start
    assert meeting.end <= ref_wall_instant(local_day, s.workday.end, s.tz)
    needed = ref_needs_free(meeting.start, s.rules)
    assert not any(needed.overlaps(block) for block in s.busy + s.holds)
