"""What a failure means for a delivery: retry it (transient) or record it (permanent)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import httplib2
from googleapiclient.errors import HttpError

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


@dataclass
class PermanentError(Exception):
    """Retrying will not help: the receipt ends `failed` with this code and message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def http_reason(error: HttpError) -> str:
    """Google's `errors[0].reason` of an API error, or ''."""
    try:
        body = json.loads(error.content.decode("utf-8", "replace"))
        errors = body.get("error", {}).get("errors") or []
        return str(errors[0].get("reason", "")) if errors else ""
    except (ValueError, AttributeError, IndexError):
        return ""


def is_transient(exc: BaseException) -> bool:
    """429, 5xx, 403 rate limits, timeouts and connection errors are worth retrying."""
    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        if status in TRANSIENT_STATUSES:
            return True
        return status == 403 and http_reason(exc) in RATE_LIMIT_REASONS
    return isinstance(
        exc, (TimeoutError, socket.timeout, ConnectionError, httplib2.HttpLib2Error, OSError)
    )


def as_permanent(exc: HttpError) -> PermanentError:
    """A non-retryable API error as the receipt records it."""
    reason = http_reason(exc) or str(exc.resp.status)
    return PermanentError(code=f"http_{exc.resp.status}_{reason}", message=_short(exc))


def _short(exc: HttpError) -> str:
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
        return str(body.get("error", {}).get("message", ""))[:500] or str(exc)[:500]
    except ValueError:
        return str(exc)[:500]
