"""What 1,000 booked leads cost at Google's list prices, paced as production runs and unpaced.

The counts come from inside each function's process (`bench/_hook`): Firestore reads, writes and
deletes as Firestore bills them, Pub/Sub messages published (with their bytes), requests served
and their wall time; CPU seconds from outside (`bench.measure`). The unpaced figures are those of
the end-to-end run (no limits told, as that phase runs); the paced run is many hosts' leads at
once on a stack paced to Google's published limits, as production runs them. Dollars come from
`bench.prices`, the one price table.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import measure, prices, text
from bench.runner import FLUSH_S, BenchError, EndToEnd, settle
from bench.workload import run_requests
from leadrun.client import LeadRunClient
from leadrun.running_stack import Stack

PER = 1000  # figures are per this many booked leads
PACED_HOSTS = 20
PACED_LEADS_PER_HOST = 50
QUICK_PACED = (4, 10)
WARM_UP_LEADS = 10
# Diagnostics answers the bench's own polling (a web client watching a run pays for that, not the
# leads): listed by function, kept out of the totals.
WATCHING = ("diagnostics",)
FUNCTIONS = (
    "schedule",
    "control",
    "book",
    "notify",
    "drive",
    "diagnostics",
    "dead-letter",
    "sweep",
)
PUSHED = ("book", "notify", "drive", "dead-letter", "sweep")  # each invocation a push delivery


@dataclass
class CostRun:
    """One run's counts, for the cost per lead."""

    label: str
    leads: int
    booked: int
    failed: int
    seconds: float
    hosts: int
    firestore: dict[str, Counter[str]]  # function -> the hook's counts over the run
    cpu: dict[str, float]  # component -> CPU seconds over the run
    outcomes: Counter[str] = field(default_factory=Counter)  # "function:outcome" of deliveries


def from_end_to_end(e2e: EndToEnd, hosts: int) -> CostRun:
    """The end-to-end round's counts as a cost run (unpaced)."""
    failed = sum(n for key, n in e2e.statuses.items() if key.split(":")[1] == "failed")
    return CostRun(
        "unpaced",
        e2e.leads,
        e2e.booked,
        failed,
        e2e.seconds,
        hosts,
        e2e.firestore,
        e2e.cpu,
        e2e.logs.outcomes,
    )


def paced_run(
    stack: Stack, count_dir: Path, hosts: int, per_host: int, say: Any, timeout_s: float = 900.0
) -> CostRun:
    """`hosts` hosts of `per_host` leads each, POSTed at once to one run, until it settles."""
    client = LeadRunClient(stack.env, uid="bench")
    client.auth()
    warm = "cost-warm-up"
    for body in run_requests(warm, WARM_UP_LEADS, WARM_UP_LEADS, host_prefix="cost-warm-up"):
        client.schedule(body).raise_for_status()
    settle(client, warm, WARM_UP_LEADS, 180)
    run_id = "bench-cost-paced"
    leads = hosts * per_host
    say(f"cost, paced: {hosts} hosts x {per_host} leads at once, Google's published limits")
    bodies = run_requests(run_id, leads, per_host, host_prefix="cost-host")
    time.sleep(FLUSH_S)
    fs_before = measure.firestore_counts(count_dir)
    cpu_before = measure.cpu_seconds(stack)
    started = time.time()
    for body in bodies:
        answer = client.schedule(body)
        if answer.status_code != 202 or answer.json().get("rejected"):
            raise BenchError(f"schedule answered {answer.status_code}: {answer.text[:500]}")
    settle(client, run_id, leads, timeout_s)
    cpu = measure.cpu_delta(cpu_before, measure.cpu_seconds(stack))
    time.sleep(FLUSH_S)
    fs_after = measure.firestore_counts(count_dir)
    booked = failed = 0
    last = started
    for _, _, receipts in client.receipts(run_id):
        booked += receipts.get("calendar", {}).get("outcome") == "booked"
        for receipt in receipts.values():
            failed += receipt.get("status") == "failed"
            last = max(last, receipt["updatedAt"].timestamp())
    firestore = {
        name: Counter({k: v - fs_before.get(name, Counter())[k] for k, v in totals.items()})
        for name, totals in fs_after.items()
    }
    outcomes = measure.read_logs(stack, run_id).outcomes
    return CostRun("paced", leads, booked, failed, last - started, hosts, firestore, cpu, outcomes)


def _reads(counts: Counter[str]) -> int:
    # A query that returns nothing is billed one read.
    return counts["reads"] + counts["query_reads"] + counts["query_empty"]


