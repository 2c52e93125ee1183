"""What a failure means for a delivery (pure): the one classification every effect goes through.

`classify` maps an exception — one of Google's answers, a network error, a store that changed
under us — to one of four verdicts, and the delivery's handling is that table:

| verdict     | what it is                                   | the delivery                     |
|-------------|----------------------------------------------|----------------------------------|
| `wait`      | Google's limits (429, 403 rate/usage limits) | parks the receipt until `until`  |
| `transient` | 408/5xx, network, the store, a held lease    | retries, then Pub/Sub redelivers |
| `permanent` | any other 4xx; `PermanentError` of an effect | ends the receipt `failed`        |
| `internal`  | anything else: a defect                      | logs it; Pub/Sub retries         |
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import httplib2
from google.api_core import exceptions as gexc
from googleapiclient.errors import HttpError

from common.limits import (
    DAILY_AFTER,
    DAILY_LIMIT,
    LOCKOUT_PROBE,
    LOCKOUT_PROBE_MAX,
    RATE_BACKOFF,
    RATE_BACKOFF_MAX,
    RATE_LIMIT,
    USAGE_LIMITS,
    Limit,
    backoff,
    retry_after,
)

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
LOCKOUT_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
NETWORK_ERRORS = (TimeoutError, socket.timeout, ConnectionError, httplib2.HttpLib2Error, OSError)


class Transient(Exception):
    """Not now, and not Google's limit: another instance holds or changed what this one needs.
    The delivery gives its lease back and Pub/Sub delivers the message again."""


@dataclass
class PermanentError(Exception):
    """Retrying will not help: the receipt ends `failed` with this code and message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class GoogleError:
    """What one of Google's error answers says: status, `errors[0].reason`, message."""

    status: int
    reason: str
    message: str

    @classmethod
    def of(cls, error: HttpError) -> GoogleError:
        """Parse the answer's body once (Google's `{"error": {"errors": [...], "message"}}`)."""
        try:
            body = json.loads(error.content.decode("utf-8", "replace")).get("error") or {}
        except (ValueError, AttributeError):
            body = {}
        errors = body.get("errors") or [{}] if isinstance(body, dict) else [{}]
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
        return cls(int(error.resp.status), str(first.get("reason") or ""), message)


@dataclass(frozen=True)
class Failure:
    """A verdict of `classify`."""

    kind: Literal["wait", "transient", "permanent", "internal"]
    limit: Limit | None = None  # `wait`: until when, on which API, why
    code: str = ""  # `permanent`: the receipt's error code
    message: str = ""
    retry_here: bool = False  # `transient`: a quick retry in process may already succeed


def classify(
    exc: BaseException,
    api: str,
    now: datetime,
    waits_in_a_row: int = 0,
    first_wait: timedelta = RATE_BACKOFF,
) -> Failure:
    """The verdict on `exc` met by a call on `api` at `now`. A limit without a "Retry after"
    waits `first_wait` (the API's window) at first, doubling for each wait in a row."""
    if isinstance(exc, PermanentError):
        return Failure("permanent", code=exc.code, message=exc.message)
    if isinstance(exc, Transient | gexc.GoogleAPICallError):  # the store: never the lead's fault
        return Failure("transient", message=str(exc))
    if isinstance(exc, HttpError):
        error = GoogleError.of(exc)
        limit = _limit(error, api, now, waits_in_a_row, first_wait)
        if limit is not None:
            return Failure("wait", limit=limit, message=error.message)
        if error.status in TRANSIENT_STATUSES:
            return Failure("transient", message=str(exc), retry_here=True)
        code = f"http_{error.status}_{error.reason or error.status}"
        return Failure("permanent", code=code, message=(error.message or str(exc))[:500])
    if isinstance(exc, NETWORK_ERRORS):
        return Failure("transient", message=str(exc), retry_here=True)
    return Failure("internal", message=f"{type(exc).__name__}: {exc}")


def _limit(
    error: GoogleError, api: str, now: datetime, waits_in_a_row: int, first_wait: timedelta
) -> Limit | None:
    """The wait one of Google's limits asks for, or None if the answer is not one."""
    if error.status == 403 and error.reason in LOCKOUT_REASONS:
        return Limit(
            USAGE_LIMITS, api, now + backoff(LOCKOUT_PROBE, LOCKOUT_PROBE_MAX, waits_in_a_row)
        )
    if error.status == 429 or (error.status == 403 and error.reason in RATE_REASONS):
        until = retry_after(error.message)
        if until is None:
            wait = backoff(first_wait, RATE_BACKOFF_MAX, waits_in_a_row)
            return Limit(RATE_LIMIT, api, now + wait)
        until = max(until, now)
        return Limit(DAILY_LIMIT if until - now > DAILY_AFTER else RATE_LIMIT, api, until)
    return None
