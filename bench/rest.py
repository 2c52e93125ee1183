"""The rest phase (`python -m bench --rest`): what the sweeper reads when little or nothing is due.

Against a Firestore emulator of its own, in a process the counting hook (`bench/_hook`) counts:
- **an idle hour**, compressed: 60 ticks of `sweep()` in a row on an empty database, on a fake
  clock that moves a tick period (a minute) between ticks and that `sleep` moves instead of
  sleeping (the scheduler's clock compressed, nothing of the pipeline's waits);
- **a backlog**: a host that has sent its day's 2,000 emails (its Gmail lane's daily window used
  up, as intake reserves it) schedules 10,000 more email-only leads through schedule's intake on
  Google's published limits: every one waits in Firestore for tomorrow's window and after. Then
  one tick just after intake, one an hour later (the backlog older than the safety net's
  `stale_after`) and one as the window opens, in which about 100 fall due; for each tick, the
  reads of the safety net's stale query on its own at that moment, beside the tick's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import text, workload
from bench.runner import HOOK_DIR, BenchError
from leadrun.components import Commands
from leadrun.running_stack import Stack, wait_ready
from leadrun.stack_config import (
    FIRESTORE,
    LOG_DIR,
    REPO_ROOT,
    check_prerequisites,
    client_env,
    resolve_ports,
)

BACKLOG = 10_000
QUICK_BACKLOG = 1_000
IDLE_TICKS = 60
DUE_SPAN = timedelta(seconds=46)  # of the window's first minute in the due tick: ~100 leads
HOST = "rest-host@example.com"
PROJECT = "bench-rest"
REQUEST = 500


@contextlib.contextmanager
def firestore_emulator(state_dir: Path, timeout_s: float = 120.0) -> Iterator[dict[str, str]]:
    """Only the stack's Firestore emulator, on a free port, stopped (by pid) on the way out;
    the environment a client needs to reach it."""
    gcloud, _ = check_prerequisites()
    ports = resolve_ports("auto")
    env = client_env(PROJECT, ports)
    commands = Commands(
        gcloud=gcloud,
        python=sys.executable,
        project=PROJECT,
        state_dir=state_dir,
        functions_dir=REPO_ROOT,
        sandbox_template=(),
        allowed_origins="",
    )
    (state_dir / LOG_DIR).mkdir(parents=True, exist_ok=True)
    stack = Stack(state_dir=state_dir, project=PROJECT, env=env, processes={})
    try:
        cmd, overrides = commands.command(FIRESTORE, ports)
        stack.start_component(FIRESTORE, cmd, ports[FIRESTORE], overrides)
        wait_ready(stack, [FIRESTORE], time.monotonic() + timeout_s)
        yield {
            "FIRESTORE_EMULATOR_HOST": env["FIRESTORE_EMULATOR_HOST"],
            "GOOGLE_CLOUD_PROJECT": PROJECT,
        }
    finally:
        stack.stop()


def run(root: Path, backlog: int, say: Any = print) -> dict[str, Any]:
    """The phase's figures: the sweeps run in a counted process of their own."""
    counts = root / "firestore-counts"
    counts.mkdir(parents=True, exist_ok=True)
    say(f"rest: an idle hour of sweeper ticks, then a backlog of {backlog} waiting receipts")
    with firestore_emulator(root) as emulator:
        env = {
            **os.environ,
            **emulator,
            "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), str(REPO_ROOT)]),
            "BENCH_FIRESTORE_COUNT_DIR": str(counts),
            "K_SERVICE": "rest",
        }
        done = subprocess.run(
            [sys.executable, "-m", "bench.rest", "--backlog", str(backlog)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,  # its progress goes to stderr as it comes
            text=True,
            timeout=900,
            check=False,
        )
    if done.returncode != 0:
        raise BenchError(f"rest phase failed (exit {done.returncode}; its stderr above)")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def table(figures: dict[str, Any]) -> str:
    """The phase's figures as text."""
    if "rest_idle_reads" not in figures:
        return ""
    ticks, backlog = figures["rest_idle_ticks"], figures["rest_backlog"]

    def tick(name: str, label: str) -> text.Row:
        reads, stale = figures[f"rest_{name}_reads"], figures[f"rest_{name}_stale_reads"]
        published = figures[f"rest_{name}_published"]
        rest = reads - stale
        each = f" ({rest / published:.1f} a lead)" if published else ""
        return text.row(
            label,
            f"{reads} / {figures[f'rest_{name}_writes']}",
            f"{published} published; the stale query alone {stale}, the rest {rest}{each}",
        )

    rows: list[Any] = [
        f"an idle hour, compressed: {ticks} ticks on an empty database",
        text.row(
            "reads / writes, the hour",
            f"{figures['rest_idle_reads']} / {figures['rest_idle_writes']}",
            f"at most {figures['rest_idle_reads_max_tick']} reads a tick",
        ),
        f"{backlog:,} email receipts waiting for tomorrow's sending window (Google's limits)",
        text.row(
            "written by intake in",
            f"{figures['rest_backlog_write_s']} s",
            f"first start in {figures['rest_backlog_first_wait_h']} h",
        ),
        tick("fresh", "tick just after intake: reads / writes"),
        tick("aged", "tick an hour later: reads / writes"),
        tick("due", "tick as the window opens: reads / writes"),
    ]
    return text.render("rest phase: Firestore reads of the sweeper (the hook's counts)", rows)


# -- the counted process ----------------------------------------------------------------------


class FakeClock:
    """A clock that only the phase moves; `sleep` moves it instead of sleeping."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The fake time."""
        return self.at

    def sleep(self, seconds: float) -> None:
        """Move the time on by `seconds`."""
        self.at += timedelta(seconds=max(0.0, seconds))


class HeldBus:
    """Keeps what would be published (nothing reads it): the sweeper's Firestore is measured."""

    def __init__(self) -> None:
        self.published = 0
        self.wakes = 0

    def publish(
        self, messages: Any, timeout_s: float = 30.0, traceparent: str | None = None
    ) -> int:
        """Count the messages."""
        count = len(list(messages))
        self.published += count
        return count

    def wake(self, timeout_s: float = 30.0) -> None:
        """Count the wake."""
        self.wakes += 1


def _counts() -> Counter[str]:
    """The hook's totals in this process so far."""
    hook = sys.modules.get("sitecustomize")
    if hook is None or not getattr(hook, "_DIR", ""):
        raise BenchError("the Firestore counting hook is not active in this process")
    with hook._lock:
        return Counter(hook._counts)


def _counted(call: Callable[[], Any]) -> tuple[Any, int, int]:
    """What `call` returns, and the documents it read (an empty query one) and wrote."""
    before = _counts()
    result = call()
    after = _counts()
    spent = {k: after[k] - before[k] for k in after}
    reads = spent.get("reads", 0) + spent.get("query_reads", 0) + spent.get("query_empty", 0)
    return result, reads, spent.get("writes", 0) + spent.get("deletes", 0)


def _measure(backlog: int) -> dict[str, Any]:
    from google.cloud import firestore

    from common.config import HostAllowlist
    from common.firestore_documents import FirestoreDocuments
    from common.handlers.intake import Pace, handle_schedule
    from common.handlers.sweep import sweep
    from common.lanes import Lanes
    from common.pacing import PUBLISHED, Limits
    from common.store import Store
    from common.topology import SWEEP_LOOP_S, SWEEP_STALE_S
    from leadrun.leads import example_request

    docs = FirestoreDocuments(firestore.Client(project=PROJECT), shards=8)
    store = Store(docs, lease_s=120)
    clock = FakeClock(datetime.now(UTC))
    limits = Limits(PUBLISHED)
    lanes = Lanes(docs, limits, clock)
    pace = Pace(lanes, limits, clock.now)
    bus = HeldBus()
    stale_after = timedelta(seconds=SWEEP_STALE_S)
    period = timedelta(seconds=SWEEP_LOOP_S)

    def tick() -> int:
        return sweep(
            store,
            bus,
            pace,
            stale_after=stale_after,
            loop_s=SWEEP_LOOP_S,
            clock=clock.now,
            sleep=clock.sleep,
        )

    def stale_alone() -> Any:
        return store.stale_receipts(clock.now() - stale_after, clock.now(), 500)

    since = time.monotonic()

    def say(message: str) -> None:
        print(f"rest: {message} ({time.monotonic() - since:.0f} s)", file=sys.stderr, flush=True)

    figures: dict[str, Any] = {"rest_idle_ticks": IDLE_TICKS, "rest_backlog": backlog}
    per_tick: list[int] = []
    writes = 0
    for _ in range(IDLE_TICKS):
        began = clock.now()
        _, reads, wrote = _counted(tick)
        per_tick.append(reads)
        writes += wrote
        clock.at = max(clock.at, began + period)
    figures.update(
        rest_idle_reads=sum(per_tick),
        rest_idle_writes=writes,
        rest_idle_reads_max_tick=max(per_tick),
    )

    say(f"writing the backlog: {backlog} leads through intake")
    # The backlog, written at the wall clock's time (Firestore stamps `updatedAt` with its own).
    clock.at = datetime.now(UTC)
    started = time.monotonic()
    sent = int(PUBLISHED["gmail"]["sends"])
    lanes.reserve(HOST, "gmail", sent, limits, clock.now())  # the day's emails, sent
    for first in range(0, backlog, REQUEST):
        leads = [_lead(i) for i in range(first, min(backlog, first + REQUEST))]
        body = example_request("bench-rest", HOST, leads)
        body["actions"] = ["email"]
        answer = handle_schedule(
            store,
            bus,
            "bench",
            json.dumps(body).encode(),
            hosts=HostAllowlist(None, open_when_unset=True),
            pace=pace,
        )
        if answer.status != 202 or answer.body.get("rejected"):
            raise BenchError(f"intake answered {answer.status}: {str(answer.body)[:500]}")
    figures["rest_backlog_write_s"] = round(time.monotonic() - started, 1)
    written = clock.now()
    window = store.next_wait(None)
    if window is None or bus.published:
        raise BenchError("the backlog does not wait")
    figures["rest_backlog_first_wait_h"] = round((window - written).total_seconds() / 3600, 1)
    for name, at in (
        ("fresh", written + timedelta(seconds=1)),
        ("aged", written + timedelta(hours=1)),
        ("due", window - (period - DUE_SPAN)),
    ):
        say(f"tick: {name}")
        clock.at = at
        _, stale_reads, _ = _counted(stale_alone)
        clock.at = at
        published, reads, wrote = _counted(tick)
        figures.update(
            {
                f"rest_{name}_reads": reads,
                f"rest_{name}_writes": wrote,
                f"rest_{name}_stale_reads": stale_reads,
                f"rest_{name}_published": published,
            }
        )
    return figures


def _lead(index: int) -> dict[str, Any]:
    """The bench's lead `index`, for an email-only run: no candidate slot, no booking to quote."""
    found = {**workload.lead(index, datetime.now(UTC)), "emailBody": "Hi, thanks for your time."}
    del found["candidateSlots"]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """In the counted process: measure, and print the figures as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.rest")
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    args = parser.parse_args(argv)
    print(json.dumps(_measure(args.backlog)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
