"""The benchmark's phases, each on a local stack the benchmark starts and stops itself."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import measure, profiler
from bench.ceiling import write_noop_functions
from bench.workload import REQUEST_SIZE, run_requests
from common import topology
from leadrun.client import LeadRunClient
from leadrun.pubsub import pubsub_clients
from leadrun.running_stack import Stack
from leadrun.stack import start_stack
from leadrun.stack_config import REPO_ROOT

HOOK_DIR = Path(__file__).resolve().parent / "_hook"
# A booked lead on a first, fault-free attempt costs exactly this (docs/decisions/0002).
TARGET_CALLS: dict[str, int] = {
    "calendar.freebusy.query": 1,
    "calendar.events.insert": 1,
    "gmail.users.drafts.create": 1,
    "gmail.users.drafts.send": 1,
    "drive.files.create": 1,
}
# Drive ids come from `files.generateIds` in blocks of 100 per process and owner
# (common.google_apis.DriveFolders.reserve_id): an amortized share of a call per lead, not part of
# the five. It is reported on its own and held to this ceiling per booked lead.
ID_RESERVATION = "drive.files.generateIds"
MAX_ID_RESERVATIONS_PER_LEAD = 0.1
# `calendar.events.get` appears only while Meet conferences are pending; the bench's sandbox makes
# them at once (meetPendingSeconds 0), so there it would break the exact five, as it should.
POLL_S = 0.5
FLUSH_S = 0.6  # the Firestore counting hook writes its files every 0.2 s
WARM_UP_LEADS = 20


class BenchError(RuntimeError):
    """The run did not go as a benchmark run must (a rejected lead, a timeout, ...)."""


@dataclass
class EndToEnd:
    """Phase 1 and 4: the pipeline's throughput and what each lead cost."""

    leads: int
    seconds: float
    seconds_polled: float
    post_ms: list[float]
    booked: int
    statuses: Counter[str]
    calls: dict[str, int]
    firestore: dict[str, Counter[str]]
    logs: measure.DeliveryLog
    cpu: dict[str, float]
    client_cpu_s: float
    others_cpu_s: float = 0.0  # CPU seconds used meanwhile by processes not of this stack

    @property
    def leads_per_s(self) -> float:
        """Leads from the first POST until the last receipt turned terminal, per second."""
        return self.leads / self.seconds


@dataclass
class Ceiling:
    """Phase 2: the same stack with functions that only move the messages."""

    leads: int
    seconds: float
    deliveries: dict[str, int]
    cpu: dict[str, float]
    others_cpu_s: float = 0.0

    @property
    def leads_per_s(self) -> float:
        """Leads from the first POST until the last no-op delivery, per second."""
        return self.leads / self.seconds


@dataclass
class Accept:
    """Phase 3: wall time of 500-lead POSTs to schedule, subscribers detached."""

    post_ms: list[float]
    cpu: dict[str, float]
    leads_per_request: int = REQUEST_SIZE
    others_cpu_s: float = 0.0


@dataclass
class Options:
    """What one benchmark run does."""

    leads: int = 1000
    accept_requests: int = 20
    request_size: int = REQUEST_SIZE
    profile_dir: Path | None = None
    keep_dir: Path | None = None
    settle_timeout_s: float = 900.0
    rounds: int = 3  # end to end and ceiling in turn; the round with the median ratio reports
    progress: Any = field(default=print)


