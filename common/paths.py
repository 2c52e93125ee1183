"""Every Firestore path the project reads or writes, in one place."""

from __future__ import annotations

RUNS = "lead_runs"
HOLDS = "calendar_holds"
CLIENT_STAGES = "client"


def run(run_id: str) -> str:
    """The run document."""
    return f"{RUNS}/{run_id}"


def leads(run_id: str) -> str:
    """The collection of a run's leads."""
    return f"{RUNS}/{run_id}/leads"


def lead(run_id: str, lead_doc_id: str) -> str:
    """One lead of a run (its request and acceptance)."""
    return f"{RUNS}/{run_id}/leads/{lead_doc_id}"


def run_settings(run_id: str, settings_id: str) -> str:
    """Settings shared by the leads of one request (content-addressed, never changed)."""
    return f"{RUNS}/{run_id}/settings/{settings_id}"


def run_settings_all(run_id: str) -> str:
    """The collection of a run's settings documents."""
    return f"{RUNS}/{run_id}/settings"


def receipt(run_id: str, lead_doc_id: str, action: str) -> str:
    """The receipt of one action of one lead."""
    return f"{RUNS}/{run_id}/leads/{lead_doc_id}/receipts/{action}"


def counters(run_id: str) -> str:
    """The collection of a run's counter shards."""
    return f"{RUNS}/{run_id}/counters"


def counter_shard(run_id: str, shard: int) -> str:
    """One counter shard of a run."""
    return f"{RUNS}/{run_id}/counters/{shard}"


def client_stages(run_id: str) -> str:
    """The client-side funnel stages (sourced, filtered) of a run."""
    return f"{RUNS}/{run_id}/stages/{CLIENT_STAGES}"


def hold(hold_id: str) -> str:
    """One slot-claim bucket document."""
    return f"{HOLDS}/{hold_id}"


GATES = "google_limits"


def gate(api: str, host_key: str) -> str:
    """What Google's limits hold back for one host (acting user) on one API."""
    return f"{GATES}/{api}_{host_key}"


SWEEPER = "lead_run_sweeper/tick"  # which sweeper tick is live, until when
