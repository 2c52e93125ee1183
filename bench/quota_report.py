"""The quota phase's figures: keyed as the closing JSON line has them, and as a table."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench import text
from bench.quota import SMALL_HOST_TARGET_S, QuotaRun, sweep_every_s
from bench.quota_limits import bound_by_count

# The quota phase's targets (docs/benchmarks.md, "Quota phase"); reported, never asserted.
EFFICIENCY_TARGET = 0.9
EFFICIENCY_UNTOLD_TARGET = 0.75
THROTTLED_TARGET = 0.01


def _round(value: float | None, digits: int = 2) -> float | None:
    """Rounded, or None (JSON null) for a figure that was not measured (NaN, infinity)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def by_tenth(rows: list[tuple[float, float]]) -> list[float | None]:
    """How late the first lead, the lead a tenth of the way, ..., and the last lead ran, in the
    order of their planned starts: where in the run a lag formed, and whether it was made up."""
    lates = [late for _, late in sorted(rows)]
    if not lates:
        return []
    return [_round(lates[round(i * (len(lates) - 1) / 10)]) for i in range(11)]


def last_planned(rows_by_action: Mapping[str, list[tuple[float, float]]]) -> float | None:
    """The last planned start of (planned, late) rows: for A, in seconds after its first POST,
    the bound over it is the most its plan allows; the rest of A's time is the pipeline's own
    (to its first call, lateness, the last lead's own time)."""
    return max((p for rows in rows_by_action.values() for p, _ in rows), default=None)


def _one(run: QuotaRun, suffix: str) -> dict[str, Any]:
    """One run's keys; `suffix` is "" for the told run and "_untold" for the other."""
    leads = run.a.leads + run.b.leads
    calls: Counter[str] = Counter(run.calls)
    deliveries = sum(run.a.logs.deliveries.values())
    planned = last_planned(run.a.late_by_action)
    return {
        f"quota_bound_s{suffix}": _round(run.bound_s),
        f"quota_bound_by_count{suffix}": {
            k: _round(v) for k, v in bound_by_count(run.real, run.a.leads).items()
        },
        f"quota_settle_s{suffix}": _round(run.a.seconds),
        f"quota_planned_s{suffix}": _round(planned),
        f"quota_plan_efficiency{suffix}": _round(run.bound_s / planned if planned else None, 3),
        f"quota_settle_polled_s{suffix}": _round(run.a.settled_polled_s),
        f"quota_last_s_by_action{suffix}": {
            k: _round(v) for k, v in sorted(run.a.last_by_action.items())
        },
        f"quota_late_s_by_action{suffix}": {
            k: _round(statistics.median(late for _, late in v))
            for k, v in sorted(run.a.late_by_action.items())
        },
        f"quota_late_s_by_tenth{suffix}": {
            k: by_tenth(v) for k, v in sorted(run.a.late_by_action.items())
        },
        # A that did not settle within the timeout: its settle time and efficiency are null.
        f"quota_pending_at_end{suffix}": run.pending_at_end,
        f"quota_timeout_s{suffix}": _round(run.timeout_s, 0),
        f"quota_efficiency{suffix}": _round(run.efficiency, 3),
        f"throttled_fraction{suffix}": _round(run.throttled_fraction, 4),
        f"throttled_by_method{suffix}": dict(sorted(run.throttled.items())),
        f"small_host_settle_s{suffix}": _round(run.b.seconds),
        f"small_host_settled_while_large_running{suffix}": run.b_settled_before_a,
        f"quota_failed{suffix}": run.a.failed + run.b.failed,
        f"quota_dead_lettered{suffix}": run.a.dead_lettered + run.b.dead_lettered,
        f"quota_deliveries_per_lead{suffix}": _round(deliveries / run.a.leads, 3),
        f"quota_redeliveries{suffix}": run.a.logs.redeliveries,
        f"quota_delivery_outcomes{suffix}": dict(sorted(run.a.logs.outcomes.items())),
        f"quota_calls_per_lead{suffix}": {
            m: _round(c / leads, 3) for m, c in sorted(calls.items())
        },
        f"quota_statuses{suffix}": dict(sorted((run.a.statuses + run.b.statuses).items())),
        f"quota_cpu_s{suffix}": run.cpu,
        f"quota_other_processes_cpu_s{suffix}": round(run.others_cpu_s, 1),
        f"quota_limits{suffix}": run.real,
    }


def summary(runs: list[QuotaRun]) -> dict[str, Any]:
    """Every figure of the quota phase: the told run's keys bare, the untold run's `_untold`."""
    if not runs:
        return {}
    told = runs[0]
    out: dict[str, Any] = {
        "quota_leads": told.a.leads,
        "quota_small_host_leads": told.b.leads,
        "quota_compression": told.compression,
        "quota_sweep_every_s": sweep_every_s(told.compression),
        "quota_limits_told": told.told,
    }
    for run in runs:
        out.update(_one(run, "" if run.label == "told" else f"_{run.label}"))
    out["quota_targets_met"] = targets(out)
    return out


def _at_least(value: Any, target: float) -> bool:
    return isinstance(value, int | float) and value >= target


