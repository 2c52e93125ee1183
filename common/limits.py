"""Google's per-user limits as its answers tell them (pure): what a refusal means, until when.

A rate limit (429, 403 `rateLimitExceeded`/`userRateLimitExceeded`), a daily sending cap (Gmail's
429 "User-rate limit exceeded.  Retry after <time>") and Calendar's usage-limit lockout (403
`quotaExceeded`, "Calendar usage limits exceeded.") are not failures: the action waits and
resumes by itself (docs/api.md, "Google's limits"). `common.errors.classify` turns an error into
that wait with the figures here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.models import parse_time, stamp

RATE_LIMIT = "rate_limit"
DAILY_LIMIT = "daily_limit"
USAGE_LIMITS = "usage_limits"
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
        """The receipt's `waiting` field (docs/api.md, "Receipts")."""
        return {"reason": self.reason, "api": self.api, "until": stamp(self.until)}


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
