"""One JSON line per step on stdout, in the fields Cloud Logging reads (severity, trace, labels)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

_lock = threading.Lock()


def trace_field(
    project: str, traceparent: str | None, cloud_trace: str | None = None
) -> str | None:
    """`projects/P/traces/T` from a W3C `traceparent` or an `X-Cloud-Trace-Context` header."""
    trace_id = None
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) >= 3 and len(parts[1]) == 32:
            trace_id = parts[1]
    elif cloud_trace:
        trace_id = cloud_trace.split("/")[0] or None
    return f"projects/{project}/traces/{trace_id}" if trace_id else None


def log(
    message: str,
    *,
    severity: str = "INFO",
    trace: str | None = None,
    labels: dict[str, str] | None = None,
    **fields: Any,
) -> None:
    """Write one structured log line."""
    entry: dict[str, Any] = {"severity": severity, "message": message}
    if trace:
        entry["logging.googleapis.com/trace"] = trace
    if labels:
        entry["logging.googleapis.com/labels"] = {k: str(v) for k, v in labels.items() if v}
    entry.update({k: v for k, v in fields.items() if v is not None})
    line = json.dumps(entry, default=str, separators=(",", ":"))
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Story:
    """One delivery's log lines, with its labels, trace, context and elapsed time."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        trace: str | None,
        labels: dict[str, str],
        context: dict[str, Any],
    ) -> None:
        self.clock, self.trace, self.labels, self.context = clock, trace, labels, context
        self.started = clock()

    def __call__(self, message: str, severity: str = "INFO", **fields: Any) -> None:
        elapsed = round((self.clock() - self.started).total_seconds() * 1000, 1)
        log(
            message,
            severity=severity,
            trace=self.trace,
            labels=self.labels,
            elapsedMs=elapsed,
            **self.context,
            **fields,
        )
