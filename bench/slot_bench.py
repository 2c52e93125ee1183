"""Slot selection: choosing among 50 candidates against 2,000 busy intervals, in process."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from zoneinfo import ZoneInfo

from common.slots import (
    Interval,
    SlotRules,
    Workday,
    candidates_window,
    first_free_candidate,
    first_free_expanded,
    split_candidates,
)

CANDIDATES = 50
BUSY = 2_000


@dataclass(frozen=True)
class SlotFigures:
    """Milliseconds per choice: median and p95 of `repeats` runs, for each phase measured."""

    candidates_p50_ms: float
    candidates_p95_ms: float
    parse_busy_p50_ms: float
    expanded_p50_ms: float
    repeats: int


def _workload(now: datetime) -> tuple[list[Interval], list[Interval], list[dict[str, str]]]:
    """50 candidates of which only the latest is free, among 2,000 busy blocks (worst case)."""
    base = now + timedelta(days=2)
    busy = [
        Interval(base + timedelta(minutes=30 * i), base + timedelta(minutes=30 * i + 20))
        for i in range(BUSY)
    ]
    # Candidates sit on busy blocks 40 apart; the last one sits after every block.
    candidates = [busy[i * 40].start for i in range(CANDIDATES - 1)]
    candidates.append(busy[-1].end + timedelta(hours=1))
    slots = [Interval(c, c + timedelta(minutes=30)) for c in reversed(candidates)]
    raw = [{"start": b.start.isoformat(), "end": b.end.isoformat()} for b in busy]
    return slots, busy, raw


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(repeats: int = 200) -> SlotFigures:
    """Time what `Booker.choose` does in process (freeBusy answer in hand), `repeats` times."""
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    slots, busy, raw = _workload(now)
    rules = SlotRules(duration=timedelta(minutes=30))
    workday = Workday(ZoneInfo("America/New_York"), wall_time(9), wall_time(17), 5)

    def choose() -> Interval | None:
        valid, _ = split_candidates(slots)
        window = candidates_window(valid, rules, now)
        assert window is not None
        return first_free_candidate(valid, busy, [], rules, now)

    def parse() -> list[Interval]:
        return [
            Interval(datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]))
            for b in raw
        ]

    def expanded() -> Interval | None:
        return first_free_expanded(slots, busy, [], workday, rules, now)

    assert choose() == Interval(slots[0].start, slots[0].start + rules.duration)
    figures: dict[str, list[float]] = {"choose": [], "parse": [], "expanded": []}
    for _ in range(repeats):
        for name, fn in (("choose", choose), ("parse", parse), ("expanded", expanded)):
            started = time.perf_counter()
            fn()
            figures[name].append((time.perf_counter() - started) * 1000)
    return SlotFigures(
        candidates_p50_ms=statistics.median(figures["choose"]),
        candidates_p95_ms=_percentile(figures["choose"], 0.95),
        parse_busy_p50_ms=statistics.median(figures["parse"]),
        expanded_p50_ms=statistics.median(figures["expanded"]),
        repeats=repeats,
    )
