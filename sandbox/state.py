"""The sandbox's in-memory state: resources, busy blocks, call counters, fault rules.

Every mutation and read happens under ``SandboxState.lock`` (a re-entrant lock).
"""

from __future__ import annotations

import copy
import fnmatch
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.errors import ApiError, default_reason


@dataclass
class FaultRule:
    """One injected failure: for calls to ``method`` (glob allowed), fail with ``status``."""

    method: str
    status: int
    rate: float
    after_effect: bool = False
    reason: str | None = None
    count: int | None = None
    message: str | None = None
    fired: int = 0

    def matches(self, method_id: str) -> bool:
        """Whether this rule applies to calls of ``method_id``."""
        return self.method == method_id or fnmatch.fnmatchcase(method_id, self.method)

    def error(self) -> ApiError:
        """The error this rule answers."""
        return ApiError(self.status, self.message, self.reason or default_reason(self.status))

    def describe(self) -> dict[str, Any]:
        """The rule as JSON."""
        return {
            "method": self.method,
            "status": self.status,
            "rate": self.rate,
            "afterEffect": self.after_effect,
            "reason": self.reason or default_reason(self.status),
            "count": self.count,
            "fired": self.fired,
        }


class SandboxState:
    """Everything the sandbox remembers; reset by ``reset()``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self.rng = random.Random()
        self.latency_ms = 0.0
        self.events: dict[str, dict[str, dict[str, Any]]] = {}
        self.event_order: list[tuple[str, str]] = []
        self.busy: dict[str, list[tuple[datetime, datetime]]] = {}
        self.busy_raw: list[dict[str, str]] = []
        # an event's (start, end) as written -> parsed bounds (see calendar_api._cached_bounds)
        self.bounds_cache: dict[tuple[Any, ...], tuple[datetime, datetime]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.message_meta: dict[str, Any] = {}
        self.drafts: dict[str, str] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.faults: list[FaultRule] = []
        self.sequence = 0

    def reset(self) -> None:
        """Empty every resource, fault rule and counter."""
        with self.lock:
            self._clear()

    def next_sequence(self) -> int:
        """A process-wide increasing number (etags, history ids, generated ids)."""
        with self.lock:
            self.sequence += 1
            return self.sequence

    def count_call(self, method_id: str) -> None:
        """Count one API call of ``method_id``."""
        with self.lock:
            self.calls[method_id] += 1

    def add_fault(self, rule: FaultRule) -> None:
        """Add a fault rule."""
        with self.lock:
            self.faults.append(rule)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self.lock:
            self.faults.clear()

    def seed(self, seed: Any) -> None:
        """Make the fault dice reproducible."""
        with self.lock:
            self.rng.seed(seed)

    def roll_faults(self, method_id: str) -> list[FaultRule]:
        """Roll every matching rule independently; return those that fire (in rule order)."""
        fired: list[FaultRule] = []
        with self.lock:
            for rule in self.faults:
                if not rule.matches(method_id):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.rate >= 1.0 or self.rng.random() < rule.rate:
                    rule.fired += 1
                    fired.append(rule)
        return fired

    def snapshot(self) -> dict[str, Any]:
        """``GET /_sandbox/state``: resources as Google returns them, plus call counters."""
        with self.lock:
            events = [self.events[cal][eid] for cal, eid in self.event_order]
            sent = [m for m in self.messages.values() if "DRAFT" not in m["labelIds"]]
            drafts = [
                {"id": did, "message": self.messages[mid]} for did, mid in self.drafts.items()
            ]
            return copy.deepcopy(
                {
                    "events": events,
                    "messages": sent,
                    "drafts": drafts,
                    "folders": list(self.files.values()),
                    "busy": self.busy_raw,
                    "calls": dict(self.calls),
                    "faults": [f.describe() for f in self.faults],
                    "latencyMs": self.latency_ms,
                }
            )


@dataclass
class ApiCall:
    """One routed API request: method id, path parameters, typed query and JSON body."""

    method_id: str
    params: dict[str, str]
    query: dict[str, Any]
    body: Any


Handler = Callable[[SandboxState, ApiCall], dict[str, Any]]
