"""The readable table and the closing JSON line."""

from __future__ import annotations

import json
import platform
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import text
from bench.runner import (
    ID_RESERVATION,
    MAX_ID_RESERVATIONS_PER_LEAD,
    TARGET_CALLS,
    Accept,
    Ceiling,
    EndToEnd,
    median,
    percentile,
)
from bench.slot_bench import BUSY, CANDIDATES, SlotFigures

PIPELINE = ("schedule", "book", "notify", "drive")


def machine() -> dict[str, Any]:
    """What this ran on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def now() -> str:
    """The date the closing JSON line carries."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _per_lead(total: float, leads: int) -> float:
    return round(total / leads, 3) if leads else float("nan")


def median_round(e2es: list[EndToEnd], tops: list[Ceiling]) -> int:
    """The round whose ratio is the median (the lower middle one for an even count)."""
    ratios = [e.leads_per_s / t.leads_per_s for e, t in zip(e2es, tops, strict=True)]
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    return order[(len(order) - 1) // 2]


def summary(
    e2es: list[EndToEnd], accept: Accept, tops: list[Ceiling], slots: SlotFigures
) -> dict[str, Any]:
    """Every figure of the run, keyed as the closing JSON line has them.

    Throughput, ratio, costs and CPU are those of the round with the median ratio; `rounds`
    lists every round.
    """
    chosen = median_round(e2es, tops)
    e2e, top = e2es[chosen], tops[chosen]
    n = e2e.leads
    # The id reservation is amortized over the leads of a block, so it is kept out of the exact mix.
    per_lead_calls = {m: c for m, c in e2e.calls.items() if m != ID_RESERVATION}
    calls_per_lead = {m: _per_lead(c, e2e.booked) for m, c in sorted(per_lead_calls.items())}
    id_reservations = _per_lead(e2e.calls.get(ID_RESERVATION, 0), e2e.booked)
    fs: Counter[str] = Counter()
    for name in PIPELINE:
        fs.update(e2e.firestore.get(name, Counter()))
    rpcs = sum(v for k, v in fs.items() if k.startswith("rpc_"))
    published = e2e.logs.published_by_schedule + e2e.logs.messages["notify"]
    return {
        "date": now(),
        "machine": machine(),
        "leads": n,
        "leads_per_s": round(e2e.leads_per_s, 2),
        "e2e_s": round(e2e.seconds, 2),
        "ceiling_leads_per_s": round(top.leads_per_s, 2),
        "ceiling_s": round(top.seconds, 2),
        "ratio": round(e2e.leads_per_s / top.leads_per_s, 3),
        "rounds": [
            {
                "leads_per_s": round(e.leads_per_s, 2),
                "ceiling_leads_per_s": round(t.leads_per_s, 2),
                "ratio": round(e.leads_per_s / t.leads_per_s, 3),
            }
            for e, t in zip(e2es, tops, strict=True)
        ],
        "median_round": chosen + 1,
        "accept_p50_ms_500": round(median(accept.post_ms), 1),
        "accept_p95_ms_500": round(percentile(accept.post_ms, 0.95), 1),
        "accept_requests": len(accept.post_ms),
        "e2e_post_ms": [round(v, 1) for v in e2e.post_ms],
        "booked": e2e.booked,
        "calls_per_lead": calls_per_lead,
        "id_reservations_per_lead": id_reservations,
        "cost_target_met": e2e.booked == n
        and per_lead_calls == {m: c * n for m, c in TARGET_CALLS.items()}
        and id_reservations <= MAX_ID_RESERVATIONS_PER_LEAD,
        "pubsub_messages_per_lead": _per_lead(published, n),
        "pubsub_deliveries_per_lead": _per_lead(sum(e2e.logs.deliveries.values()), n),
        "redeliveries": e2e.logs.redeliveries,
        "warnings": e2e.logs.warnings,
        "firestore_reads_per_lead": _per_lead(fs["reads"] + fs["query_reads"], n),
        "firestore_writes_per_lead": _per_lead(fs["writes"], n),
        "firestore_rpcs_per_lead": _per_lead(rpcs, n),
        "firestore_by_function_per_lead": {
            name: {k: _per_lead(v, n) for k, v in sorted(e2e.firestore.get(name, {}).items())}
            for name in PIPELINE
        },
        "slot_selection_ms": round(slots.candidates_p50_ms, 3),
        "slot_selection_p95_ms": round(slots.candidates_p95_ms, 3),
        "slot_parse_busy_ms": round(slots.parse_busy_p50_ms, 3),
        "slot_expanded_ms": round(slots.expanded_p50_ms, 3),
        "cpu_s_e2e": e2e.cpu,
        "cpu_s_ceiling": top.cpu,
        "cpu_s_accept": accept.cpu,
        "other_processes_cpu_s": {
            "e2e": round(e2e.others_cpu_s, 1),
            "accept": round(accept.others_cpu_s, 1),
            "ceiling": round(top.others_cpu_s, 1),
        },
        "delivery_ms_p50": {
            name: round(median(values), 1) for name, values in e2e.logs.elapsed_ms.items()
        },
    }


_row = text.row


def table(result: dict[str, Any]) -> str:
    """The human-readable report."""
    m = result["machine"]
    lines: list[Any] = [
        _row(
            "CPU s used by other processes (e2e/acc/ceil)",
            "/".join(str(v) for v in result["other_processes_cpu_s"].values()),
            "WARNING: the machine was shared; figures are low and noisy"
            if result["other_processes_cpu_s"]["e2e"] > 0.1 * result["e2e_s"]
            else "machine otherwise quiet",
        ),
        "",
        "throughput",
        _row(
            "end to end (leads/s)",
            result["leads_per_s"],
            f"{result['leads']} leads in {result['e2e_s']} s, first POST to last terminal receipt",
        ),
        _row(
            "ceiling, no-op functions (leads/s)",
            result["ceiling_leads_per_s"],
            f"same emulators, functions-framework, push subscriptions; {result['ceiling_s']} s",
        ),
        _row(
            "ratio end to end / ceiling",
            result["ratio"],
            f"target >= 0.5; median of {len(result['rounds'])} rounds, taken in turn: "
            + ", ".join(str(r["ratio"]) for r in result["rounds"]),
        ),
        "",
        "accept latency (500-lead POST to schedule, subscribers detached)",
        _row("p50 (ms)", result["accept_p50_ms_500"], f"{result['accept_requests']} requests"),
        _row("p95 (ms)", result["accept_p95_ms_500"], "target < 1000"),
        _row("during the end-to-end run (ms)", result["e2e_post_ms"]),
        "",
        f"cost per booked lead ({result['booked']} booked of {result['leads']})",
    ]
    for method, calls in result["calls_per_lead"].items():
        lines.append(_row(method, calls))
    target = "MET" if result["cost_target_met"] else "NOT MET"
    lines += [
        _row(
            f"{ID_RESERVATION} (amortized id blocks)",
            result["id_reservations_per_lead"],
            f"target <= {MAX_ID_RESERVATIONS_PER_LEAD}",
        ),
        _row("target mix (1 each of 5 methods, nothing else)", target),
        _row("Pub/Sub messages per lead", result["pubsub_messages_per_lead"]),
        _row(
            "Pub/Sub push deliveries per lead",
            result["pubsub_deliveries_per_lead"],
            f"redeliveries {result['redeliveries']}, warnings {result['warnings']}",
        ),
        _row("Firestore document reads per lead", result["firestore_reads_per_lead"]),
        _row("Firestore document writes per lead", result["firestore_writes_per_lead"]),
        _row("Firestore RPCs per lead", result["firestore_rpcs_per_lead"]),
    ]
    for name, counts in result["firestore_by_function_per_lead"].items():
        detail = ", ".join(f"{k} {v:g}" for k, v in counts.items())
        lines.append(_row(f"  {name}", "", detail))
    lines += [
        "",
        f"slot selection ({CANDIDATES} candidates, {BUSY} busy intervals, worst case)",
        _row("choose, p50 (ms)", result["slot_selection_ms"], "target < 5"),
        _row("choose, p95 (ms)", result["slot_selection_p95_ms"]),
        _row("parse the freeBusy answer, p50 (ms)", result["slot_parse_busy_ms"]),
        _row("expanded search (5 days), p50 (ms)", result["slot_expanded_ms"]),
        "",
        "CPU seconds per component (end to end | ceiling)",
    ]
    for name in result["cpu_s_e2e"]:
        lines.append(
            _row(name, result["cpu_s_e2e"][name], f"| {result['cpu_s_ceiling'].get(name, '-')}")
        )
    lines.append(_row("delivery handling p50 (ms)", result["delivery_ms_p50"]))
    return text.render(
        f"Lead Run Actions benchmark — {result['date']}\n"
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}",
        lines,
    )


def json_line(result: dict[str, Any]) -> str:
    """The closing line: one JSON object."""
    return json.dumps(result, separators=(",", ":"), sort_keys=False)
