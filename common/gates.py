"""Per-host gates: a limit Google showed one lead holds the host's other leads on that API back.

A gate is one document per (acting user, API) that says until when calls are held back. Every
delivery reads it before calling Google and parks at once while it is closed, so a host's leads do
not each find the wall for themselves. It is written only when a limit is met (only if it moves the
gate later) and once when calls succeed again, so it is never a document every delivery writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from common import paths
from common.documents import SERVER_TIME, Commit, Decision, Documents, Stored, change, guarded
from common.limits import Limit


def host_key(host: str) -> str:
    """A document-id-safe key for an acting user."""
    return hashlib.sha256(host.lower().encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Gate:
    """A host's gate on one API: closed until `until` (if any), and how many limits in a row."""

    limit: Limit | None
    streak: int

    def closed(self, now: datetime) -> Limit | None:
        """The wait in force at `now`, or None."""
        return self.limit if self.limit is not None and self.limit.until > now else None


def _gate_of(found: Stored | None, api: str) -> Gate:
    if found is None:
        return Gate(None, 0)
    data = found.data
    until = data.get("until")
    limit = Limit(str(data.get("reason")), api, until) if isinstance(until, datetime) else None
    return Gate(limit, int(data.get("streak") or 0))


class Gates:
    """The gates, over a `Documents` port."""

    def __init__(self, docs: Documents) -> None:
        self.docs = docs

    def read(self, host: str, api: str) -> Gate:
        """The host's gate on `api`."""
        path = paths.gate(api, host_key(host))
        return _gate_of(self.docs.read([path])[path], api)

    def close(self, host: str, limit: Limit) -> Limit:
        """Hold the host's calls on `limit.api` back until at least `limit.until`; the wait now
        in force (a later one another lead met stands)."""
        path = paths.gate(limit.api, host_key(host))

        def decide(found: dict[str, Stored | None]) -> Decision[Limit]:
            gate = _gate_of(found[path], limit.api)
            if gate.limit is not None and gate.limit.until >= limit.until:
                return Decision(gate.limit)
            doc = {
                "host": host,
                "api": limit.api,
                "reason": limit.reason,
                "until": limit.until,
                "streak": gate.streak + 1,
                "updatedAt": SERVER_TIME,
            }
            return Decision(limit, Commit([guarded(path, found[path], doc)]))

        return change(self.docs, [path], decide)

    def opened(self, host: str, api: str) -> None:
        """Calls succeed again: the next limit starts its backoff from the beginning."""
        path = paths.gate(api, host_key(host))

        def decide(found: dict[str, Stored | None]) -> Decision[None]:
            doc = found[path]
            if doc is None or not doc.data.get("streak"):
                return Decision(None)
            return Decision(
                None, Commit([guarded(path, doc, {"streak": 0, "updatedAt": SERVER_TIME})])
            )

        change(self.docs, [path], decide)
