"""Slot selection, case by case: candidates, expanded search, DST, odd zones, windows, formatting.

Times in the table are wall-clock times in the case's host zone ("2026-03-09 09:00"), unless they
end in "Z" (UTC). A trailing "!" picks the second occurrence of an ambiguous (fall-back) time.
An end given as "HH:MM" is on the start's date.
"""

from __future__ import annotations

import timeit
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from common.slots import (
    FREEBUSY_MAX_SPAN,
    MAX_EXPAND_DAYS,
    Interval,
    SlotRules,
    Workday,
    candidates_window,
    expanded_grid,
    expanded_window,
    first_free_candidate,
    first_free_expanded,
    format_meeting_time,
    split_candidates,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
MIN = timedelta(minutes=1)


def at(text: str, tz: ZoneInfo) -> datetime:
    """Parse a table time: local to ``tz``, "Z" for UTC, "!" for the second of a repeated time."""
    if text.endswith("Z"):
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    fold = 1 if text.endswith("!") else 0
    return datetime.fromisoformat(text.rstrip("!")).replace(tzinfo=tz, fold=fold)


def span(start: str, end: str, tz: ZoneInfo) -> Interval:
    """An interval from table times; a bare "HH:MM" end is on the start's date."""
    if len(end.rstrip("Z!")) == 5:
        end = start[:11] + end
    return Interval(at(start, tz), at(end, tz))


@dataclass(frozen=True)
class Case:
    """One booking: the inputs a caller has, and where the meeting must land."""

    id: str
    now: str
    expect: str | None  # meeting start (host-zone wall clock or "Z"), None for no slot
    phase: str = "candidate"  # "candidate", "expanded" or "none"
    expect_utc: str | None = None  # the same instant in UTC, spelled out where DST matters
    tz: str = "America/New_York"
    candidates: tuple[tuple[str, str], ...] = ()
    busy: tuple[tuple[str, str], ...] = ()
    holds: tuple[tuple[str, str], ...] = ()
    duration: int = 30
    notice: int = 15
    before: int = 0
    after: int = 0
    workday: tuple[str, str] = ("09:00", "17:00")
    expand_days: int = 5
    notes: str = field(default="", compare=False)


# Monday 2026-03-02 is the default week; the US changes clocks on Sunday 2026-03-08 and
# 2026-11-01, the UK on Sunday 2026-03-29 and 2026-10-25.
TUE = "2026-03-03"
CASES: list[Case] = [
    # --- candidate phase: basics -----------------------------------------------------------
    Case(
        "free-candidate",
        "2026-03-02 08:00",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "10:30"),),
    ),
    Case(
        "earliest-by-time-not-list-order",
        "2026-03-02 08:00",
        f"{TUE} 14:00",
        candidates=(("2026-03-04 10:00", "10:30"), (f"{TUE} 14:00", "14:30")),
    ),
    Case(
        "busy-ending-at-candidate-start-is-free",
        "2026-03-02 08:00",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "10:30"),),
        busy=((f"{TUE} 09:30", "10:00"),),
    ),
    Case(
        "busy-starting-at-candidate-end-is-free",
        "2026-03-02 08:00",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "10:30"),),
        busy=((f"{TUE} 10:30", "11:00"),),
    ),
    Case(
        "busy-overlapping-start-by-one-minute",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
        busy=((f"{TUE} 09:30", "10:01"),),
    ),
    Case(
        "busy-overlapping-end-by-one-minute",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
        busy=((f"{TUE} 10:29", "11:00"),),
    ),
    Case(
        "all-day-busy-skips-the-day",
        "2026-03-02 08:00",
        "2026-03-04 10:00",
        candidates=(
            (f"{TUE} 10:00", "10:30"),
            (f"{TUE} 15:00", "15:30"),
            ("2026-03-04 10:00", "10:30"),
        ),
        busy=((f"{TUE} 00:00", "2026-03-04 00:00"),),
    ),
    Case(
        "candidate-in-the-past-skipped",
        f"{TUE} 12:00",
        f"{TUE} 14:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 14:00", "14:30")),
    ),
    Case(
        "candidate-inside-notice-skipped",
        f"{TUE} 09:50",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
    ),
    Case(
        "candidate-exactly-at-notice-is-fine",
        f"{TUE} 09:45",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "10:30"),),
    ),
    Case(
        "longer-candidate-books-at-its-start",
        "2026-03-02 08:00",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "12:00"),),
        busy=((f"{TUE} 11:00", "11:30"),),
        notes="busy later inside the candidate does not matter: only the meeting must be free",
    ),
    Case(
        "longer-candidate-with-busy-start-is-not-slid",
        "2026-03-02 08:00",
        None,
        phase="none",
        candidates=((f"{TUE} 10:00", "12:00"),),
        busy=((f"{TUE} 10:00", "10:15"),),
        expand_days=0,
    ),
    Case(
        "candidate-shorter-than-meeting-unusable",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:20"), (f"{TUE} 11:00", "11:30")),
    ),
    Case(
        "malformed-candidates-ignored",
        "2026-03-02 08:00",
        f"{TUE} 14:00",
        candidates=(
            (f"{TUE} 10:00", "10:00"),
            (f"{TUE} 11:00", "10:30"),
            (f"{TUE} 14:00", "14:30"),
        ),
    ),
    # --- buffers and holds -------------------------------------------------------------------
    Case(
        "buffer-before-blocks",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
        busy=((f"{TUE} 09:45", "09:55"),),
        before=10,
    ),
    Case(
        "buffer-before-touching-busy-is-free",
        "2026-03-02 08:00",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "10:30"),),
        busy=((f"{TUE} 09:40", "09:50"),),
        before=10,
    ),
    Case(
        "buffer-after-blocks",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
        busy=((f"{TUE} 10:35", "10:45"),),
        after=10,
    ),
    Case(
        "hold-blocks",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
        holds=((f"{TUE} 10:15", "10:45"),),
    ),
    Case(
        "hold-touching-is-free",
        "2026-03-02 08:00",
        f"{TUE} 10:00",
        candidates=((f"{TUE} 10:00", "10:30"),),
        holds=((f"{TUE} 09:30", "10:00"),),
    ),
    Case(
        "hold-inside-buffer-blocks",
        "2026-03-02 08:00",
        f"{TUE} 11:00",
        candidates=((f"{TUE} 10:00", "10:30"), (f"{TUE} 11:00", "11:30")),
        holds=((f"{TUE} 10:40", "10:55"),),
        after=15,
    ),
    # --- candidate phase across DST ------------------------------------------------------------
    Case(
        "ny-dst-start-local-busy-against-utc-candidates",
        "2026-03-06 08:00",
        "2026-03-09 14:00Z",
        expect_utc="2026-03-09 14:00Z",
        candidates=(("2026-03-09 13:30Z", "14:00Z"), ("2026-03-09 14:00Z", "14:30Z")),
        busy=(("2026-03-09 09:00", "10:00"),),
        notes="09:00-10:00 EDT is 13:00-14:00Z; with last week's EST offset 13:30Z would look free",
    ),
    Case(
        "ny-dst-end-repeated-hour-second-occurrence-free",
        "2026-10-30 08:00",
        "2026-11-01 01:00!",
        expect_utc="2026-11-01 06:00Z",
        candidates=(("2026-11-01 01:00", "01:30"), ("2026-11-01 01:00!", "01:30!")),
        busy=(("2026-11-01 00:45", "01:30"),),
        notes="01:00 EDT is busy, 01:00 EST an hour later is free although the wall clock matches",
    ),
    Case(
        "london-dst-start-utc-busy-against-local-candidates",
        "2026-03-27 08:00",
        "2026-03-30 10:00",
        expect_utc="2026-03-30 09:00Z",
        tz="Europe/London",
        candidates=(("2026-03-30 09:00", "09:30"), ("2026-03-30 10:00", "10:30")),
        busy=(("2026-03-30 08:00Z", "09:00Z"),),
    ),
    Case(
        "london-dst-end-repeated-hour",
        "2026-10-23 08:00",
        "2026-10-25 01:30!",
        expect_utc="2026-10-25 01:30Z",
        tz="Europe/London",
        candidates=(("2026-10-25 01:30", "02:00"), ("2026-10-25 01:30!", "02:00")),
        busy=(("2026-10-25 00:30Z", "01:00Z"),),
    ),
    # --- expanded search ---------------------------------------------------------------------
    Case(
        "all-candidates-busy-expands-from-first-candidate-day",
        "2026-03-02 08:00",
        f"{TUE} 09:00",
        phase="expanded",
        candidates=((f"{TUE} 10:00", "10:30"),),
        busy=((f"{TUE} 10:00", "10:30"),),
        notes="Monday has free hours, but the search starts on the first candidate's day",
    ),
    Case(
        "no-candidates-expands-from-now-plus-notice",
        "2026-03-02 10:07",
        "2026-03-02 10:30",
        phase="expanded",
        notes="10:07 + 15 min = 10:22, next grid point 10:30",
    ),
    Case(
        "expand-days-zero-means-no-slot",
        "2026-03-02 08:00",
        None,
        phase="none",
        candidates=((f"{TUE} 10:00", "10:30"),),
        busy=((f"{TUE} 10:00", "10:30"),),
        expand_days=0,
    ),
    Case(
        "first-day-counts-even-after-hours",
        "2026-03-06 16:50",
        None,
        phase="none",
        expand_days=1,
        notes="Friday after 17:05 still is working day 1 of 1",
    ),
    Case(
        "weekend-skipped-ny-dst-start-monday",
        "2026-03-06 16:50",
        "2026-03-09 09:00",
        phase="expanded",
        expect_utc="2026-03-09 13:00Z",
        expand_days=2,
    ),
    Case(
        "saturday-candidate-expands-from-monday",
        "2026-03-02 08:00",
        "2026-03-09 09:00",
        phase="expanded",
        expect_utc="2026-03-09 13:00Z",
        candidates=(("2026-03-07 10:00", "10:30"),),
        busy=(("2026-03-07 10:00", "10:30"),),
        expand_days=1,
    ),
    Case(
        "ny-expanded-before-dst-start-is-est",
        "2026-03-06 07:00",
        "2026-03-06 09:00",
        phase="expanded",
        expect_utc="2026-03-06 14:00Z",
    ),
    Case(
        "ny-expanded-across-dst-start-keeps-9-local",
        "2026-03-06 07:00",
        "2026-03-09 09:00",
        phase="expanded",
        expect_utc="2026-03-09 13:00Z",
        busy=(("2026-03-06 00:00", "2026-03-07 00:00"),),
    ),
    Case(
        "ny-expanded-across-dst-end-keeps-9-local",
        "2026-10-30 17:30",
        "2026-11-02 09:00",
        phase="expanded",
        expect_utc="2026-11-02 14:00Z",
        expand_days=2,
    ),
    Case(
        "london-expanded-before-dst-end-is-bst",
        "2026-10-23 07:00",
        "2026-10-23 09:00",
        phase="expanded",
        tz="Europe/London",
        expect_utc="2026-10-23 08:00Z",
    ),
    Case(
        "london-expanded-across-dst-end-keeps-9-local",
        "2026-10-23 07:00",
        "2026-10-26 09:00",
        phase="expanded",
        tz="Europe/London",
        expect_utc="2026-10-26 09:00Z",
        busy=(("2026-10-23 00:00", "2026-10-24 00:00"),),
    ),
    Case(
        "london-expanded-across-dst-start-keeps-9-local",
        "2026-03-27 17:30",
        "2026-03-30 09:00",
        phase="expanded",
        tz="Europe/London",
        expect_utc="2026-03-30 08:00Z",
        expand_days=2,
    ),
    Case(
        "kolkata-grid-on-local-quarter-hours",
        "2026-03-02 03:37Z",
        "2026-03-02 09:30",
        phase="expanded",
        tz="Asia/Kolkata",
        expect_utc="2026-03-02 04:00Z",
        notes="03:37Z is 09:07 IST; +15 min is 09:22, so 09:30 IST",
    ),
    Case(
        "kathmandu-grid-on-local-quarter-hours",
        "2026-03-02 03:20Z",
        "2026-03-02 09:30",
        phase="expanded",
        tz="Asia/Kathmandu",
        expect_utc="2026-03-02 03:45Z",
        notes="03:20Z is 09:05 +0545; +15 min is 09:20, so 09:30 local (03:45Z)",
    ),
    Case(
        "kathmandu-off-grid-workday-start-rounds-up",
        "2026-03-01 12:00",
        "2026-03-02 09:15",
        phase="expanded",
        tz="Asia/Kathmandu",
        expect_utc="2026-03-02 03:30Z",
        workday=("09:10", "17:00"),
    ),
    Case(
        "los-angeles-workday-crossing-utc-midnight",
        "2026-12-01 22:00",
        "2026-12-01 22:15",
        phase="expanded",
        tz="America/Los_Angeles",
        expect_utc="2026-12-02 06:15Z",
        workday=("15:00", "23:00"),
    ),
    Case(
        "los-angeles-meeting-must-end-by-workday-end",
        "2026-12-01 22:10",
        "2026-12-02 15:00",
        phase="expanded",
        tz="America/Los_Angeles",
        expect_utc="2026-12-02 23:00Z",
        workday=("15:00", "23:00"),
        duration=60,
        notes="22:30-23:30 would overrun 23:00, so the next day's 15:00",
    ),
    Case(
        "auckland-monday-while-utc-says-sunday",
        "2026-12-06 19:00Z",
        "2026-12-07 09:00",
        phase="expanded",
        tz="Pacific/Auckland",
        expect_utc="2026-12-06 20:00Z",
    ),
    Case(
        "expanded-hold-with-buffer",
        "2026-03-02 08:00",
        "2026-03-02 09:45",
        phase="expanded",
        holds=(("2026-03-02 09:00", "09:30"),),
        before=15,
    ),
    Case(
        "expanded-busy-touching-is-free",
        "2026-03-02 08:00",
        "2026-03-02 09:30",
        phase="expanded",
        busy=(("2026-03-02 08:00", "09:30"),),
    ),
    Case(
        "expanded-busy-one-minute-over-moves-a-quarter",
        "2026-03-02 08:00",
        "2026-03-02 09:45",
        phase="expanded",
        busy=(("2026-03-02 08:00", "09:31"),),
    ),
    Case(
        "cairo-workday-start-in-spring-gap-opens-at-transition",
        "2026-04-23 20:00",
        "2026-04-24 01:00",
        phase="expanded",
        tz="Africa/Cairo",
        expect_utc="2026-04-23 22:00Z",
        workday=("00:30", "08:00"),
        expand_days=2,
        notes="Friday 00:00-01:00 does not exist in Cairo; 00:30 resolves to the 01:00 transition",
    ),
    Case(
        "cairo-workday-end-in-repeated-hour-uses-first-occurrence",
        "2026-10-29 12:00",
        "2026-10-29 22:30",
        phase="expanded",
        tz="Africa/Cairo",
        expect_utc="2026-10-29 19:30Z",
        workday=("20:00", "23:30"),
        duration=60,
        busy=(("2026-10-29 20:00", "22:30"),),
        expand_days=1,
    ),
    Case(
        "cairo-meeting-overrunning-first-occurrence-does-not-fit",
        "2026-10-29 12:00",
        None,
        phase="none",
        tz="Africa/Cairo",
        workday=("20:00", "23:30"),
        duration=60,
        busy=(("2026-10-29 20:00", "22:45"),),
        expand_days=1,
    ),
]


