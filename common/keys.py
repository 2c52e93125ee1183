"""Deterministic idempotency keys: the same run and lead always give the same key (pure)."""

from __future__ import annotations

import hashlib


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def event_id(run_id: str, lead_doc_id: str) -> str:
    """Calendar event id: base32hex (hex digits are a subset), 40 characters, unique per lead."""
    return _digest("event", run_id, lead_doc_id)[:40]


def conference_request_id(run_id: str, lead_doc_id: str) -> str:
    """Meet `createRequest.requestId`: repeating it never makes a second conference."""
    return _digest("meet", run_id, lead_doc_id)[:32]


def message_id_header(run_id: str, lead_doc_id: str, kind: str, sender: str) -> str:
    """RFC 5322 Message-ID of a lead's email; how a sent message is found after a crash."""
    domain = sender.rpartition("@")[2] or "leadrun.local"
    return f"<{_digest('mail', kind, run_id, lead_doc_id)[:32]}.leadrun@{domain}>"


def folder_tag(run_id: str, lead_doc_id: str) -> str:
    """Drive `appProperties` value that marks a lead's folder."""
    return _digest("folder", run_id, lead_doc_id)[:40]


def hold_owner(run_id: str, lead_doc_id: str) -> str:
    """Who holds a slot claim: stable across deliveries of the same lead."""
    return f"{run_id}/{lead_doc_id}"


def calendar_key(calendar_id: str, run_id: str, dry_run: bool) -> str:
    """Scope of slot claims: a calendar, or for a dry run that run's private view of it."""
    scope = f"dry:{run_id}:" if dry_run else "live:"
    return _digest("cal", scope + calendar_id)[:24]
