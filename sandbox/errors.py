"""Google-shaped API errors: ``{"error": {"code", "message", "errors": [...], "status"}}``."""

from __future__ import annotations

from typing import Any

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "NOT_FOUND",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

DEFAULT_REASONS: dict[int, str] = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    409: "conflict",
    410: "deleted",
    429: "rateLimitExceeded",
}

DEFAULT_MESSAGES: dict[str, str] = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Quota exceeded",
    "dailyLimitExceeded": "Daily Limit Exceeded",
    "backendError": "Backend Error",
    "internalError": "Internal Error",
    "badRequest": "Bad Request",
    "notFound": "Not Found",
    "conflict": "Conflict",
    "duplicate": "The requested identifier already exists.",
    "deleted": "Resource has been deleted",
}


def default_reason(status: int) -> str:
    """The error reason Google usually gives with an HTTP ``status``."""
    if status >= 500:
        return "backendError"
    return DEFAULT_REASONS.get(status, "badRequest")


class ApiError(Exception):
    """An error answered to an API client in Google's JSON error shape."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        reason: str | None = None,
        *,
        location: str | None = None,
        location_type: str | None = None,
        domain: str = "global",
        item_message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.reason = reason or default_reason(code)
        self.message = message or DEFAULT_MESSAGES.get(self.reason, "Error")
        self.location = location
        self.location_type = location_type
        self.domain = domain
        self.item_message = item_message
        self.headers = headers or {}
        super().__init__(f"{code} {self.reason}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The JSON body Google answers for this error."""
        item: dict[str, Any] = {
            "domain": self.domain,
            "reason": self.reason,
            "message": self.item_message or self.message,
        }
        if self.location:
            item["location"] = self.location
            item["locationType"] = self.location_type or "parameter"
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [item],
                "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
            }
        }


def bad_request(message: str, reason: str = "badRequest", location: str | None = None) -> ApiError:
    """A 400 error with the given message and reason."""
    return ApiError(400, message, reason, location=location)


def not_found(message: str = "Not Found", location: str | None = None) -> ApiError:
    """A 404 ``notFound`` error."""
    return ApiError(404, message, "notFound", location=location)
