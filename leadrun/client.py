"""Talking to a running stack: the HTTP API as the web client uses it, the sandbox, and receipts.

Used by the `leadrun` CLI, the demo, the benchmark and the tests, so all of them exercise the
same public interface (docs/api.md: "Schedule", "Diagnostics", "Workspace sandbox") and read
the same receipts ("Receipts").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from common.counts import recount
from common.receipts import TERMINAL

# A server may close a kept-alive connection while it is idle (functions-framework's gunicorn after
# 2 s); a request sent on it just then is reset before any answer. Every request of the API may
# be sent again (docs/api.md: a repeated schedule or command changes nothing more), so a request
# reset on its connection is sent once more, on a new one; an answer, whatever its status, is kept.
RESENT = Retry(
    total=2, connect=2, read=1, status=0, other=0, allowed_methods=None, backoff_factor=0.1
)


def session() -> requests.Session:
    """A session that sends a request once more when its connection was reset."""
    found = requests.Session()
    adapter = HTTPAdapter(max_retries=RESENT)
    found.mount("http://", adapter)
    found.mount("https://", adapter)
    return found


class SettleTimeout(TimeoutError):
    """The run still had receipts in flight when the wait ended."""


@dataclass
class Sandbox:
    """The Workspace sandbox's control endpoints (docs/api.md, "Workspace sandbox")."""

    url: str
    session: requests.Session

    def state(self) -> dict[str, Any]:
        """Everything the sandbox holds, and its call counters."""
        return dict(self.session.get(f"{self.url}/_sandbox/state", timeout=30).json())

    def reset(self) -> None:
        """Empty state, faults and counters."""
        self.session.post(f"{self.url}/_sandbox/reset", timeout=30).raise_for_status()

    def busy(self, calendar_id: str, start: str, end: str) -> None:
        """Add a busy block to a calendar."""
        body = {"calendarId": calendar_id, "start": start, "end": end}
        self.session.post(f"{self.url}/_sandbox/busy", json=body, timeout=30).raise_for_status()

    def fault(
        self, method: str, status: int, rate: float, after_effect: bool = False, **extra: Any
    ) -> None:
        """Add a fault rule."""
        body = {
            "method": method,
            "status": status,
            "rate": rate,
            "afterEffect": after_effect,
            **extra,
        }
        self.session.post(f"{self.url}/_sandbox/faults", json=body, timeout=30).raise_for_status()

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.session.delete(f"{self.url}/_sandbox/faults", timeout=30).raise_for_status()

    def limits(self, document: Mapping[str, Any] | None) -> None:
        """Put Google's per-user limits in force (docs/api.md, "Sandbox limits"); None: none."""
        url = f"{self.url}/_sandbox/limits"
        if document is None:
            self.session.delete(url, timeout=30).raise_for_status()
        else:
            self.session.post(url, json=dict(document), timeout=30).raise_for_status()

    def token(self, uid: str, claims: Mapping[str, Any] | None = None) -> str:
        """A Firebase-shaped ID token for `uid`."""
        body: dict[str, Any] = {"uid": uid}
        if claims:
            body["claims"] = dict(claims)
        answer = self.session.post(f"{self.url}/_sandbox/token", json=body, timeout=30)
        answer.raise_for_status()
        return str(answer.json()["idToken"])