@contextlib.contextmanager
def running_stack(
    state_dir: Path,
    project: str,
    functions_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """A fresh local stack on free ports, stopped (every process, by pid) on the way out."""
    stack = start_stack(
        state_dir, ports="auto", project=project, functions_dir=functions_dir, extra_env=extra_env
    )
    try:
        yield stack
    finally:
        stack.stop()


def _post_all(client: LeadRunClient, bodies: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """POST each body in turn; (wall clock of the first POST, each POST's ms)."""
    client.auth()  # the token is minted before the clock starts
    started = time.time()
    timings = []
    for body in bodies:
        t0 = time.perf_counter()
        answer = client.schedule(body)
        timings.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 202 or answer.json().get("rejected"):
            raise BenchError(f"schedule answered {answer.status_code}: {answer.text[:500]}")
    return started, timings


def settle(client: LeadRunClient, run_id: str, leads: int, timeout_s: float) -> None:
    """Poll diagnostics until `leads` leads are accepted and no receipt is pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = client.diagnostics(run_id).json()["counts"]
        if counts["accepted"] == leads and counts["pending"] == 0:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{run_id} not settled after {timeout_s:.0f}s: {counts}")
        time.sleep(POLL_S)


def warm_up(stack: Stack, leads: int = WARM_UP_LEADS) -> None:
    """A few leads through the pipeline first (JIT, lazy clients), on calendars of their own."""
    client = LeadRunClient(stack.env, uid="bench")
    _post_all(client, run_requests("bench-warm-up", leads, host_prefix="warm-up"))
    settle(client, "bench-warm-up", leads, 120)


def end_to_end(stack: Stack, options: Options, count_dir: Path, round_no: int = 0) -> EndToEnd:
    """Phase 1: N leads through the whole pipeline; phase 4's counters read around it.

    Each round is a run of its own on host calendars of its own, so it books like the first.
    """
    client = LeadRunClient(stack.env, uid="bench")
    run_id = f"bench-e2e-{round_no}"
    bodies = run_requests(run_id, options.leads, options.request_size, f"host-r{round_no}")
    calls_before = Counter(client.sandbox.state()["calls"])
    time.sleep(FLUSH_S)  # the warm-up's last operations reach the hook's files first
    fs_before = measure.firestore_counts(count_dir)
    cpu_before = measure.cpu_seconds(stack)
    busy_before = measure.machine_busy_seconds()
    client_cpu = measure.self_cpu_seconds()
    started, post_ms = _post_all(client, bodies)
    settle(client, run_id, options.leads, options.settle_timeout_s)
    polled = time.time() - started
    cpu_after = measure.cpu_seconds(stack)
    client_cpu = measure.self_cpu_seconds() - client_cpu
    cpu = measure.cpu_delta(cpu_before, cpu_after)
    others = measure.machine_busy_seconds() - busy_before - sum(cpu.values()) - client_cpu
    rows = client.receipts(run_id)
    statuses: Counter[str] = Counter()
    last = started
    booked = 0
    for _, _, receipts in rows:
        for action, receipt in receipts.items():
            statuses[f"{action}:{receipt.get('status')}:{receipt.get('outcome')}"] += 1
            last = max(last, receipt["updatedAt"].timestamp())
        booked += receipts.get("calendar", {}).get("outcome") == "booked"
    time.sleep(FLUSH_S)
    fs_after = measure.firestore_counts(count_dir)
    firestore = {
        name: Counter({k: v - fs_before.get(name, Counter())[k] for k, v in totals.items()})
        for name, totals in fs_after.items()
    }
    calls_after = Counter(client.sandbox.state()["calls"])
    calls = {k: v - calls_before[k] for k, v in calls_after.items() if v - calls_before[k]}
    return EndToEnd(
        leads=options.leads,
        seconds=last - started,
        seconds_polled=polled,
        post_ms=post_ms,
        booked=booked,
        statuses=statuses,
        calls=calls,
        firestore=firestore,
        logs=measure.read_logs(stack, run_id),
        cpu=cpu,
        client_cpu_s=client_cpu,
        others_cpu_s=max(0.0, others),
    )


def detach_subscribers(stack: Stack) -> None:
    """Turn every push subscription into a pull one: published messages wait, nothing runs."""
    with pubsub_clients(stack.env) as (_, subscriber):
        for spec in topology.FUNCTIONS:
            if spec.subscription:
                name = f"projects/{stack.project}/subscriptions/{spec.subscription}"
                subscriber.modify_push_config(request={"subscription": name, "push_config": {}})


def accept_latency(stack: Stack, options: Options) -> Accept:
    """Phase 3: `accept_requests` fresh 500-lead runs POSTed one after another."""
    detach_subscribers(stack)
    client = LeadRunClient(stack.env, uid="bench")
    cpu_before = measure.cpu_seconds(stack)
    busy_before = measure.machine_busy_seconds()
    client_cpu = measure.self_cpu_seconds()
    timings: list[float] = []
    for i in range(options.accept_requests):
        body = run_requests(f"bench-accept-{i:03d}", options.request_size, options.request_size)
        timings.extend(_post_all(client, body)[1])
    cpu = measure.cpu_delta(cpu_before, measure.cpu_seconds(stack))
    client_cpu = measure.self_cpu_seconds() - client_cpu
    others = measure.machine_busy_seconds() - busy_before - sum(cpu.values()) - client_cpu
    return Accept(timings, cpu, options.request_size, max(0.0, others))


def _count_files(count_dir: Path) -> dict[str, Path]:
    return {name: count_dir / f"{name}.count" for name in ("book", "notify", "drive")}


def _delivered(count_dir: Path) -> dict[str, int]:
    """Deliveries so far to each no-op subscriber (one byte each in its count file)."""
    return {n: p.stat().st_size if p.exists() else 0 for n, p in _count_files(count_dir).items()}


def ceiling_warm_up(stack: Stack, count_dir: Path) -> None:
    """The same warm-up leads through the no-op functions."""
    client = LeadRunClient(stack.env, uid="bench")
    _post_all(client, run_requests("bench-warm-up", WARM_UP_LEADS, host_prefix="warm-up"))
    deadline = time.monotonic() + 120
    while min(_delivered(count_dir).values()) < WARM_UP_LEADS and time.monotonic() < deadline:
        time.sleep(0.05)


def ceiling(stack: Stack, options: Options, count_dir: Path, round_no: int = 0) -> Ceiling:
    """Phase 2: the same requests through no-op functions, until every delivery arrived."""
    client = LeadRunClient(stack.env, uid="bench")
    run_id = f"bench-ceiling-{round_no}"
    bodies = run_requests(run_id, options.leads, options.request_size, f"host-r{round_no}")
    files = _count_files(count_dir)

    def sizes() -> dict[str, int]:
        return _delivered(count_dir)

    base = sizes()
    cpu_before = measure.cpu_seconds(stack)
    busy_before = measure.machine_busy_seconds()
    client_cpu = measure.self_cpu_seconds()
    started, _ = _post_all(client, bodies)
    deadline = time.monotonic() + options.settle_timeout_s
    while True:
        now = sizes()
        if all(now[n] - base[n] >= options.leads for n in now):
            break
        if time.monotonic() > deadline:
            raise BenchError(f"ceiling not settled after {options.settle_timeout_s:.0f}s: {now}")
        time.sleep(0.05)
    cpu = measure.cpu_delta(cpu_before, measure.cpu_seconds(stack))
    client_cpu = measure.self_cpu_seconds() - client_cpu
    others = measure.machine_busy_seconds() - busy_before - sum(cpu.values()) - client_cpu
    last = max(files[n].stat().st_mtime for n in ("notify", "drive"))
    delivered = {n: now[n] - base[n] for n in now}
    return Ceiling(options.leads, last - started, delivered, cpu, max(0.0, others))


def pipeline_env(count_dir: Path) -> dict[str, str]:
    """The pipeline stack's functions: counted by the hook, and told no limits."""
    return {
        "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), str(REPO_ROOT)]),
        "BENCH_FIRESTORE_COUNT_DIR": str(count_dir),
        # These phases measure the pipeline's own speed: told no limits, it paces to none
        # (the quota phase measures it against Google's).
        "LEADRUN_GOOGLE_LIMITS": "{}",
    }


def run(options: Options) -> tuple[list[EndToEnd], Accept, list[Ceiling]]:
    """Both stacks side by side; rounds of phase 1 (with 4) and phase 2 taken in turn, so each
    ratio compares two runs a few seconds apart; then phase 3 on the pipeline's stack."""
    root = (
        Path(tempfile.mkdtemp(prefix="leadrun-bench-"))
        if options.keep_dir is None
        else (options.keep_dir)
    )
    root.mkdir(parents=True, exist_ok=True)
    count_dir = root / "firestore-counts"
    count_dir.mkdir(exist_ok=True)
    env = pipeline_env(count_dir)
    say = options.progress
    spy = options.profile_dir
    noop_dir = write_noop_functions(root / "noop-functions")
    noop_counts = root / "noop-counts"
    noop_counts.mkdir(exist_ok=True)
    noop_env = {"BENCH_COUNT_DIR": str(noop_counts)}
    say(f"starting the pipeline stack and the ceiling stack (no-op functions) in {root}")
    e2es: list[EndToEnd] = []
    tops: list[Ceiling] = []
    with (
        running_stack(root / "pipeline", "bench-pipeline", extra_env=env) as stack,
        running_stack(root / "ceiling", "bench-ceiling", noop_dir, noop_env) as noop,
    ):
        warm_up(stack)
        ceiling_warm_up(noop, noop_counts)
        names = ("schedule", "book", "notify", "drive", "diagnostics")
        for round_no in range(options.rounds):
            say(f"round {round_no + 1}/{options.rounds}: {options.leads} leads end to end")
            with (
                profiler.profiling(stack, names, spy, f"e2e{round_no}")
                if spy
                else contextlib.nullcontext()
            ):
                e2es.append(end_to_end(stack, options, count_dir, round_no))
            tops.append(ceiling(noop, options, noop_counts, round_no))
            say(
                f"  end to end {e2es[-1].seconds:.1f}s, ceiling {tops[-1].seconds:.1f}s: "
                f"ratio {e2es[-1].leads_per_s / tops[-1].leads_per_s:.3f}"
            )
        say(f"accept latency: {options.accept_requests} POSTs")
        with (
            profiler.profiling(stack, ("schedule",), spy, "accept")
            if spy
            else (contextlib.nullcontext())
        ):
            accept = accept_latency(stack, options)
    if options.keep_dir is None:
        shutil.rmtree(root, ignore_errors=True)
    return e2es, accept, tops


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def median(values: list[float]) -> float:
    """The median, NaN for none."""
    return statistics.median(values) if values else float("nan")
