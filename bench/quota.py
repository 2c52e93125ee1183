"""The quota phase (`python -m bench --quota`): the pipeline against Google's per-user limits.

On a stack of its own, with Google's published limits compressed tenfold in time (a minute lasts
6 s; bench.quota_limits) both in the sandbox and in the functions' `LEADRUN_GOOGLE_LIMITS`:
N leads (default 1,000) for host A and, 5 s after A's first POST, 20 leads for host B, each host
its own acting user (sender and calendar) and its own run. It measures how close A's run comes to
the least time the limits allow, how many calls Google refused, and whether B's small run gets
through while A's is still going. A second run does the same with the sandbox's counts at half of
what the functions were told (the untold run), measured against the sandbox's real limits.

The sweeper's tick is compressed too (production ticks every minute: every 6 s here), unless
`LEADRUN_SWEEP_EVERY_S` says otherwise: a receipt parked by a limit resumes on a tick.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import measure
from bench.quota_limits import (
    COMPRESSION,
    GOOGLE_LIMITS,
    bound_by_count,
    compressed,
    quota_bound_s,
    scaled_counts,
)
from bench.workload import REQUEST_SIZE, first_slot, lead, request
from common.models import parse_time
from common.receipts import TERMINAL
from leadrun.client import LeadRunClient
from leadrun.running_stack import Stack
from leadrun.stack import start_stack
from leadrun.stack_config import GOOGLE_LIMITS_ENV

SMALL_HOST_LEADS = 20
SMALL_HOST_DELAY_S = 5.0
SMALL_HOST_TARGET_S = 15.0
UNTOLD_FRACTION = 0.5
POLL_S = 0.5
WARM_UP_LEADS = 20
# Production's sweep runs every minute (infra topology.tf), compressed like the limits.
PRODUCTION_SWEEP_EVERY_S = 60.0


def sweep_every_s(compression: float) -> float:
    """The sweeper's tick in a quota run: production's minute, compressed (6 s tenfold)."""
    return PRODUCTION_SWEEP_EVERY_S / compression


@dataclass
class HostRun:
    """One host's run in a quota run: when it started and settled, and how its receipts ended."""

    run_id: str
    host: str
    leads: int
    started: float  # epoch seconds of its first POST
    settled_polled_s: float | None = None  # first poll that saw it settled, from `started`
    seconds: float | None = None  # latest receipt `updatedAt` - `started`, once settled
    statuses: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    dead_lettered: int = 0
    logs: measure.DeliveryLog = field(default_factory=measure.DeliveryLog)
    # When each action's last receipt turned terminal, from `started`: which API held the run up.
    last_by_action: dict[str, float] = field(default_factory=dict)
    # Each terminal receipt's planned `startAt` (from `started`) and its `updatedAt` - `startAt`,
    # by action: how far behind its lane's plan an action ran, and when the lag formed (a
    # constant lag is a backlog the lane never made up).
    late_by_action: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class QuotaRun:
    """One quota run: host A's large run, host B's small one, what the sandbox saw."""

    label: str
    told: dict[str, Any]
    real: dict[str, Any]
    a: HostRun
    b: HostRun
    b_settled_before_a: bool
    calls: dict[str, int]
    throttled: dict[str, int]
    cpu: dict[str, float]
    others_cpu_s: float
    progress: list[tuple[float, int, int]]  # (s from A's start, A's pending, A's waiting)
    timeout_s: float = 0.0  # how long the phase waited for A at most
    compression: float = COMPRESSION  # how many times faster than Google's clock

    @property
    def pending_at_end(self) -> int:
        """A's receipts still pending when the run stopped waiting (0 once settled)."""
        return self.progress[-1][1] if self.progress and self.a.seconds is None else 0

    @property
    def bound_s(self) -> float:
        """The least time the sandbox's limits allow for A's leads."""
        return quota_bound_s(self.real, self.a.leads)

    @property
    def efficiency(self) -> float:
        """Bound / A's actual time (NaN when A did not settle)."""
        if not self.a.seconds:
            return float("nan")
        return self.bound_s / self.a.seconds

    @property
    def throttled_fraction(self) -> float:
        """Refused calls over all calls, every host and method of this run."""
        total = sum(self.calls.values())
        return sum(self.throttled.values()) / total if total else 0.0