def run_booking(case: Case) -> tuple[Interval | None, str, SlotRules, Workday, datetime]:
    """Book the way the caller does: candidates first, then the expanded search."""
    tz = ZoneInfo(case.tz)
    rules = SlotRules(
        duration=timedelta(minutes=case.duration),
        notice=timedelta(minutes=case.notice),
        buffer_before=timedelta(minutes=case.before),
        buffer_after=timedelta(minutes=case.after),
    )
    workday = Workday(
        tz,
        time.fromisoformat(case.workday[0]),
        time.fromisoformat(case.workday[1]),
        case.expand_days,
    )
    now = at(case.now, tz)
    candidates = [span(s, e, tz) for s, e in case.candidates]
    busy = [span(s, e, tz) for s, e in case.busy]
    holds = [span(s, e, tz) for s, e in case.holds]

    meeting = first_free_candidate(candidates, busy, holds, rules, now)
    if meeting is not None:
        window = candidates_window(candidates, rules, now)
        assert window is not None and window.contains(rules.needs_free(meeting))
        return meeting, "candidate", rules, workday, now
    meeting = first_free_expanded(candidates, busy, holds, workday, rules, now)
    if meeting is not None:
        window = expanded_window(candidates, workday, rules, now)
        assert window is not None and window.contains(rules.needs_free(meeting))
        assert window.duration < FREEBUSY_MAX_SPAN
        return meeting, "expanded", rules, workday, now
    return None, "none", rules, workday, now


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_booking_table(case: Case) -> None:
    tz = ZoneInfo(case.tz)
    meeting, phase, rules, _, _ = run_booking(case)
    assert phase == case.phase
    if case.expect is None:
        assert meeting is None
        return
    assert meeting is not None
    # Compare in UTC: Python's == between zones is False for any time inside a fold (PEP 495).
    assert meeting.start == at(case.expect, tz).astimezone(UTC)
    assert meeting.duration == rules.duration
    if case.expect_utc is not None:
        assert meeting.start.strftime("%Y-%m-%d %H:%MZ") == case.expect_utc


