"""Google's per-user limits (docs/api.md, "Sandbox limits"): the document, its windows, admission.

``POST /_sandbox/limits`` takes::

    {"gmail":    {"units": 15000, "perSeconds": 60, "concurrent": 10,
                  "sends": 2000, "sendsPerSeconds": 86400},
     "calendar": {"requests": 600, "perSeconds": 60, "externalInvites": 10000,
                  "invitesPerSeconds": 86400, "lockoutSeconds": 3600},
     "drive":    {"writes": 3, "perSeconds": 1},
     "meetPendingSeconds": 0, "searchLagSeconds": 0,
     "meetFails": false}

Every key may be left out: a count without a figure is no limit; a window left out takes Google's
(60 s for rates, 86400 s for sends and invites, 1 s for Drive writes); ``lockoutSeconds`` left out
refuses only the insert that passed the cap. ``meetFails`` is a sandbox extension (not Google's):
``true`` makes every new Meet conference end ``failure`` (after ``meetPendingSeconds``, at once
when that is 0), so a test can see what the pipeline does when Google reports it failed.

Windows slide over real seconds. A refused call consumes nothing. Everything here runs under
``SandboxState.lock``; this module keeps no lock of its own.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import ApiError

# Google's Gmail quota units per method (developers.google.com/gmail/api/reference/quota);
# any other Gmail method is charged 5.
GMAIL_UNITS: dict[str, int] = {
    "gmail.users.messages.send": 100,
    "gmail.users.drafts.send": 100,
    "gmail.users.drafts.create": 10,
    "gmail.users.drafts.delete": 10,
    "gmail.users.drafts.update": 15,
    "gmail.users.messages.list": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.drafts.get": 5,
    "gmail.users.drafts.list": 5,
}
GMAIL_DEFAULT_UNITS = 5
GMAIL_SENDS = frozenset({"gmail.users.messages.send", "gmail.users.drafts.send"})
DRIVE_WRITES = frozenset(
    {"drive.files.create", "drive.files.update", "drive.files.delete", "drive.files.copy"}
)
# Calendar goes read-only for the user during a lockout; the contract names inserts.
CALENDAR_LOCKED = frozenset({"calendar.events.insert"})
# A concurrency refusal has no window to wait for: a slot frees when a call ends.
CONCURRENCY_RETRY_S = 1.0

_COUNTS: dict[str, tuple[str, ...]] = {
    "gmail": ("units", "concurrent", "sends"),
    "calendar": ("requests", "externalInvites"),
    "drive": ("writes",),
}
_WINDOWS: dict[str, dict[str, float]] = {
    "gmail": {"perSeconds": 60.0, "sendsPerSeconds": 86400.0},
    "calendar": {"perSeconds": 60.0, "invitesPerSeconds": 86400.0, "lockoutSeconds": 0.0},
    "drive": {"perSeconds": 1.0},
}
_TOP_SECONDS = ("meetPendingSeconds", "searchLagSeconds")
_TOP_FLAGS = ("meetFails",)


class LimitsError(ValueError):
    """A limits document that is not what the contract describes (answered 400)."""


def _number(value: Any, where: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LimitsError(f"{where} must be a number, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise LimitsError(f"{where} must be {'> 0' if positive else '>= 0'}, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Limits:
    """The limits in force: the validated document and its figures (``None``: no such limit)."""

    document: dict[str, Any] = field(default_factory=dict)

    def count(self, api: str, key: str) -> float | None:
        """A per-user count such as ``gmail.units``, or None when there is no such limit."""
        value = (self.document.get(api) or {}).get(key)
        return None if value is None else float(value)

    def window(self, api: str, key: str) -> float:
        """A window in seconds such as ``gmail.perSeconds`` (Google's when left out)."""
        value = (self.document.get(api) or {}).get(key)
        return _WINDOWS[api][key] if value is None else float(value)

    @property
    def meet_pending_s(self) -> float:
        """How long a new conference stays ``pending``."""
        return float(self.document.get("meetPendingSeconds") or 0)

    @property
    def search_lag_s(self) -> float:
        """How long a new message, draft or file stays invisible to a list with ``q``."""
        return float(self.document.get("searchLagSeconds") or 0)

    @property
    def meet_fails(self) -> bool:
        """Whether new conferences end ``failure`` (sandbox extension)."""
        return bool(self.document.get("meetFails"))


NO_LIMITS = Limits()


def parse_limits(data: Any) -> Limits:
    """Validate a limits document; LimitsError names the first key that is wrong."""
    if not isinstance(data, dict):
        raise LimitsError("limits must be a JSON object")
    document: dict[str, Any] = {}
    for key, value in data.items():
        if key in _COUNTS:
            if not isinstance(value, dict):
                raise LimitsError(f"{key} must be an object")
            section: dict[str, float | int] = {}
            for name, figure in value.items():
                where = f"{key}.{name}"
                if name in _COUNTS[key]:
                    section[name] = _number(figure, where, positive=False)
                elif name in _WINDOWS[key]:
                    section[name] = _number(figure, where, positive=name != "lockoutSeconds")
                else:
                    known = ", ".join((*_COUNTS[key], *_WINDOWS[key]))
                    raise LimitsError(f"unknown key {where} (known: {known})")
            document[key] = {n: int(v) if float(v).is_integer() else v for n, v in section.items()}
        elif key in _TOP_SECONDS:
            seconds = _number(value, key, positive=False)
            document[key] = int(seconds) if seconds.is_integer() else seconds
        elif key in _TOP_FLAGS:
            if not isinstance(value, bool):
                raise LimitsError(f"{key} must be true or false, not {value!r}")
            document[key] = value
        else:
            known = ", ".join((*_COUNTS, *_TOP_SECONDS, *_TOP_FLAGS))
            raise LimitsError(f"unknown key {key} (known: {known})")
    return Limits(document)


class SlidingWindow:
    """Amounts charged at moments; what was charged in the last ``period`` seconds counts."""

    def __init__(self) -> None:
        self._entries: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def used(self, now: float, period: float) -> float:
        """The amount charged within ``(now - period, now]``."""
        while self._entries and self._entries[0][0] <= now - period:
            self._total -= self._entries.popleft()[1]
        return self._total if self._entries else 0.0

    def free_at(self, now: float, period: float, limit: float, amount: float) -> float:
        """The first moment at which ``amount`` more fits under ``limit``."""
        excess = self.used(now, period) + amount - limit
        if excess <= 0:
            return now
        for moment, charged in self._entries:
            excess -= charged
            if excess <= 0:
                return moment + period
        return now + period  # larger than the limit itself: never fits; say one window

    def charge(self, now: float, amount: float) -> tuple[float, float]:
        """Charge ``amount`` at ``now``; the entry, to refund it."""
        entry = (now, amount)
        self._entries.append(entry)
        self._total += amount
        return entry

    def refund(self, entry: tuple[float, float]) -> None:
        """Take back a charge (if it has not slid out already)."""
        try:
            self._entries.remove(entry)
        except ValueError:
            return
        self._total -= entry[1]


@dataclass
class UserQuota:
    """One acting user's windows, in-flight Gmail calls and Calendar lockout."""

    gmail_units: SlidingWindow = field(default_factory=SlidingWindow)
    gmail_sends: SlidingWindow = field(default_factory=SlidingWindow)
    gmail_inflight: int = 0
    calendar_requests: SlidingWindow = field(default_factory=SlidingWindow)
    calendar_invites: SlidingWindow = field(default_factory=SlidingWindow)
    calendar_locked_until: float = 0.0
    drive_writes: SlidingWindow = field(default_factory=SlidingWindow)


@dataclass
class Admission:
    """What an admitted call holds: a Gmail slot to release, charges to refund if no effect."""

    quota: UserQuota | None = None
    holds_slot: bool = False
    refundable: list[tuple[SlidingWindow, tuple[float, float]]] = field(default_factory=list)

    def settle(self, effect: bool) -> None:
        """Release the slot; without an effect, take back what counts effects (sends, invites)."""
        if self.quota is not None and self.holds_slot:
            self.quota.gmail_inflight -= 1
            self.holds_slot = False
        if not effect:
            for window, entry in self.refundable:
                window.refund(entry)
        self.refundable = []


def rfc3339_ms(moment: float) -> str:
    """``2026-12-02T01:23:45.678Z`` for an epoch time, as Gmail writes Retry-after times."""
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def gmail_rate_limited(retry_at: float) -> ApiError:
    """Gmail's 429 ``rateLimitExceeded``, with the time capacity frees."""
    message = f"User-rate limit exceeded.  Retry after {rfc3339_ms(retry_at)}"
    return ApiError(429, message, "rateLimitExceeded", domain="usageLimits")


def calendar_rate_limited() -> ApiError:
    """Calendar's 403 ``rateLimitExceeded``."""
    return ApiError(403, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits")


def calendar_usage_limits() -> ApiError:
    """Calendar's 403 ``quotaExceeded`` (the anti-abuse lockout)."""
    return ApiError(403, "Calendar usage limits exceeded.", "quotaExceeded", domain="usageLimits")


def drive_rate_limited() -> ApiError:
    """Drive's 403 ``userRateLimitExceeded``."""
    return ApiError(403, "User Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


def external_invites(user: str, body: Any) -> int:
    """How many attendees of an event body are outside the acting user's domain."""
    attendees = body.get("attendees") if isinstance(body, dict) else None
    own = _domain(user)
    count = 0
    for attendee in attendees or []:
        address = str((attendee or {}).get("email") or "") if isinstance(attendee, dict) else ""
        if address and address.lower() != user and _domain(address) != own:
            count += 1
    return count


class Quotas:
    """Every acting user's quota; ``admit`` decides a call against the limits in force."""

    def __init__(self) -> None:
        self.users: dict[str, UserQuota] = {}

    def admit(
        self, limits: Limits, user: str, method_id: str, body: Any, now: float | None = None
    ) -> Admission:
        """Charge the call to ``user`` or raise Google's refusal (nothing charged then)."""
        if not limits.document:
            return Admission()
        now = time.time() if now is None else now
        quota = self.users.setdefault(user, UserQuota())
        api = method_id.partition(".")[0]
        if api == "gmail":
            return self._gmail(limits, quota, method_id, now)
        if api == "calendar":
            return self._calendar(limits, quota, user, method_id, body, now)
        if api == "drive":
            return self._drive(limits, quota, method_id, now)
        return Admission()

    def _gmail(self, limits: Limits, quota: UserQuota, method_id: str, now: float) -> Admission:
        units = GMAIL_UNITS.get(method_id, GMAIL_DEFAULT_UNITS)
        sends = 1 if method_id in GMAIL_SENDS else 0
        retry_at: list[float] = []
        concurrent = limits.count("gmail", "concurrent")
        if concurrent is not None and quota.gmail_inflight >= concurrent:
            retry_at.append(now + CONCURRENCY_RETRY_S)
        unit_limit = limits.count("gmail", "units")
        unit_window = limits.window("gmail", "perSeconds")
        if unit_limit is not None:
            retry_at.append(quota.gmail_units.free_at(now, unit_window, unit_limit, units))
        send_limit = limits.count("gmail", "sends")
        send_window = limits.window("gmail", "sendsPerSeconds")
        if send_limit is not None and sends:
            retry_at.append(quota.gmail_sends.free_at(now, send_window, send_limit, sends))
        if any(at > now for at in retry_at):
            raise gmail_rate_limited(max(retry_at))
        admission = Admission(quota)
        if concurrent is not None:
            quota.gmail_inflight += 1
            admission.holds_slot = True
        if unit_limit is not None:
            quota.gmail_units.charge(now, units)
        if send_limit is not None and sends:
            entry = quota.gmail_sends.charge(now, sends)
            admission.refundable.append((quota.gmail_sends, entry))
        return admission

    def _calendar(
        self, limits: Limits, quota: UserQuota, user: str, method_id: str, body: Any, now: float
    ) -> Admission:
        if method_id in CALENDAR_LOCKED and now < quota.calendar_locked_until:
            raise calendar_usage_limits()
        request_limit = limits.count("calendar", "requests")
        request_window = limits.window("calendar", "perSeconds")
        if request_limit is not None:
            used = quota.calendar_requests.used(now, request_window)
            if used + 1 > request_limit:
                raise calendar_rate_limited()
        invites = external_invites(user, body) if method_id == "calendar.events.insert" else 0
        invite_limit = limits.count("calendar", "externalInvites")
        invite_window = limits.window("calendar", "invitesPerSeconds")
        if invite_limit is not None and invites:
            used = quota.calendar_invites.used(now, invite_window)
            if used + invites > invite_limit:
                quota.calendar_locked_until = now + limits.window("calendar", "lockoutSeconds")
                raise calendar_usage_limits()
        admission = Admission(quota)
        if request_limit is not None:
            quota.calendar_requests.charge(now, 1)
        if invite_limit is not None and invites:
            entry = quota.calendar_invites.charge(now, invites)
            admission.refundable.append((quota.calendar_invites, entry))
        return admission

    def _drive(self, limits: Limits, quota: UserQuota, method_id: str, now: float) -> Admission:
        write_limit = limits.count("drive", "writes")
        if write_limit is None or method_id not in DRIVE_WRITES:
            return Admission()
        window = limits.window("drive", "perSeconds")
        if quota.drive_writes.used(now, window) + 1 > write_limit:
            raise drive_rate_limited()
        quota.drive_writes.charge(now, 1)
        return Admission(quota)
