"""Runs and leads as stored: the run document, its settings, its leads and their pages, and the
run's counters. Receipts and their transitions are `common.store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from common import paths
from common.counts import fold
from common.documents import (
    SERVER_TIME,
    Commit,
    Decision,
    Documents,
    Known,
    Stored,
    Write,
    batches,
    change,
    guarded,
)
from common.models import RunSettings

WRITES_PER_BATCH = 400
_COMMITS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="intake-commit")


class ReceiptMissing(Exception):
    """A message names a receipt (or settings) that schedule never wrote."""


@dataclass(frozen=True)
class StoredLead:
    """A lead as stored, with its receipts: what schedule plans a resubmission from."""

    lead: Stored
    receipts: dict[str, Stored]


def lead_actions(lead: Mapping[str, Any]) -> list[str]:
    """The actions requested for a lead document."""
    return list(lead.get("actions") or (lead.get("settings") or {}).get("actions") or ())


RunState = Literal["active", "paused", "cancelled"]
RUN_STATES: tuple[RunState, ...] = ("active", "paused", "cancelled")


def run_state(run: Mapping[str, Any] | None) -> RunState:
    """A run document's `state`: `active` unless a whole-run command paused or cancelled it."""
    found = (run or {}).get("state")
    return next((state for state in RUN_STATES if state == found), "active")