# --- the pieces on their own ---------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 2, 9, 0)
    aware = naive.replace(tzinfo=NY)
    with pytest.raises(ValueError, match="timezone-aware"):
        Interval(naive, aware)
    with pytest.raises(ValueError, match="timezone-aware"):
        Interval(aware, naive)
    rules = SlotRules(timedelta(minutes=30))
    workday = Workday(NY, time(9), time(17), 5)
    with pytest.raises(ValueError, match="timezone-aware"):
        first_free_candidate([], [], [], rules, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        first_free_expanded([], [], [], workday, rules, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        expanded_grid([], workday, rules, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        expanded_window([], workday, rules, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        candidates_window([], rules, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        format_meeting_time(naive, NY)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": timedelta(0)}, "duration"),
        ({"duration": timedelta(minutes=30), "notice": -MIN}, "notice"),
        ({"duration": timedelta(minutes=30), "buffer_before": -MIN}, "buffer_before"),
        ({"duration": timedelta(minutes=30), "buffer_after": -MIN}, "buffer_after"),
    ],
    ids=["zero-duration", "negative-notice", "negative-buffer-before", "negative-buffer-after"],
)
def test_slot_rules_refuse_nonsense(kwargs: dict[str, timedelta], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlotRules(**kwargs)


def test_slot_rules_defaults() -> None:
    rules = SlotRules(timedelta(minutes=30))
    assert (rules.notice, rules.buffer_before, rules.buffer_after) == (
        timedelta(minutes=15),
        timedelta(0),
        timedelta(0),
    )


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (time(17), time(9), 5),
        (time(9), time(9), 5),
        (time(9), time(17), -1),
        (time(9), time(17), MAX_EXPAND_DAYS + 1),
        (time(9, tzinfo=UTC), time(17), 5),
    ],
    ids=["end-before-start", "empty", "negative-days", "too-many-days", "aware-time"],
)
def test_workday_refuses_nonsense(start: time, end: time, days: int) -> None:
    with pytest.raises(ValueError):
        Workday(NY, start, end, days)


def test_interval_is_real_time_across_a_fold() -> None:
    first = datetime(2026, 11, 1, 1, 30, tzinfo=NY)
    second = first.replace(fold=1)
    # Python alone says these are equal (same tzinfo, same wall clock); Interval must not.
    assert first == second
    assert Interval(first, second).duration == timedelta(hours=1)
    # Same-zone arithmetic is wall-clock arithmetic too: 01:30 EDT + 30 min lands on 02:00 EST.
    assert Interval(first, first + 30 * MIN).duration == timedelta(hours=1, minutes=30)
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    assert Interval(first, first_utc + MIN) < Interval(second, second_utc + MIN)
    assert not Interval(first, first_utc + 30 * MIN).overlaps(Interval(second, second_utc + MIN))


def test_interval_overlap_is_half_open() -> None:
    base = datetime(2026, 3, 2, 9, tzinfo=UTC)
    meeting = Interval(base, base + 30 * MIN)
    assert not meeting.overlaps(Interval(base - 30 * MIN, base))
    assert not meeting.overlaps(Interval(base + 30 * MIN, base + 60 * MIN))
    assert meeting.overlaps(Interval(base + 29 * MIN, base + 60 * MIN))
    assert meeting.overlaps(Interval(base - 60 * MIN, base + 60 * MIN))
    assert not meeting.overlaps(Interval(base + 10 * MIN, base + 10 * MIN))  # empty blocks nothing
    assert Interval(base, base + MIN) == Interval(base.astimezone(NY), base.astimezone(NY) + MIN)


def test_split_candidates_keeps_order_and_finds_malformed() -> None:
    base = datetime(2026, 3, 3, 10, tzinfo=NY)
    ok_late = Interval(base + 60 * MIN, base + 90 * MIN)
    zero = Interval(base, base)
    backwards = Interval(base, base - MIN)
    too_short = Interval(base, base + MIN)
    valid, malformed = split_candidates([ok_late, zero, too_short, backwards])
    assert valid == [ok_late, too_short]
    assert malformed == [zero, backwards]
    assert split_candidates([]) == ([], [])
    # All malformed: the caller's signal for invalid_slots.
    assert split_candidates([zero, backwards])[0] == []


def test_candidates_window_covers_bookable_candidates_with_buffers() -> None:
    rules = SlotRules(timedelta(minutes=30), buffer_before=10 * MIN, buffer_after=5 * MIN)
    day = datetime(2026, 3, 3, tzinfo=NY)
    candidates = [
        Interval(day + timedelta(hours=14), day + timedelta(hours=16)),
        Interval(day + timedelta(hours=10), day + timedelta(hours=10, minutes=30)),
        Interval(day + timedelta(hours=8), day + timedelta(hours=8, minutes=10)),  # too short
        Interval(day + timedelta(hours=7), day + timedelta(hours=6)),  # malformed
    ]
    window = candidates_window(candidates, rules)
    assert window == Interval(
        day + timedelta(hours=9, minutes=50), day + timedelta(hours=14, minutes=35)
    )
    # With now, a candidate already inside the notice is left out of the window.
    now = day + timedelta(hours=9, minutes=50)
    assert candidates_window(candidates, rules, now) == Interval(
        day + timedelta(hours=13, minutes=50), day + timedelta(hours=14, minutes=35)
    )
    assert candidates_window([], rules) is None
    assert candidates_window(candidates[2:], rules) is None


def test_expanded_window_zero_days_and_limits() -> None:
    rules = SlotRules(timedelta(minutes=30))
    now = datetime(2026, 3, 2, 8, tzinfo=NY)
    assert expanded_window([], Workday(NY, time(9), time(17), 0), rules, now) is None
    assert list(expanded_grid([], Workday(NY, time(9), time(17), 0), rules, now)) == []
    assert first_free_expanded([], [], [], Workday(NY, time(9), time(17), 0), rules, now) is None
    # A meeting longer than the workday never fits.
    long_meeting = SlotRules(timedelta(hours=9))
    assert expanded_window([], Workday(NY, time(9), time(17), 5), long_meeting, now) is None

    # The biggest allowed search, starting on a Saturday, stays one freeBusy call.
    saturday = datetime(2026, 3, 7, 8, tzinfo=NY)
    biggest = Workday(NY, time(0), time(23, 59), MAX_EXPAND_DAYS)
    window = expanded_window([], biggest, rules, saturday)
    assert window is not None and window.duration < FREEBUSY_MAX_SPAN
    padded = SlotRules(timedelta(minutes=30), buffer_before=timedelta(days=9))
    with pytest.raises(ValueError, match="90 days"):
        expanded_window([], biggest, padded, saturday)


def test_expanded_window_is_exactly_the_grid_with_buffers() -> None:
    rules = SlotRules(timedelta(minutes=45), buffer_before=5 * MIN, buffer_after=10 * MIN)
    workday = Workday(NY, time(9), time(17), 5)
    now = datetime(2026, 3, 5, 11, 3, tzinfo=NY)  # Thursday
    grid = list(expanded_grid([], workday, rules, now))
    window = expanded_window([], workday, rules, now)
    assert window == Interval(grid[0].start - 5 * MIN, grid[-1].end + 10 * MIN)
    # Thu, Fri, then Mon-Wed after the weekend and the DST change.
    days = sorted({meeting.start.astimezone(NY).date().isoformat() for meeting in grid})
    assert days == ["2026-03-05", "2026-03-06", "2026-03-09", "2026-03-10", "2026-03-11"]
    assert grid[0].start == datetime(2026, 3, 5, 11, 30, tzinfo=NY)
    assert grid[-1].end == datetime(2026, 3, 11, 17, 0, tzinfo=NY)


@pytest.mark.parametrize(
    "zone", ["America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham", "UTC"]
)
def test_expanded_grid_is_aligned_to_local_quarter_hours(zone: str) -> None:
    tz = ZoneInfo(zone)
    rules = SlotRules(timedelta(minutes=15), notice=timedelta(minutes=7))
    workday = Workday(tz, time(9), time(17), 3)
    now = datetime(2026, 3, 6, 10, 1, tzinfo=tz)
    grid = list(expanded_grid([], workday, rules, now))
    assert grid, zone
    for meeting in grid:
        local = meeting.start.astimezone(tz)
        assert local.minute % 15 == 0 and local.second == 0 and local.microsecond == 0
        assert time(9) <= local.time() and meeting.end.astimezone(tz).time() <= time(17)
    full_day = [m for m in grid if m.start.astimezone(tz).date() != now.date()]
    assert len(full_day) == 2 * 32  # two whole days of 15-minute slots from 09:00 to 16:45


def test_no_free_slot_anywhere_gives_none() -> None:
    rules = SlotRules(timedelta(minutes=30))
    now = datetime(2026, 3, 2, 8, tzinfo=NY)
    everything = [Interval(now - timedelta(days=1), now + timedelta(days=30))]
    candidate = Interval(now + timedelta(hours=2), now + timedelta(hours=3))
    assert first_free_candidate([candidate], everything, [], rules, now) is None
    workday = Workday(NY, time(9), time(17), 10)
    assert first_free_expanded([candidate], everything, [], workday, rules, now) is None


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        ("2026-12-01 15:00Z", "Europe/Lisbon", "Tue 1 Dec 2026, 15:00 WET"),
        ("2026-07-01 15:00Z", "Europe/Lisbon", "Wed 1 Jul 2026, 16:00 WEST"),
        ("2026-12-01 15:00Z", "America/New_York", "Tue 1 Dec 2026, 10:00 EST"),
        ("2026-07-01 15:00Z", "America/New_York", "Wed 1 Jul 2026, 11:00 EDT"),
        ("2026-11-01 05:30Z", "America/New_York", "Sun 1 Nov 2026, 01:30 EDT"),
        ("2026-11-01 06:30Z", "America/New_York", "Sun 1 Nov 2026, 01:30 EST"),
        ("2026-12-01 15:00Z", "Europe/London", "Tue 1 Dec 2026, 15:00 GMT"),
        ("2026-07-01 15:00Z", "Europe/London", "Wed 1 Jul 2026, 16:00 BST"),
        ("2026-12-01 15:00Z", "Asia/Kolkata", "Tue 1 Dec 2026, 20:30 IST"),
        ("2026-12-01 15:00Z", "Asia/Kathmandu", "Tue 1 Dec 2026, 20:45 +0545"),
        ("2026-12-01 18:30Z", "Asia/Kolkata", "Wed 2 Dec 2026, 00:00 IST"),
        ("2026-12-09 23:05Z", "America/Los_Angeles", "Wed 9 Dec 2026, 15:05 PST"),
    ],
    ids=[
        "lisbon-wet",
        "lisbon-west",
        "ny-est",
        "ny-edt",
        "ny-fold-first-edt",
        "ny-fold-second-est",
        "london-gmt",
        "london-bst",
        "kolkata-ist",
        "kathmandu-numeric",
        "kolkata-midnight-next-day",
        "la-pst-single-digit-day",
    ],
)
def test_format_meeting_time(instant: str, zone: str, expected: str) -> None:
    assert format_meeting_time(at(instant, ZoneInfo(zone)), ZoneInfo(zone)) == expected