class LeadRunClient:
    """The schedule, control and diagnostics endpoints, plus direct reads of a run's receipts."""

    def __init__(
        self, env: Mapping[str, str], uid: str = "operator", *, id_token: str | None = None
    ) -> None:
        """`env` as in stack.env; `id_token`: a real Firebase ID token for `uid` (production,
        where there is no sandbox to mint one)."""
        self.env = dict(env)
        self.session = session()
        self.sandbox = Sandbox(self.env.get("WORKSPACE_SANDBOX_URL", "").rstrip("/"), self.session)
        self.uid = uid
        self._tokens: dict[str, str] = {uid: id_token} if id_token else {}
        self._store: Any = None

    # -- HTTP -----------------------------------------------------------------------------
    def auth(self, uid: str | None = None) -> dict[str, str]:
        """The Authorization header of `uid` (the client's own by default)."""
        uid = uid or self.uid
        if uid not in self._tokens:
            self._tokens[uid] = self.sandbox.token(uid)
        return {"Authorization": f"Bearer {self._tokens[uid]}"}

    def schedule(self, body: Mapping[str, Any], uid: str | None = None) -> requests.Response:
        """POST a lead run."""
        return self.session.post(
            self.env["SCHEDULE_URL"], json=body, headers=self.auth(uid), timeout=120
        )

    def control(
        self,
        run_id: str,
        command: str,
        lead_ids: list[str] | None = None,
        uid: str | None = None,
        preview: bool = False,
    ) -> requests.Response:
        """POST a command that steers a run: pause, resume, cancel, replay or undo, of the whole
        run or only of `lead_ids` (docs/api.md, "Control"). `preview` (undo only) asks what the
        command would do, and changes nothing."""
        body: dict[str, Any] = {"runId": run_id, "command": command}
        if lead_ids is not None:
            body["leadDocIds"] = list(lead_ids)
        if preview:
            body["preview"] = True
        return self.session.post(
            self.env["CONTROL_URL"], json=body, headers=self.auth(uid), timeout=120
        )

    def diagnostics(self, run_id: str, uid: str | None = None) -> requests.Response:
        """GET a run's funnel."""
        return self.session.get(
            self.env["DIAGNOSTICS_URL"],
            params={"runId": run_id},
            headers=self.auth(uid),
            timeout=60,
        )

    def leads(
        self,
        run_id: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
        uid: str | None = None,
        **filters: str,
    ) -> requests.Response:
        """GET one page of a run's leads with their receipts (`filters`: `status`, `reason`,
        `waiting`, `paused`, as docs/api.md, "Diagnostics", names them)."""
        params: dict[str, Any] = {"runId": run_id, **filters}
        if page_size is not None:
            params["pageSize"] = page_size
        if page_token is not None:
            params["pageToken"] = page_token
        return self.session.get(
            self.env["DIAGNOSTICS_URL"].rstrip("/") + "/leads",
            params=params,
            headers=self.auth(uid),
            timeout=60,
        )

    def all_leads(self, run_id: str, page_size: int = 200, **filters: str) -> list[dict[str, Any]]:
        """Every lead of a run matching `filters`, following `nextPageToken` to the last page."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            answer = self.leads(run_id, page_size=page_size, page_token=token, **filters)
            answer.raise_for_status()
            page = answer.json()
            found += page["leads"]
            token = page.get("nextPageToken")
            if not token:
                return found

    def post_stages(self, body: Mapping[str, Any], uid: str | None = None) -> requests.Response:
        """POST the lead engine's sourced/filtered stages."""
        return self.session.post(
            self.env["DIAGNOSTICS_URL"], json=body, headers=self.auth(uid), timeout=60
        )

    # -- receipts -------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        """Firestore, read directly as an operator does (emulator on the local stack)."""
        if self._store is None:
            from google.cloud import firestore

            from common.firestore_documents import FirestoreDocuments
            from common.store import Store
            from leadrun.emulators import emulator_address

            emulator = self.env.get("FIRESTORE_EMULATOR_HOST")
            with emulator_address("FIRESTORE_EMULATOR_HOST", emulator):
                client = firestore.Client(project=self.env["GOOGLE_CLOUD_PROJECT"])
            self._store = Store(FirestoreDocuments(client))
        return self._store

    def receipts(self, run_id: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """[(leadDocId, lead, {action: receipt})] of a run."""
        return list(self.store.run_receipts(run_id))

    def recount(self, run_id: str) -> dict[str, Any]:
        """Diagnostics recomputed from the receipts themselves."""
        rows = self.receipts(run_id)
        return recount((lead, list(receipts.values())) for _, lead, receipts in rows)

    def in_flight(self, run_id: str) -> int:
        """How many receipts of the run are not terminal yet."""
        return sum(
            1
            for _, _, rs in self.receipts(run_id)
            for r in rs.values()
            if r.get("status") not in TERMINAL
        )

    def wait_settled(
        self, run_id: str, timeout_s: float = 120.0, poll_s: float = 0.25
    ) -> dict[str, Any]:
        """Wait until every receipt of the run is terminal; returns the diagnostics."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.diagnostics(run_id)
            answer.raise_for_status()
            funnel = dict(answer.json())
            if funnel["counts"]["pending"] == 0 and self.in_flight(run_id) == 0:
                return funnel
            if time.monotonic() > deadline:
                raise SettleTimeout(
                    f"run {run_id}: {funnel['counts']['pending']} receipts still pending"
                )
            time.sleep(poll_s)


def read_env_file(path: str | Path) -> dict[str, str]:
    """`KEY=VALUE` lines of a stack.env (`make up` writes `.leadrun/stack.env`); {} if missing.

    Blank lines and `#` comments are skipped; keys and values are stripped.
    """
    env: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            key = key.strip()
            if sep and key and not key.startswith("#"):
                env[key] = value.strip()
    return env