class Runs:
    """Runs and leads over a `Documents` port (Firestore, or the tests' fake)."""

    def __init__(self, docs: Documents, lease_s: int = 120, known: Known | None = None) -> None:
        self.docs = docs
        self.lease = timedelta(seconds=lease_s)
        # A delivery's checkpoints and finish decide on what its claim left (shared with holds).
        self.known = known if known is not None else Known()
        self._runs: dict[str, dict[str, Any]] = {}
        self._settings: dict[str, RunSettings] = {}

    def _get(self, path: str) -> dict[str, Any] | None:
        found = self.docs.read([path])[path]
        return None if found is None else found.data

    # -- runs -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run document, or None."""
        return self._get(paths.run(run_id))

    def run_mode(self, run_id: str) -> dict[str, Any] | None:
        """`ownerUid` and `dryRun` of a run, cached: neither ever changes once the run exists."""
        cached = self._runs.get(run_id)
        if cached is None:
            run = self.get_run(run_id)
            if run is None:
                return None
            cached = {"ownerUid": run.get("ownerUid"), "dryRun": bool(run.get("dryRun"))}
            if len(self._runs) > 4096:
                self._runs.clear()
            self._runs[run_id] = cached
        return cached

    def open_run(self, run_id: str, uid: str, dry_run: bool) -> dict[str, Any]:
        """Create the run, or return it as it is; the caller checks owner and mode."""
        path = paths.run(run_id)

        def decide(found: dict[str, Stored | None]) -> Decision[dict[str, Any]]:
            if (run := found[path]) is not None:
                return Decision(run.data)
            doc = {"ownerUid": uid, "dryRun": dry_run}
            stamps = {"createdAt": SERVER_TIME, "updatedAt": SERVER_TIME}
            return Decision({**doc, "created": True}, Commit([guarded(path, None, doc | stamps)]))

        return change(self.docs, [path], decide)

    def set_run_state(self, run_id: str, state: RunState) -> RunState:
        """Set a run's `state` (`active`, `paused`, `cancelled`); a cancelled run stays so.
        Returns the state it has now."""
        path = paths.run(run_id)

        def decide(found: dict[str, Stored | None]) -> Decision[RunState]:
            run = found[path]
            if run is None:
                raise ReceiptMissing(path)
            current = run_state(run.data)
            if current == state or current == "cancelled":
                return Decision(current)
            fields = {"state": state, "updatedAt": SERVER_TIME}
            return Decision(state, Commit([guarded(path, run, fields)]))

        return change(self.docs, [path], decide)

    def current_state(self, run_id: str) -> RunState:
        """The run's `state` as stored now (read, never cached)."""
        return run_state(self.get_run(run_id))

    def leads(self, run_id: str, lead_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The lead documents among `lead_ids` that exist (one round trip)."""
        wanted = {lead_id: paths.lead(run_id, lead_id) for lead_id in lead_ids}
        found = self.docs.read(list(wanted.values()))
        return {i: doc.data for i, path in wanted.items() if (doc := found[path]) is not None}

    def touch_run(self, run_id: str) -> None:
        """Move the run's `updatedAt` (it exists: schedule opened it)."""
        self._touch(paths.run(run_id))

    def _touch(self, path: str) -> None:
        def decide(found: dict[str, Stored | None]) -> Decision[None]:
            doc = found[path]
            if doc is None:
                return Decision(None)
            return Decision(None, Commit([guarded(path, doc, {"updatedAt": SERVER_TIME})]))

        change(self.docs, [path], decide)

    def set_client_stages(self, run_id: str, stages: dict[str, Any]) -> None:
        """Record the lead engine's own funnel stages (last write wins: unguarded)."""
        doc = dict(stages, updatedAt=SERVER_TIME)
        self.docs.commit([Commit([Write(paths.client_stages(run_id), doc)])])

    def client_stages(self, run_id: str) -> dict[str, Any]:
        """The lead engine's funnel stages, or {}."""
        return self._get(paths.client_stages(run_id)) or {}

    def counters(self, run_id: str) -> dict[str, Any]:
        """A run's counters folded into `counts` and `reasons`."""
        return fold(self.docs.counters(run_id))

    def run_hosts(self, run_id: str) -> list[str]:
        """The hosts (`senderEmail`) the run's requests named."""
        found = {
            str((doc.data.get("host") or {}).get("senderEmail"))
            for _, doc in self.docs.children(paths.run_settings_all(run_id))
        }
        return sorted(found)

    def waiting_until(self, run_id: str) -> str | None:
        """The latest `waiting.until` among a run's receipts (None: nothing waits)."""
        found = self.docs.latest(paths.leads(run_id), "waitingUntil")
        return None if found is None else str(found)

    # -- leads ----------------------------------------------------------------------------
    def get_lead(self, run_id: str, lead_doc_id: str) -> dict[str, Any] | None:
        """One lead document, or None."""
        return self._get(paths.lead(run_id, lead_doc_id))

    def stored_leads(
        self, run_id: str, lead_ids: Iterable[str], actions: Iterable[str]
    ) -> dict[str, StoredLead]:
        """The leads among `lead_ids` that exist, with their receipts (two round trips)."""
        ids = list(lead_ids)
        leads = self.docs.read([paths.lead(run_id, lead_id) for lead_id in ids])
        found = {lead_id: leads[paths.lead(run_id, lead_id)] for lead_id in ids}
        existing = [lead_id for lead_id, doc in found.items() if doc is not None]
        wanted = {
            (lead_id, a): paths.receipt(run_id, lead_id, a) for lead_id in existing for a in actions
        }
        receipts = self.docs.read(list(wanted.values())) if wanted else {}
        out: dict[str, StoredLead] = {}
        for lead_id in existing:
            lead = found[lead_id]
            assert lead is not None
            mine = {
                a: doc
                for (owner, a), path in wanted.items()
                if owner == lead_id and (doc := receipts[path]) is not None
            }
            out[lead_id] = StoredLead(lead, mine)
        return out

    def lead_settings(self, run_id: str, lead: Mapping[str, Any]) -> RunSettings:
        """The settings a lead was submitted with (cached: a settings document never changes)."""
        if "settings" in lead:  # written before settings were shared between leads
            return RunSettings.model_validate(lead["settings"], strict=False)
        settings_id = str(lead["settingsId"])
        cached = self._settings.get(settings_id)
        if cached is None:
            doc = self._get(paths.run_settings(run_id, settings_id))
            if doc is None:
                raise ReceiptMissing(f"settings {settings_id} of run {run_id}")
            cached = RunSettings.model_validate(doc, strict=False)
            if len(self._settings) > 1024:
                self._settings.clear()
            self._settings[settings_id] = cached
        actions = lead_actions(lead)
        if actions and actions != list(cached.actions):
            return cached.model_copy(update={"actions": actions})
        return cached

    def write_intake(self, commits: Sequence[Commit]) -> None:
        """Commit schedule's per-lead commits, in batches committed concurrently.

        Each lead's writes are guarded by how schedule read them, so two concurrent identical
        requests cannot both count a lead: the loser's batch fails (`Changed`) and schedule reads
        again. Every batch is waited for before raising: a retry never races this request's own.
        """
        futures = [
            _COMMITS.submit(self.docs.commit, batch) for batch in batches(commits, WRITES_PER_BATCH)
        ]
        for error in [future.exception() for future in futures]:  # wait for all, then raise
            if error is not None:
                raise error

    def run_receipts(self, run_id: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Every lead of a run with its receipts: [(leadDocId, lead, {action: receipt})]."""
        leads = {lead_id: doc.data for lead_id, doc in self.docs.children(paths.leads(run_id))}
        wanted = [
            (lead_id, action, paths.receipt(run_id, lead_id, action))
            for lead_id, lead in leads.items()
            for action in lead_actions(lead)
        ]
        receipts: dict[str, dict[str, Any]] = {lead_id: {} for lead_id in leads}
        for start in range(0, len(wanted), 300):
            chunk = wanted[start : start + 300]
            found = self.docs.read([path for _, _, path in chunk])
            for lead_id, action, path in chunk:
                if (doc := found[path]) is not None:
                    receipts[lead_id][action] = doc.data
        return [(lead_id, leads[lead_id], receipts[lead_id]) for lead_id in sorted(leads)]

    # -- pages of leads -------------------------------------------------------------------
    def lead_page(
        self, run_id: str, equal: Mapping[tuple[str, ...], Any], after: str | None, limit: int
    ) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any]]], bool]:
        """Up to `limit` leads of a run after the id `after`, in id order, whose fields equal
        `equal`, each with its receipts: ([(leadDocId, lead, {action: receipt})], more follow).
        One query of `limit + 1` leads and one read of their receipts, whatever the run's size."""
        found = self.docs.page(paths.leads(run_id), equal, after, limit + 1)
        leads = found[:limit]
        wanted = [
            (lead_id, action, paths.receipt(run_id, lead_id, action))
            for lead_id, lead in leads
            for action in lead_actions(lead.data)
        ]
        receipts = self.docs.read([path for _, _, path in wanted]) if wanted else {}
        mine: dict[str, dict[str, Any]] = {lead_id: {} for lead_id, _ in leads}
        for lead_id, action, path in wanted:
            if (doc := receipts[path]) is not None:
                mine[lead_id][action] = doc.data
        rows = [(lead_id, lead.data, mine[lead_id]) for lead_id, lead in leads]
        return rows, len(found) > limit
