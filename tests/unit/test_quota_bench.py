"""The quota phase's arithmetic (bench.quota_limits): compressed limits, the least time allowed."""

from __future__ import annotations

import math

import pytest

from bench.quota_limits import (
    GOOGLE_LIMITS,
    LEAD_COSTS,
    bound_by_count,
    compressed,
    quota_bound_s,
    scaled_counts,
)
from bench.quota_report import by_tenth, last_planned


def test_tenfold_compression_divides_every_time_and_keeps_every_count() -> None:
    doc = compressed(GOOGLE_LIMITS, 10)
    assert doc == {
        "gmail": {
            "units": 15000,
            "perSeconds": 6,
            "concurrent": 10,
            "sends": 2000,
            "sendsPerSeconds": 8640,
        },
        "calendar": {
            "requests": 600,
            "perSeconds": 6,
            "externalInvites": 10000,
            "invitesPerSeconds": 8640,
            "lockoutSeconds": 360,
        },
        "drive": {"writes": 3, "perSeconds": 0.1},
    }
    assert GOOGLE_LIMITS["gmail"]["perSeconds"] == 60  # the published figures are not touched


def test_compression_keeps_what_it_does_not_know_and_refuses_a_bad_factor() -> None:
    assert compressed({"meetPendingSeconds": 0, "drive": {"writes": 3}}, 10) == {
        "meetPendingSeconds": 0,
        "drive": {"writes": 3},
    }
    with pytest.raises(ValueError):
        compressed(GOOGLE_LIMITS, 0)


def test_half_the_counts_keeps_windows_and_concurrency() -> None:
    doc = scaled_counts(compressed(GOOGLE_LIMITS), 0.5)
    assert doc["gmail"] == {
        "units": 7500,
        "perSeconds": 6,
        "concurrent": 10,
        "sends": 1000,
        "sendsPerSeconds": 8640,
    }
    assert doc["calendar"]["requests"] == 300 and doc["calendar"]["externalInvites"] == 5000
    assert doc["drive"] == {"writes": 1.5, "perSeconds": 0.1}


def test_one_window_of_units_costs_no_wait() -> None:
    # 136 leads * 110 units = 14,960 <= 15,000: all of it fits in the first window.
    assert bound_by_count(GOOGLE_LIMITS, 136)["gmail.units"] == 0.0
    # One lead more spills into a second window, which opens a whole window later.
    assert bound_by_count(GOOGLE_LIMITS, 137)["gmail.units"] == 60.0


def test_exactly_full_windows_do_not_need_one_more() -> None:
    limits = {"gmail": {"units": 1100, "perSeconds": 6}}
    assert quota_bound_s(limits, 10) == 0.0  # 1,100 units: one full window
    assert quota_bound_s(limits, 20) == 6.0  # two full windows: the second at t = 6
    assert quota_bound_s(limits, 21) == 12.0


def test_the_tenfold_bound_of_1000_leads_is_gmails() -> None:
    doc = compressed(GOOGLE_LIMITS)
    by_count = bound_by_count(doc, 1000)
    # Gmail: 110,000 units / 15,000 a window = 8 windows -> 7 * 6 s.
    assert by_count["gmail.units"] == pytest.approx(42.0)
    # Calendar: 2,000 requests / 600 = 4 windows -> 3 * 6 s.
    assert by_count["calendar.requests"] == pytest.approx(18.0)
    # Drive: 1,000 writes / 3 = 334 windows -> 333 * 0.1 s.
    assert by_count["drive.writes"] == pytest.approx(33.3)
    # The daily caps are far away: one window each.
    assert by_count["gmail.sends"] == 0.0 and by_count["calendar.externalInvites"] == 0.0
    assert quota_bound_s(doc, 1000) == pytest.approx(42.0)


def test_the_untold_sandbox_bound_of_1000_leads() -> None:
    doc = scaled_counts(compressed(GOOGLE_LIMITS), 0.5)
    by_count = bound_by_count(doc, 1000)
    assert by_count["gmail.units"] == pytest.approx(14 * 6.0)  # 110,000 / 7,500 -> 15 windows
    # 1.5 writes a window admit one whole write: 1,000 windows.
    assert by_count["drive.writes"] == pytest.approx(999 * 0.1)
    assert quota_bound_s(doc, 1000) == pytest.approx(99.9)


def test_a_daily_cap_binds_past_it() -> None:
    # 2,001 sends on a 2,000-a-day cap: the last one waits a whole (compressed) day.
    assert quota_bound_s(compressed(GOOGLE_LIMITS), 2001) == pytest.approx(8640.0)


def test_missing_limits_and_costs_bind_nothing() -> None:
    assert quota_bound_s({}, 1000) == 0.0
    assert quota_bound_s(GOOGLE_LIMITS, 0) == 0.0
    assert quota_bound_s(GOOGLE_LIMITS, 1000, {"drive": {"writes": 1}}) == pytest.approx(333.0)
    # A window left out is Google's own (a Drive write window is one second).
    assert quota_bound_s({"drive": {"writes": 3}}, 7) == pytest.approx(2.0)


def test_a_zero_count_is_never_met() -> None:
    assert math.isinf(quota_bound_s({"drive": {"writes": 0}}, 1))


def test_the_costs_are_the_five_calls_of_a_booked_lead() -> None:
    assert LEAD_COSTS["gmail"]["units"] == 10 + 100  # drafts.create + drafts.send
    assert LEAD_COSTS["calendar"]["requests"] == 2  # freebusy.query + events.insert
    assert LEAD_COSTS["drive"]["writes"] == 1  # files.create


def test_lateness_by_tenth_follows_the_planned_order_not_the_finishing_order() -> None:
    # 21 leads planned a second apart; the lag forms in the middle and is never made up.
    rows = [(float(i), 0.5 if i < 10 else 2.0) for i in reversed(range(21))]
    assert by_tenth(rows) == [0.5] * 5 + [2.0] * 6
    assert by_tenth([]) == []


def test_the_last_planned_start_is_the_latest_of_any_action() -> None:
    rows = {"email": [(46.3, 1.9), (0.0, 1.4)], "calendar": [(21.0, 3.0)], "drive": []}
    assert last_planned(rows) == 46.3
    assert last_planned({"email": []}) is None


def test_the_sweepers_tick_is_compressed_like_the_limits() -> None:
    """Production ticks every minute: 6 s tenfold, 30 s twofold, a minute uncompressed."""
    from bench.quota import sweep_every_s

    assert sweep_every_s(10) == 6.0
    assert sweep_every_s(2) == 30.0
    assert sweep_every_s(1) == 60.0


def test_a_compression_that_is_not_positive_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.__main__ import main

    assert main(["--quota", "--quota-compression", "0"]) == 2
    assert "--quota-compression must be positive" in capsys.readouterr().err
