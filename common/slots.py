"""Choosing a meeting slot for a lead: pure functions over timezone-aware datetimes.

Nothing here reads a clock, a calendar or the network: the caller passes ``now``, the busy
intervals it got from ``freebusy.query`` and the holds of other in-flight bookings, and gets an
``Interval`` (or ``None``) back. The rules, made precise:

* Intervals are half-open ``[start, end)``, like freeBusy's busy blocks: a block ending at 10:00
  does not touch a meeting starting at 10:00. Empty intervals (``end <= start``) block nothing.
* Every datetime must be timezone-aware (``ValueError`` otherwise). ``Interval`` stores its ends in
  UTC, because Python compares and subtracts two datetimes that share a tzinfo by wall clock, which
  is wrong across a DST fold (for Python, 01:30 EDT equals 01:30 EST in America/New_York).
* Candidate phase (``first_free_candidate``): the meeting is ``[c.start, c.start + duration)`` for
  a candidate ``c`` (a candidate longer than the meeting books at its start; one shorter is not
  usable; a malformed one, ``end <= start``, is ignored). The candidate must start at or after
  ``now + notice`` (past candidates and ones inside the notice are skipped), and the meeting widened
  by the buffers, ``[start - buffer_before, end + buffer_after)``, must overlap no busy interval and
  no hold. The earliest such candidate (by start time, not list order) wins.
* Expanded search (``first_free_expanded``), used when no candidate is free or there are none:
  - It starts at ``search_start`` = the later of ``now + notice`` and the start of the earliest
    valid candidate's day in the host's zone (with no valid candidate: ``now + notice``).
  - It covers ``expand_days`` working days (Monday to Friday in the host's zone) counted from the
    host-zone date of ``search_start``: that date is the first of them if it is a working day
    (even when its working hours are already over), otherwise the next working day is.
    ``expand_days == 0`` means no expanded search.
  - Each day's working hours run from ``workday.start`` to ``workday.end`` wall-clock time,
    resolved on that day in the host's zone, so 09:00 stays 09:00 local across a DST change.
  - Meetings start on a 15-minute grid aligned to the host's wall clock (:00 :15 :30 :45), from the
    first grid point at or after the later of the day's opening and ``search_start``, in steps of
    15 minutes of real time, and must end by the day's closing. Every zone in the tz database has
    offsets that are whole quarter hours today, so the alignment survives a DST change. Stepping in
    real time means a repeated (fall-back) hour inside working hours is offered twice, as it really
    is twice as long, and a skipped (spring-forward) hour is not offered at all.
* Wall-clock times that a DST change makes odd resolve to "the first instant at which the host's
  clock shows that time or later": an ambiguous time (fall back) is its first occurrence; a
  nonexistent time (spring-forward gap) is the transition itself, the first instant after the gap
  (02:30 on the US spring-forward day resolves to 03:00 EDT). A workday therefore opens as soon as
  the clock has passed its start time and closes as soon as the clock has passed its end time.
* FreeBusy windows: ``candidates_window`` and ``expanded_window`` give the single
  ``(timeMin, timeMax)`` each phase must query, buffers included; the expanded one stays under
  freeBusy's 90-day limit (``Workday.expand_days`` is capped at ``MAX_EXPAND_DAYS``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_NOTICE",
    "FREEBUSY_MAX_SPAN",
    "GRID_STEP",
    "MAX_EXPAND_DAYS",
    "Interval",
    "SlotRules",
    "Workday",
    "candidates_window",
    "expanded_grid",
    "expanded_window",
    "first_free_candidate",
    "first_free_expanded",
    "format_meeting_time",
    "split_candidates",
]

DEFAULT_NOTICE = timedelta(minutes=15)
GRID_STEP = timedelta(minutes=15)
# Google asks to keep freebusy.query windows under 90 days.
FREEBUSY_MAX_SPAN = timedelta(days=90)
# 60 working days are at most 84 calendar days (12 weeks from a weekend start), which leaves room
# for buffers under FREEBUSY_MAX_SPAN, so one freeBusy call always covers the expanded search.
MAX_EXPAND_DAYS = 60

_ZERO = timedelta(0)
# English names on purpose: strftime's %a/%b follow the process locale, which a lead must not see.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _require_aware(value: datetime, name: str) -> None:
    """Raise ValueError unless ``value`` is a timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _to_utc(value: datetime) -> datetime:
    """The same instant in UTC (cheap when it already is)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open span of time ``[start, end)``; both ends aware, stored in UTC.

    ``end <= start`` is allowed so that a lead's malformed candidate can be represented and
    reported; such an interval is empty and overlaps nothing.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware(self.start, "start")
        _require_aware(self.end, "end")
        # Normalise to UTC so ordering, equality and arithmetic are in real time (see module doc).
        object.__setattr__(self, "start", _to_utc(self.start))
        object.__setattr__(self, "end", _to_utc(self.end))

    @property
    def duration(self) -> timedelta:
        """Length in real time (negative or zero for a malformed interval)."""
        return self.end - self.start

    @property
    def is_empty(self) -> bool:
        """True when the interval contains no instant (``end <= start``)."""
        return self.end <= self.start

    def overlaps(self, other: Interval) -> bool:
        """True when the two half-open intervals share at least one instant."""
        return (
            not self.is_empty
            and not other.is_empty
            and self.start < other.end
            and other.start < self.end
        )

    def contains(self, other: Interval) -> bool:
        """True when ``other`` lies entirely inside this interval."""
        return self.start <= other.start and other.end <= self.end

    def widened(self, before: timedelta, after: timedelta) -> Interval:
        """This interval extended by ``before`` at the start and ``after`` at the end."""
        return Interval(self.start - before, self.end + after)


@dataclass(frozen=True)
class SlotRules:
    """How long a meeting is and what must be free around it.

    ``notice`` is the minimum time between ``now`` and the meeting's start; the buffers must be
    free of busy time and holds just like the meeting itself.
    """

    duration: timedelta
    notice: timedelta = DEFAULT_NOTICE
    buffer_before: timedelta = _ZERO
    buffer_after: timedelta = _ZERO

    def __post_init__(self) -> None:
        if self.duration <= _ZERO:
            raise ValueError(f"duration must be positive, got {self.duration}")
        for name in ("notice", "buffer_before", "buffer_after"):
            if getattr(self, name) < _ZERO:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    def meeting_at(self, start: datetime) -> Interval:
        """The meeting interval starting at ``start``."""
        return Interval(start, start + self.duration)

    def needs_free(self, meeting: Interval) -> Interval:
        """The span that must be free for ``meeting``: the meeting with its buffers."""
        return meeting.widened(self.buffer_before, self.buffer_after)


@dataclass(frozen=True)
class Workday:
    """The host's working hours for the expanded search.

    ``start`` and ``end`` are naive wall-clock times in ``tz`` with ``start < end`` (a workday
    cannot run past local midnight); ``expand_days`` is how many working days (Mon-Fri) to search.
    """

    tz: ZoneInfo
    start: time
    end: time
    expand_days: int

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("workday start and end are wall-clock times: pass them without tzinfo")
        if not self.start < self.end:
            raise ValueError(f"workday start {self.start} must be before end {self.end}")
        if not 0 <= self.expand_days <= MAX_EXPAND_DAYS:
            raise ValueError(
                f"expand_days must be between 0 and {MAX_EXPAND_DAYS}, got {self.expand_days}"
            )


_start_of = attrgetter("start")


class _BlockedTime:
    """Busy intervals and holds, sorted once so each "is this free?" is one binary search.

    With blocks sorted by start, the blocks starting before a span's end are a prefix of the
    list; the span is free exactly when the largest end in that prefix is at or before its start.
    """

    __slots__ = ("_max_end_upto", "_starts")

    def __init__(self, *sources: Iterable[Interval]) -> None:
        blocks = sorted(
            (block for source in sources for block in source if block.start < block.end),
            key=_start_of,
        )
        self._starts = [block.start for block in blocks]
        self._max_end_upto: list[datetime] = []
        for block in blocks:
            if self._max_end_upto and self._max_end_upto[-1] > block.end:
                self._max_end_upto.append(self._max_end_upto[-1])
            else:
                self._max_end_upto.append(block.end)

    def is_free(self, span: Interval) -> bool:
        """True when no block shares an instant with ``span``."""
        count_before_end = bisect_left(self._starts, span.end)
        return count_before_end == 0 or self._max_end_upto[count_before_end - 1] <= span.start


def split_candidates(candidates: Iterable[Interval]) -> tuple[list[Interval], list[Interval]]:
    """Split candidates into ``(valid, malformed)``, keeping order; malformed: ``end <= start``.

    The caller rejects a lead with ``invalid_slots`` when it has candidates and all are malformed.
    A valid candidate shorter than the meeting is still "valid" here: it is just never booked.
    """
    valid: list[Interval] = []
    malformed: list[Interval] = []
    for candidate in candidates:
        (malformed if candidate.is_empty else valid).append(candidate)
    return valid, malformed


def _bookable_starts(
    candidates: Iterable[Interval], rules: SlotRules, now: datetime | None
) -> list[datetime]:
    """Sorted start times of the candidates that could hold the meeting, ignoring busy time."""
    earliest = None if now is None else _to_utc(now) + rules.notice
    return sorted(
        candidate.start
        for candidate in candidates
        if candidate.duration >= rules.duration
        and (earliest is None or candidate.start >= earliest)
    )


def candidates_window(
    candidates: Iterable[Interval], rules: SlotRules, now: datetime | None = None
) -> Interval | None:
    """The freeBusy ``(timeMin, timeMax)`` covering every bookable candidate with its buffers.

    Covers ``[first start - buffer_before, last start + duration + buffer_after)`` over candidates
    long enough for the meeting (and, when ``now`` is given, not in the past or inside the
    notice). ``None`` when no candidate is bookable: skip the call and go to the expanded search.
    The span is not capped: candidates spread over more than 90 days need the caller's attention.
    """
    if now is not None:
        _require_aware(now, "now")
    starts = _bookable_starts(candidates, rules, now)
    if not starts:
        return None
    return Interval(starts[0], starts[-1] + rules.duration).widened(
        rules.buffer_before, rules.buffer_after
    )


def first_free_candidate(
    candidates: Iterable[Interval],
    busy: Iterable[Interval],
    holds: Iterable[Interval],
    rules: SlotRules,
    now: datetime,
) -> Interval | None:
    """The meeting ``[start, start + duration)`` at the earliest free candidate, or ``None``."""
    _require_aware(now, "now")
    blocked = _BlockedTime(busy, holds)
    for start in _bookable_starts(candidates, rules, now):
        meeting = rules.meeting_at(start)
        if blocked.is_free(rules.needs_free(meeting)):
            return meeting
    return None


def _wall_time_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant (in UTC) at which the clock in ``tz`` shows ``wall`` on ``day`` or later.

    Ambiguous times give their first occurrence (fold=0); a nonexistent time gives the end of
    the gap, i.e. the transition instant.
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap, fold=0 and fold=1 read the wall time with the offsets on either side of the
    # transition, which lands one instant after and one before it: bisect (to the microsecond)
    # for the transition, the first instant whose wall clock is at or past ``wall``.
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    before, after = min(first, second), max(first, second)
    while after - before > timedelta(microseconds=1):
        middle = before + (after - before) // 2
        if middle.astimezone(tz).replace(tzinfo=None) >= naive:
            after = middle
        else:
            before = middle
    return after


def _next_grid_point(instant: datetime, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``instant`` whose ``tz`` wall clock is on :00/:15/:30/:45."""
    local = instant.astimezone(tz)
    into_quarter = timedelta(
        minutes=local.minute % 15, seconds=local.second, microseconds=local.microsecond
    )
    return instant if into_quarter == _ZERO else instant + (GRID_STEP - into_quarter)


