"""Readings taken from outside the functions: process CPU, the functions' logs, hook counters."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from leadrun.processes import owned_processes
from leadrun.running_stack import Stack

PIPELINE = ("schedule", "book", "notify", "drive")
SUBSCRIBERS = {"book": "calendar", "notify": "email", "drive": "drive"}


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) so far of each component's live processes, java included."""
    out: dict[str, float] = {}
    for name, info in stack.processes.items():
        total = 0.0
        for pid in owned_processes(info):
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:  # gone meanwhile
                continue
            total += times.user + times.system
        out[name] = total
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds spent by each component between two readings."""
    return {name: round(after.get(name, 0.0) - before.get(name, 0.0), 2) for name in after}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; idle and iowait excluded)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(times, name, 0.0) for name in busy)


def self_cpu_seconds() -> float:
    """CPU time of this (client) process so far."""
    times = os.times()
    return times.user + times.system


@dataclass
class DeliveryLog:
    """What the subscribers logged about one run's deliveries."""

    deliveries: Counter[str] = field(default_factory=Counter)  # function -> log lines
    messages: Counter[str] = field(default_factory=Counter)  # function -> distinct messageIds
    outcomes: Counter[str] = field(default_factory=Counter)  # "function:outcome"
    redeliveries: int = 0  # attempt > 1
    warnings: int = 0
    elapsed_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    published_by_schedule: int = 0


def read_logs(stack: Stack, run_id: str) -> DeliveryLog:
    """Parse the JSON lines of the pipeline functions' logs that belong to `run_id`."""
    result = DeliveryLog()
    for name in PIPELINE:
        seen: set[str] = set()
        path = Path(stack.processes[name].log)
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            labels = entry.get("logging.googleapis.com/labels") or {}
            if labels.get("runId") != run_id:
                continue
            if entry.get("severity") in ("WARNING", "ERROR"):
                result.warnings += 1
            if name == "schedule":
                result.published_by_schedule += int(entry.get("published") or 0)
                continue
            result.deliveries[name] += 1
            seen.add(str(entry.get("messageId")))
            result.outcomes[f"{name}:{entry.get('outcome')}"] += 1
            if int(entry.get("attempt") or 1) > 1:
                result.redeliveries += 1
            if "elapsedMs" in entry:
                result.elapsed_ms[name].append(float(entry["elapsedMs"]))
        if name != "schedule":
            result.messages[name] = len(seen)
    return result


def firestore_counts(count_dir: Path) -> dict[str, Counter[str]]:
    """The hook's totals per function (summed over its processes)."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for path in count_dir.glob("*.json"):
        function = path.stem.rsplit("-", 1)[0]
        try:
            totals[function].update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return dict(totals)
