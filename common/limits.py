"""Google's per-user limits as its answers tell them (pure): what a refusal means, until when.

A rate limit (429, 403 `rateLimitExceeded`/`userRateLimitExceeded`), a daily sending cap (Gmail's
429 "User-rate limit exceeded.  Retry after <time>") and Calendar's usage-limit lockout (403
`quotaExceeded`, "Calendar usage limits exceeded.") are not failures: the action waits and
resumes by itself (CONTRACT §4 v1.1). This module turns an error into that wait.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from googleapiclient.errors import HttpError

from common.models import parse_time, stamp

RATE_LIMIT = "rate_limit"
DAILY_LIMIT = "daily_limit"
USAGE_LIMITS = "usage_limits"
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
LOCKOUT_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
# Google's per-minute windows never ask for more than a minute; a later "Retry after" is the
# rolling day's cap.
DAILY_AFTER = timedelta(seconds=90)
# Without a "Retry after", wait this long at first, doubling for each wait in a row.
RATE_BACKOFF = timedelta(seconds=1)
RATE_BACKOFF_MAX = timedelta(seconds=60)
# A calendar lockout lasts hours (unpublished): look again after these, doubling each time.
LOCKOUT_PROBE = timedelta(seconds=5)
LOCKOUT_PROBE_MAX = timedelta(minutes=30)
_RETRY_AFTER = re.compile(r"Retry after (\S+)")
# The API each action calls: a limit met by one lead holds the host's other leads on it back.
ACTION_API = {"calendar": "calendar", "email": "gmail", "drive": "drive"}


@dataclass(frozen=True)
class Limit:
    """A wait Google asked for: why, on which API, and until when."""

    reason: str
    api: str
    until: datetime

    def waiting(self) -> dict[str, Any]:
        """The receipt's `waiting` field (CONTRACT §4 v1.1)."""
        return {"reason": self.reason, "api": self.api, "until": stamp(self.until)}


def _error_body(error: HttpError) -> tuple[str, str]:
    try:
        body = json.loads(error.content.decode("utf-8", "replace")).get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    errors = body.get("errors") or [{}]
    return str(errors[0].get("reason") or ""), str(body.get("message") or "")


def retry_after(message: str) -> datetime | None:
    """The time in Google's "... Retry after 2026-12-02T01:23:45.678Z", if any."""
    found = _RETRY_AFTER.search(message)
    if not found:
        return None
    try:
        return parse_time(found.group(1).rstrip("."))
    except ValueError:
        return None


def backoff(base: timedelta, ceiling: timedelta, waits_in_a_row: int) -> timedelta:
    """`base` doubled for each wait in a row, at most `ceiling`, with up to 20% jitter."""
    step = min(ceiling, base * (2 ** min(waits_in_a_row, 20)))
    return step * (1 + 0.2 * random.random())


def limit_of(
    exc: BaseException,
    api: str,
    now: datetime,
    waits_in_a_row: int = 0,
    first_wait: timedelta = RATE_BACKOFF,
) -> Limit | None:
    """The wait a refused call asks for, or None if `exc` is not one of Google's limits.
    Without a "Retry after", the first wait is `first_wait` (the API's window), doubling."""
    if not isinstance(exc, HttpError):
        return None
    status = int(exc.resp.status)
    reason, message = _error_body(exc)
    if status == 403 and reason in LOCKOUT_REASONS:
        wait = backoff(LOCKOUT_PROBE, LOCKOUT_PROBE_MAX, waits_in_a_row)
        return Limit(USAGE_LIMITS, api, now + wait)
    if status == 429 or (status == 403 and reason in RATE_REASONS):
        until = retry_after(message)
        if until is None:
            return Limit(
                RATE_LIMIT, api, now + backoff(first_wait, RATE_BACKOFF_MAX, waits_in_a_row)
            )
        until = max(until, now)
        return Limit(DAILY_LIMIT if until - now > DAILY_AFTER else RATE_LIMIT, api, until)
    return None