def _search_start(
    candidates: Iterable[Interval], workday: Workday, rules: SlotRules, now: datetime
) -> datetime:
    """Later of ``now + notice`` and the start of the earliest valid candidate's host-zone day."""
    _require_aware(now, "now")
    earliest = _to_utc(now) + rules.notice
    valid, _ = split_candidates(candidates)
    if valid:
        first_day = min(candidate.start for candidate in valid).astimezone(workday.tz).date()
        earliest = max(earliest, _wall_time_instant(first_day, time(0), workday.tz))
    return earliest


def _working_days(first: date, count: int) -> Iterator[date]:
    """``count`` Monday-to-Friday dates, starting with ``first`` if it is one."""
    day = first
    found = 0
    while found < count:
        if day.weekday() < 5:
            yield day
            found += 1
        day += timedelta(days=1)


def _expanded_days(
    candidates: Iterable[Interval], workday: Workday, rules: SlotRules, now: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """Per working day of the expanded search: (first grid start, closing instant), in UTC."""
    search_start = _search_start(candidates, workday, rules, now)
    first_day = search_start.astimezone(workday.tz).date()
    for day in _working_days(first_day, workday.expand_days):
        opening = max(_wall_time_instant(day, workday.start, workday.tz), search_start)
        closing = _wall_time_instant(day, workday.end, workday.tz)
        first_start = _next_grid_point(opening, workday.tz)
        if first_start + rules.duration <= closing:
            yield first_start, closing


def expanded_grid(
    candidates: Iterable[Interval], workday: Workday, rules: SlotRules, now: datetime
) -> Iterator[Interval]:
    """Every meeting interval the expanded search may book, in time order (see module doc)."""
    _require_aware(now, "now")  # here, not at the first next(): fail where the call is made
    return _grid_from(list(_expanded_days(candidates, workday, rules, now)), rules)


def _grid_from(days: list[tuple[datetime, datetime]], rules: SlotRules) -> Iterator[Interval]:
    """The grid's meeting intervals for the given (first grid start, closing instant) days."""
    for first_start, closing in days:
        start = first_start
        while start + rules.duration <= closing:
            yield rules.meeting_at(start)
            start += GRID_STEP


def expanded_window(
    candidates: Iterable[Interval], workday: Workday, rules: SlotRules, now: datetime
) -> Interval | None:
    """The freeBusy ``(timeMin, timeMax)`` covering the whole expanded search with buffers.

    ``None`` when the search has no slot to try (``expand_days == 0``, or no working hours left
    that fit the meeting). Raises ValueError if the buffers push the window past 90 days.
    """
    days = list(_expanded_days(candidates, workday, rules, now))
    if not days:
        return None
    first_start = days[0][0]
    last_first_start, last_closing = days[-1]
    steps = (last_closing - rules.duration - last_first_start) // GRID_STEP
    last_end = last_first_start + steps * GRID_STEP + rules.duration
    window = Interval(first_start, last_end).widened(rules.buffer_before, rules.buffer_after)
    if window.duration >= FREEBUSY_MAX_SPAN:
        raise ValueError(f"expanded search window {window.duration} is not under 90 days")
    return window


def first_free_expanded(
    candidates: Iterable[Interval],
    busy: Iterable[Interval],
    holds: Iterable[Interval],
    workday: Workday,
    rules: SlotRules,
    now: datetime,
) -> Interval | None:
    """The earliest free meeting interval of the expanded search, or ``None``."""
    candidates = list(candidates)  # read twice: validity, then the grid
    blocked = _BlockedTime(busy, holds)
    for meeting in expanded_grid(candidates, workday, rules, now):
        if blocked.is_free(rules.needs_free(meeting)):
            return meeting
    return None


def format_meeting_time(start: datetime, tz: ZoneInfo) -> str:
    """A meeting time for a lead, e.g. ``Tue 1 Dec 2026, 15:00 WET``.

    24-hour clock, English names whatever the locale, no leading zero on the day, and the zone's
    abbreviation as zoneinfo gives it (``IST`` for Asia/Kolkata, ``+0545`` for Asia/Kathmandu).
    """
    _require_aware(start, "start")
    local = start.astimezone(tz)
    return (
        f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}, "
        f"{local:%H:%M} {local.tzname()}"
    )