def targets(result: dict[str, Any]) -> dict[str, bool]:
    """Each of the quota phase's targets, met or not (only those whose run was measured)."""
    small = result.get("small_host_settle_s")
    met = {
        "quota_efficiency": _at_least(result.get("quota_efficiency"), EFFICIENCY_TARGET),
        "throttled_fraction": isinstance(result.get("throttled_fraction"), int | float)
        and result["throttled_fraction"] <= THROTTLED_TARGET,
        "quota_failed": result.get("quota_failed") == 0,
        "quota_dead_lettered": result.get("quota_dead_lettered") == 0,
        "small_host": isinstance(small, int | float)
        and small <= SMALL_HOST_TARGET_S
        and bool(result.get("small_host_settled_while_large_running")),
    }
    if "quota_efficiency_untold" in result:
        met["quota_efficiency_untold"] = _at_least(
            result.get("quota_efficiency_untold"), EFFICIENCY_UNTOLD_TARGET
        )
        met["quota_failed_untold"] = result.get("quota_failed_untold") == 0
    return met


_row = text.row


def _mark(result: dict[str, Any], key: str) -> str:
    return "MET" if result["quota_targets_met"].get(key) else "NOT MET"


def table(result: dict[str, Any]) -> str:
    """The human-readable report of the quota phase."""
    if not result:
        return ""
    lines: list[Any] = [
        f"quota phase: Google's per-user limits compressed {result['quota_compression']:g}-fold "
        f"(a minute lasts {60 / result['quota_compression']:g} s); "
        f"host A {result['quota_leads']} leads, host B {result['quota_small_host_leads']} "
        f"leads 5 s later; sweeper every {result['quota_sweep_every_s']:g} s",
    ]
    for suffix, title in (("", "told the sandbox's limits"), ("_untold", "sandbox at half")):
        if f"quota_bound_s{suffix}" not in result:
            continue
        bound = result[f"quota_bound_s{suffix}"]
        by = result[f"quota_bound_by_count{suffix}"]
        efficiency_target = EFFICIENCY_TARGET if not suffix else EFFICIENCY_UNTOLD_TARGET
        efficiency_key = f"quota_efficiency{suffix}"
        lines += [
            f" {title}",
            _row(
                "bound (s)",
                bound,
                ", ".join(f"{k} {v}" for k, v in by.items()),
            ),
            _row(
                "A settled (s)",
                result[f"quota_settle_s{suffix}"],
                f"first POST to last terminal receipt (poll saw "
                f"{result[f'quota_settle_polled_s{suffix}']} s)"
                if result[f"quota_settle_s{suffix}"] is not None
                else f"NOT SETTLED in {result[f'quota_timeout_s{suffix}']} s: "
                f"{result[f'quota_pending_at_end{suffix}']} receipts still pending",
            ),
            _row(
                "A's last planned start (s)",
                result[f"quota_planned_s{suffix}"],
                f"bound / it = {result[f'quota_plan_efficiency{suffix}']}: the most this plan "
                "allows; the rest is the pipeline's own time",
            ),
            _row(
                "A's last receipt of each action (s)",
                "",
                ", ".join(f"{k} {v}" for k, v in result[f"quota_last_s_by_action{suffix}"].items()),
            ),
            _row(
                "A's receipts done after their planned start (s)",
                "",
                "median: "
                + ", ".join(
                    f"{k} {v}" for k, v in result[f"quota_late_s_by_action{suffix}"].items()
                ),
            ),
            *(
                _row(f"  {k}, every tenth of A by planned start (s)", "", " ".join(map(str, v)))
                for k, v in result[f"quota_late_s_by_tenth{suffix}"].items()
            ),
            _row(
                "efficiency = bound / actual",
                result[efficiency_key],
                f"target >= {efficiency_target}: {_mark(result, efficiency_key)}"
                if efficiency_key in result["quota_targets_met"]
                else f"target >= {efficiency_target}",
            ),
            _row(
                "throttled fraction (refused / all calls)",
                result[f"throttled_fraction{suffix}"],
                f"{result[f'throttled_by_method{suffix}']}"
                + (f"; target <= {THROTTLED_TARGET}" if not suffix else ""),
            ),
            _row(
                "B settled (s)",
                result[f"small_host_settle_s{suffix}"],
                "before A: "
                + ("yes" if result[f"small_host_settled_while_large_running{suffix}"] else "no")
                + (f"; target <= {SMALL_HOST_TARGET_S:g} while A runs" if not suffix else ""),
            ),
            _row(
                "failed / dead-lettered receipts",
                f"{result[f'quota_failed{suffix}']} / {result[f'quota_dead_lettered{suffix}']}",
                "target 0 / 0",
            ),
            _row(
                "Pub/Sub deliveries per lead (A)",
                result[f"quota_deliveries_per_lead{suffix}"],
                f"redeliveries {result[f'quota_redeliveries{suffix}']}; "
                f"{result[f'quota_delivery_outcomes{suffix}']}",
            ),
            _row(
                "CPU s (stack | other processes)",
                round(sum(result[f"quota_cpu_s{suffix}"].values()), 1),
                f"| {result[f'quota_other_processes_cpu_s{suffix}']}; "
                f"{result[f'quota_cpu_s{suffix}']}",
            ),
        ]
    return "\n" + text.render("quota phase", lines)