@dataclass
class QuotaOptions:
    """What the quota phase does."""

    leads: int = 1000
    small_leads: int = SMALL_HOST_LEADS
    small_delay_s: float = SMALL_HOST_DELAY_S
    compression: float = COMPRESSION
    untold: bool = True
    settle_timeout_s: float | None = None  # per run; default: 600 s plus 10 times the bound
    progress: Any = field(default=print)


def host_requests(
    run_id: str, host: str, count: int, size: int = REQUEST_SIZE
) -> list[dict[str, Any]]:
    """`count` leads of one run and one host, in requests of `size` (the contract's most is 500).

    Every lead has its own 30-minute candidate on the host's calendar, none overlapping another
    (all requests together), so every booking is a first attempt.
    """
    start = first_slot()
    leads = [lead(i, start + timedelta(minutes=30 * i)) for i in range(count)]
    return [request(run_id, host, leads[i : i + size]) for i in range(0, count, size)]


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration (only those not set already)."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextlib.contextmanager
def quota_stack(
    state_dir: Path, told: Mapping[str, Any], compression: float = COMPRESSION
) -> Iterator[Stack]:
    """A fresh stack whose functions are told `told` (`LEADRUN_GOOGLE_LIMITS`), its sweeper
    ticking every `sweep_every_s(compression)`; stopped after.

    The sandbox's own limits are posted by each run (`client.sandbox.limits`), since the untold
    run gives it other figures than the functions'.
    """
    with _environ(LEADRUN_SWEEP_EVERY_S=f"{sweep_every_s(compression):g}"):
        stack = start_stack(
            state_dir,
            ports="auto",
            project="bench-quota",
            extra_env={GOOGLE_LIMITS_ENV: json.dumps(told, separators=(",", ":"))},
        )
    try:
        yield stack
    finally:
        stack.stop()