def figures(run: CostRun) -> dict[str, Any]:
    """Per `PER` booked leads: every count, by function too, and the dollars at list price."""
    scale = PER / run.booked if run.booked else float("nan")
    fs = {name: run.firestore.get(name, Counter()) for name in FUNCTIONS}
    total: Counter[str] = Counter()
    for name, counts in fs.items():
        if name not in WATCHING:
            total.update(counts)
    ticks = fs["sweep"]["invocations"]  # each a Cloud Scheduler message to lead-sweep
    deliveries = sum(fs[name]["invocations"] for name in PUSHED)
    published = total["published"] + ticks
    billed_each = (
        total["published_billed_bytes"] / total["published"]
        if total["published"]
        else prices.PUBSUB_MIN_BYTES
    )
    pubsub_bytes = total["published_billed_bytes"] + (ticks + deliveries) * max(
        billed_each, prices.PUBSUB_MIN_BYTES
    )
    request_s = total["request_ms"] / 1000
    function_cpu = sum(run.cpu.get(name, 0.0) for name in FUNCTIONS if name not in WATCHING)
    dollars = {
        "firestore": prices.FIRESTORE_READ.of(_reads(total))
        + prices.FIRESTORE_WRITE.of(total["writes"])
        + prices.FIRESTORE_DELETE.of(total["deletes"]),
        "pubsub": prices.PUBSUB_THROUGHPUT.of(pubsub_bytes),
        "functions": prices.RUN_REQUESTS.of(total["invocations"])
        + prices.RUN_VCPU_SECOND.of(request_s * prices.FUNCTION_VCPU)
        + prices.RUN_GIB_SECOND.of(request_s * prices.FUNCTION_GIB),
    }
    dollars["total"] = sum(dollars.values())

    def per(value: float, digits: int = 1) -> float:
        return round(value * scale, digits)

    by_function = {
        name: {
            "reads": per(_reads(counts)),
            "writes": per(counts["writes"]),
            "deletes": per(counts["deletes"]),
            "published": per(counts["published"]),
            "invocations": per(counts["invocations"]),
            "request_s": per(counts["request_ms"] / 1000, 2),
            "cpu_s": per(run.cpu.get(name, 0.0), 2),
        }
        for name, counts in fs.items()
        if counts or run.cpu.get(name)
    }
    return {
        "leads": run.leads,
        "hosts": run.hosts,
        "booked": run.booked,
        "failed": run.failed,
        "settle_s": round(run.seconds, 1),
        "firestore_reads": per(_reads(total)),
        "firestore_writes": per(total["writes"]),
        "firestore_deletes": per(total["deletes"]),
        "firestore_empty_queries": per(total["query_empty"]),
        "pubsub_published": per(published),
        "pubsub_deliveries": per(deliveries),
        "invocations": per(total["invocations"]),
        "function_request_s": per(request_s, 2),
        "function_cpu_s": per(function_cpu, 2),
        "stack_cpu_s": per(sum(v for k, v in run.cpu.items() if k not in WATCHING), 2),
        "cpu_s_by_component": {k: per(v, 2) for k, v in sorted(run.cpu.items()) if v},
        "by_function": by_function,
        "delivery_outcomes": {k: per(v) for k, v in sorted(run.outcomes.items())},
        "dollars": {k: round(v * scale, 4) for k, v in dollars.items()},
    }


def summary(runs: list[CostRun]) -> dict[str, Any]:
    """The JSON keys: `cost_per_1000_<label>` for each run, and the price table's date."""
    out: dict[str, Any] = {f"cost_per_1000_{run.label}": figures(run) for run in runs}
    out["cost_prices_as_of"] = prices.AS_OF
    return out


COLUMNS = (
    ("firestore_reads", "Firestore document reads"),
    ("firestore_writes", "Firestore document writes"),
    ("firestore_deletes", "Firestore document deletes"),
    ("pubsub_published", "Pub/Sub messages published"),
    ("pubsub_deliveries", "Pub/Sub push deliveries"),
    ("invocations", "function invocations"),
    ("function_request_s", "function request time (s)"),
    ("function_cpu_s", "function CPU-seconds"),
    ("stack_cpu_s", "CPU-seconds, whole local stack"),
)


def table(result: dict[str, Any]) -> str:
    """Both runs side by side, the dollars, and where each run's work went by function."""
    runs = [
        (key.removeprefix("cost_per_1000_"), value)
        for key, value in result.items()
        if key.startswith("cost_per_1000_")
    ]
    if not runs:
        return ""
    headers = ("per 1,000 booked leads", *(label for label, _ in runs))
    rows: list[Any] = [
        (
            "run",
            *(
                f"{f['hosts']} host(s), {f['leads']} leads, {f['settle_s']} s, failed {f['failed']}"
                for _, f in runs
            ),
        )
    ]
    rows += [(title, *(f[key] for _, f in runs)) for key, title in COLUMNS]
    rows += [
        (f"dollars: {part}", *(f"{f['dollars'][part]:.4f}" for _, f in runs))
        for part in ("firestore", "pubsub", "functions", "total")
    ]
    out = [text.render(f"cost per 1,000 leads (list prices of {prices.AS_OF})", rows, headers)]
    for label, f in runs:
        detail = [
            (
                name,
                v["reads"],
                v["writes"],
                v["deletes"],
                v["published"],
                v["invocations"],
                v["request_s"],
                v["cpu_s"],
            )
            for name, v in f["by_function"].items()
        ]
        detail += [
            (f"{name} (local stand-in)", "", "", "", "", "", "", value)
            for name, value in f["cpu_s_by_component"].items()
            if name not in FUNCTIONS
        ]
        detail.append(
            ("deliveries by outcome", "", "", "", "", "", "", f.get("delivery_outcomes", ""))
        )
        out.append(
            text.render(
                f"{label}: by function, per 1,000 booked leads (diagnostics: the bench's "
                "polling, out of the totals)",
                detail,
                (
                    "function",
                    "reads",
                    "writes",
                    "deletes",
                    "published",
                    "invocations",
                    "request s",
                    "CPU s",
                ),
            )
        )
    return "\n\n".join(out)


def unpaced_run(root: Path, leads: int, say: Any) -> CostRun:
    """`leads` leads end to end on a stack told no limits, as the end-to-end phase runs them
    (one round, no ceiling): for `--cost` alone."""
    from bench import runner  # the end-to-end phase's own stack and run

    count_dir = root / "firestore-counts"
    count_dir.mkdir(parents=True, exist_ok=True)
    options = runner.Options(leads=leads, rounds=1, progress=say)
    say(f"cost, unpaced: {leads} leads, no limits told")
    env = runner.pipeline_env(count_dir)
    with runner.running_stack(root / "pipeline", "bench-pipeline", extra_env=env) as stack:
        runner.warm_up(stack)
        e2e = runner.end_to_end(stack, options, count_dir)
    return from_end_to_end(e2e, hosts=-(-leads // options.request_size))