def test_format_meeting_time_accepts_any_aware_input_zone() -> None:
    start = datetime(2026, 12, 1, 10, tzinfo=NY)
    assert format_meeting_time(start, ZoneInfo("Europe/Lisbon")) == "Tue 1 Dec 2026, 15:00 WET"


def test_timing_50_candidates_against_2000_busy(capsys: pytest.CaptureFixture[str]) -> None:
    """Print (not assert) how long a worst-case choice takes; the benchmark owns the budget."""
    base = datetime(2026, 12, 1, tzinfo=UTC)
    rules = SlotRules(timedelta(minutes=30))
    candidates = [
        Interval(base + k * timedelta(hours=6), base + k * timedelta(hours=6) + 30 * MIN)
        for k in range(50)
    ]
    busy = [Interval(base + k * 7 * MIN, base + k * 7 * MIN + 5 * MIN) for k in range(2000)]
    busy += [Interval(c.start + 10 * MIN, c.start + 11 * MIN) for c in candidates]  # all taken
    now = base - timedelta(days=1)
    assert first_free_candidate(candidates, busy, [], rules, now) is None
    runs = 200
    seconds = timeit.timeit(
        lambda: first_free_candidate(candidates, busy, [], rules, now), number=runs
    )
    workday = Workday(ZoneInfo("America/New_York"), time(9), time(17), 14)
    expanded_seconds = timeit.timeit(
        lambda: first_free_expanded(candidates, busy, [], workday, rules, now), number=runs
    )
    with capsys.disabled():
        print(
            f"\n50 candidates x 2,000 busy: {seconds / runs * 1000:.3f} ms; "
            f"expanded 14 days x 2,000 busy: {expanded_seconds / runs * 1000:.3f} ms"
        )