def _post(client: LeadRunClient, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        answer = client.schedule(body)
        if answer.status_code != 202 or answer.json().get("rejected"):
            raise RuntimeError(f"schedule answered {answer.status_code}: {answer.text[:500]}")


def _settled(counts: Mapping[str, Any], leads: int) -> bool:
    return bool(counts["accepted"] == leads and counts["pending"] == 0)


def _read_receipts(client: LeadRunClient, stack: Stack, run: HostRun) -> None:
    """Fill in how `run`'s receipts ended and when the last one did."""
    last = run.started
    for _, _, receipts in client.receipts(run.run_id):
        for action, receipt in receipts.items():
            status = receipt.get("status")
            run.statuses[f"{action}:{status}:{receipt.get('outcome')}"] += 1
            run.failed += status == "failed"
            run.dead_lettered += receipt.get("reason") == "dead_lettered"
            last = max(last, receipt["updatedAt"].timestamp())
            if status in TERMINAL:
                moment = receipt["updatedAt"].timestamp() - run.started
                run.last_by_action[action] = max(run.last_by_action.get(action, 0.0), moment)
                if receipt.get("startAt"):
                    start = parse_time(str(receipt["startAt"]))
                    late = receipt["updatedAt"].timestamp() - start.timestamp()
                    planned = start.timestamp() - run.started
                    run.late_by_action.setdefault(action, []).append((planned, late))
    if run.settled_polled_s is not None:
        run.seconds = last - run.started
    run.logs = measure.read_logs(stack, run.run_id)


def warm_up(stack: Stack, limits: Mapping[str, Any]) -> None:
    """A few leads first (JIT, lazy clients), on a host of their own, with the limits in force."""
    client = LeadRunClient(stack.env, uid="bench")
    client.sandbox.limits(limits)
    run_id = "quota-warm-up"
    _post(client, host_requests(run_id, "quota-warm-up@example.com", WARM_UP_LEADS))
    deadline = time.monotonic() + 180
    while not _settled(client.diagnostics(run_id).json()["counts"], WARM_UP_LEADS):
        if time.monotonic() > deadline:
            raise RuntimeError("the quota warm-up did not settle in 180 s")
        time.sleep(POLL_S)


def quota_run(
    stack: Stack, options: QuotaOptions, label: str, told: dict[str, Any], real: dict[str, Any]
) -> QuotaRun:
    """Host A's `options.leads` leads, then host B's small run `small_delay_s` later; until both
    settle. The sandbox is reset first, so its counters hold this run alone."""
    say = options.progress
    client = LeadRunClient(stack.env, uid="bench")
    client.sandbox.reset()
    client.sandbox.limits(real)
    a = HostRun(f"quota-{label}-a", f"quota-{label}-a@example.com", options.leads, 0.0)
    b = HostRun(f"quota-{label}-b", f"quota-{label}-b@example.com", options.small_leads, 0.0)
    a_bodies = host_requests(a.run_id, a.host, a.leads)
    b_bodies = host_requests(b.run_id, b.host, b.leads)
    bound = quota_bound_s(real, a.leads)
    timeout = options.settle_timeout_s or 600.0 + 10 * bound
    client.auth()  # the token is minted before the clock starts
    cpu_before = measure.cpu_seconds(stack)
    busy_before = measure.machine_busy_seconds()
    client_cpu = measure.self_cpu_seconds()
    a.started = time.time()
    _post(client, a_bodies)
    b_settled_before_a = False
    progress: list[tuple[float, int, int]] = []
    next_say = 0.0
    # B starts `small_delay_s` after A even if A has settled by then (a small A on a fast machine).
    while a.settled_polled_s is None or not b.started or b.settled_polled_s is None:
        now = time.time()
        if not b.started and now >= a.started + options.small_delay_s:
            b.started = time.time()
            _post(client, b_bodies)
        elapsed = time.time() - a.started
        if a.settled_polled_s is None:
            counts = client.diagnostics(a.run_id).json()["counts"]
            progress.append((round(elapsed, 2), counts["pending"], counts["waiting"]))
            if _settled(counts, a.leads):
                a.settled_polled_s = elapsed
            elif elapsed >= next_say:
                say(
                    f"  {label}: {elapsed:5.1f}s A pending {counts['pending']}, "
                    f"waiting {counts['waiting']}"
                )
                next_say = elapsed + 10
        if b.started and b.settled_polled_s is None:
            counts = client.diagnostics(b.run_id).json()["counts"]
            if _settled(counts, b.leads):
                b.settled_polled_s = time.time() - b.started
                b_settled_before_a = a.settled_polled_s is None
        if elapsed > timeout:
            say(f"  {label}: gave up waiting after {elapsed:.0f}s (--quota-timeout)")
            break
        if not b.started:
            # A's POSTs may already have taken most of the delay: start B on time.
            time.sleep(max(0.0, min(POLL_S, a.started + options.small_delay_s - time.time())))
        else:
            time.sleep(POLL_S)
    cpu = measure.cpu_delta(cpu_before, measure.cpu_seconds(stack))
    client_cpu = measure.self_cpu_seconds() - client_cpu
    others = measure.machine_busy_seconds() - busy_before - sum(cpu.values()) - client_cpu
    state = client.sandbox.state()
    for run in (a, b):
        _read_receipts(client, stack, run)
    return QuotaRun(
        label=label,
        told=told,
        real=real,
        a=a,
        b=b,
        b_settled_before_a=b_settled_before_a,
        calls=dict(state.get("calls") or {}),
        throttled=dict(state.get("throttled") or {}),
        cpu=cpu,
        others_cpu_s=max(0.0, others),
        progress=progress,
        timeout_s=timeout,
        compression=options.compression,
    )


def run(options: QuotaOptions, state_dir: Path) -> list[QuotaRun]:
    """The told run, then (unless `options.untold` is off) the untold one, on one stack.

    Both runs' functions are told the compressed figures; the untold run's sandbox enforces
    `UNTOLD_FRACTION` of each count. Each run has hosts of its own, so no gate, quota window or
    reserved Drive id carries over from the one before.
    """
    say = options.progress
    told = compressed(GOOGLE_LIMITS, options.compression)
    plans = [("told", told)]
    if options.untold:
        plans.append(("untold", scaled_counts(told, UNTOLD_FRACTION)))
    say(f"quota phase: starting a stack told {json.dumps(told, separators=(',', ':'))}")
    out: list[QuotaRun] = []
    with quota_stack(state_dir, told, options.compression) as stack:
        warm_up(stack, told)
        for label, real in plans:
            bound = bound_by_count(real, options.leads)
            say(
                f"quota {label}: {options.leads} leads for A, {options.small_leads} for B "
                f"{options.small_delay_s:g}s later; bound {quota_bound_s(real, options.leads):.1f}s"
                f" ({', '.join(f'{k} {v:.1f}' for k, v in bound.items())})"
            )
            out.append(quota_run(stack, options, label, told, real))
            done = out[-1]
            say(
                f"  {label}: A {done.a.seconds or float('nan'):.1f}s, "
                f"B {done.b.seconds or float('nan'):.1f}s, efficiency {done.efficiency:.3f}, "
                f"throttled {done.throttled_fraction:.4f}"
            )
    return out
