"""The sandbox's in-memory state: resources, busy blocks, call counters, fault rules, limits.

Each acting user has a mailbox, a drive and quotas of their own; calendars are keyed by calendar id
and each event records the user who made it. Every mutation and read happens under
``SandboxState.lock`` (a re-entrant lock).
"""

from __future__ import annotations

import copy
import fnmatch
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.errors import ApiError, default_reason
from sandbox.limits import NO_LIMITS, Admission, Limits, Quotas


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


@dataclass
class Mailbox:
    """One user's Gmail: messages (sent and drafts' messages), their parsed metadata, drafts."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    drafts: dict[str, str] = field(default_factory=dict)  # draft id -> message id


@dataclass
class DriveSpace:
    """One user's Drive: files, when each was made (epoch s), ids handed out by generateIds."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    made: dict[str, float] = field(default_factory=dict)
    generated: set[str] = field(default_factory=set)


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """A stored resource without the sandbox's private ``_`` keys."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


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
        self.mailboxes: dict[str, Mailbox] = {}
        self.drives: dict[str, DriveSpace] = {}
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.faults: list[FaultRule] = []
        self.limits: Limits = NO_LIMITS
        self.quotas = Quotas()
        self.sequence = 0

    def reset(self) -> None:
        """Empty every resource, fault rule, limit and counter."""
        with self.lock:
            self._clear()

    def next_sequence(self) -> int:
        """A process-wide increasing number (etags, history ids, generated ids)."""
        with self.lock:
            self.sequence += 1
            return self.sequence

    def mailbox(self, user: str) -> Mailbox:
        """``user``'s mailbox (made empty on first use)."""
        with self.lock:
            return self.mailboxes.setdefault(user, Mailbox())

    def drive(self, user: str) -> DriveSpace:
        """``user``'s drive (made empty on first use)."""
        with self.lock:
            return self.drives.setdefault(user, DriveSpace())

    def set_limits(self, limits: Limits) -> None:
        """Replace the limits in force; what users already used stays counted."""
        with self.lock:
            self.limits = limits

    def admit(self, method_id: str, user: str, body: Any) -> Admission:
        """Charge a call to its user's quotas, or count it throttled and raise Google's refusal."""
        with self.lock:
            try:
                return self.quotas.admit(self.limits, user, method_id, body)
            except ApiError:
                self.throttled[method_id] += 1
                raise

    def settle(self, admission: Admission, effect: bool) -> None:
        """A call admitted by ``admit`` has ended (``effect``: it changed something)."""
        with self.lock:
            admission.settle(effect)

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
            events = [_public(self.events[cal][eid]) for cal, eid in self.event_order]
            sent: list[dict[str, Any]] = []
            drafts: list[dict[str, Any]] = []
            for user, box in self.mailboxes.items():
                sent += [
                    {**m, "user": user}
                    for m in box.messages.values()
                    if "DRAFT" not in m["labelIds"]
                ]
                drafts += [
                    {"id": did, "message": box.messages[mid], "user": user}
                    for did, mid in box.drafts.items()
                ]
            files = [
                {**f, "user": user}
                for user, space in self.drives.items()
                for f in space.files.values()
            ]
            # in the order they were made, whoever made them
            sent.sort(key=lambda m: int(m["historyId"]))
            drafts.sort(key=lambda d: int(d["message"]["historyId"]))
            files.sort(key=lambda f: int(f["version"]))
            return copy.deepcopy(
                {
                    "events": events,
                    "messages": sent,
                    "drafts": drafts,
                    "folders": files,
                    "busy": self.busy_raw,
                    "calls": dict(self.calls),
                    "throttled": dict(self.throttled),
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
    user: str = ""  # the acting user (lower-cased address), from the request's credentials


Handler = Callable[[SandboxState, ApiCall], dict[str, Any]]
