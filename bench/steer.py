"""The steering phase (`python -m bench --steer`): how long a pause and a cancel take to answer
on a large run in flight, and what watching a run reads (docs/benchmarks.md).

A run of 2,000 leads (four hosts of 500) is paced to Google's published limits, so most of it
waits in its hosts' lanes when the commands come: pause, resume, then cancel, each answered
through `CONTROL_URL` as a client sees it. Then the Firestore documents the diagnostics function
reads for one progress poll (`leadrun run`) and for one `/leads` page (`leadrun status` reads
one per 50 leads), counted inside that function's process, for runs of two sizes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import measure, text
from bench.runner import HOOK_DIR, REPO_ROOT, running_stack
from bench.workload import run_requests
from leadrun.client import LeadRunClient
from leadrun.running_stack import Stack

STEER_LEADS = 2000
POLLS = 5


def _command(client: LeadRunClient, run_id: str, name: str) -> tuple[float, dict[str, Any]]:
    """A command's answer time (ms) and body."""
    started = time.perf_counter()
    answer = client.session.post(
        client.env["CONTROL_URL"],
        json={"runId": run_id, "command": name},
        headers=client.auth(),
        timeout=300,
    )
    elapsed = (time.perf_counter() - started) * 1000
    answer.raise_for_status()
    return round(elapsed, 1), dict(answer.json())


def _reads(count_dir: Path) -> int:
    found: dict[str, int] = dict(measure.firestore_counts(count_dir).get("diagnostics", {}))
    return int(found.get("reads", 0) + found.get("query_reads", 0))


def _reads_of(count_dir: Path, call: Any, times: int) -> float:
    """Documents the diagnostics function read per call of `call`."""
    time.sleep(0.5)  # the hook writes its totals every 0.2 s
    before = _reads(count_dir)
    for _ in range(times):
        call().raise_for_status()
    time.sleep(0.5)
    return (_reads(count_dir) - before) / times


@contextlib.contextmanager
def paced_stack(root: Path) -> Iterator[tuple[Stack, Path]]:
    """A stack paced to Google's published limits (the default), its functions counted by the
    hook; with the directory the hook writes to. The paced cost run and the steering share it."""
    count_dir = root / "firestore-counts"
    count_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PYTHONPATH": f"{HOOK_DIR}:{REPO_ROOT}",
        "BENCH_FIRESTORE_COUNT_DIR": str(count_dir),
    }
    with running_stack(root / "stack", "bench-steer", extra_env=env) as stack:
        yield stack, count_dir


def run(
    stack: Stack,
    count_dir: Path,
    leads: int = STEER_LEADS,
    say: Any = print,
    watched: tuple[int, int] = (100, 1000),
) -> dict[str, Any]:
    """Figures of the steering phase, on a paced stack (`paced_stack`)."""
    client = LeadRunClient(stack.env, uid="bench")
    client.auth()
    run_id = "bench-steer"
    say(f"steering: {leads} leads in flight, paced to Google's published limits")
    for body in run_requests(run_id, leads, host_prefix="steer"):
        client.schedule(body).raise_for_status()
    time.sleep(2)
    pause_ms, paused = _command(client, run_id, "pause")
    resume_ms, resumed = _command(client, run_id, "resume")
    time.sleep(2)
    cancel_ms, cancelled = _command(client, run_id, "cancel")
    figures: dict[str, Any] = {
        "steer_leads": leads,
        "pause_ms": pause_ms,
        "pause_affected": paused["affected"],
        "pause_in_flight": len(paused["inFlight"]),
        "resume_ms": resume_ms,
        "resume_affected": resumed["affected"],
        "cancel_ms": cancel_ms,
        "cancel_affected": cancelled["affected"],
        "cancel_in_flight": len(cancelled["inFlight"]),
    }
    small, large = watched
    for size, name in ((small, "small"), (large, "large")):
        run_watched = f"bench-watch-{size}"
        say(f"watching: reads per poll of a {size}-lead dry run")
        for body in run_requests(run_watched, size, host_prefix=f"watch-{size}"):
            client.schedule({**body, "dryRun": True}).raise_for_status()
        client.wait_settled(run_watched, timeout_s=600)
        figures[f"watch_{name}_leads"] = size
        figures[f"poll_reads_{name}"] = _reads_of(
            count_dir, lambda w=run_watched: client.diagnostics(w), POLLS
        )
        figures[f"page_reads_{name}"] = _reads_of(
            count_dir, lambda w=run_watched: client.leads(w, page_size=50), POLLS
        )
    return figures


def table(figures: dict[str, Any]) -> str:
    """The phase's figures as text."""
    if "steer_leads" not in figures:
        return ""
    small, large = figures["watch_small_leads"], figures["watch_large_leads"]
    rows: list[Any] = [
        f"steering a {figures['steer_leads']}-lead run in flight (Google's published limits)",
        text.row(
            "pause (ms)",
            figures["pause_ms"],
            f"affected {figures['pause_affected']}, inFlight {figures['pause_in_flight']}",
        ),
        text.row("resume (ms)", figures["resume_ms"], f"affected {figures['resume_affected']}"),
        text.row(
            "cancel (ms)",
            figures["cancel_ms"],
            f"affected {figures['cancel_affected']}, inFlight {figures['cancel_in_flight']}",
        ),
        "watching a run: Firestore documents read by diagnostics",
        text.row(
            "progress poll (leadrun run)",
            f"{figures['poll_reads_small']:.1f} | {figures['poll_reads_large']:.1f}",
            f"{small} | {large} leads",
        ),
        text.row(
            "one /leads page of 50 (status)",
            f"{figures['page_reads_small']:.1f} | {figures['page_reads_large']:.1f}",
            f"{small} | {large} leads",
        ),
    ]
    return text.render("steering phase", rows)
