"""How every subscriber handles one Pub/Sub delivery: claim, act once, record, or ask for a retry.

The lease in the receipt decides who may act (CONTRACT §4); the effect itself is idempotent
(deterministic ids, checkpoints, tags), so a delivery that takes over an expired lease first finds
out what the earlier one already did. Transient errors raise `Retry`, which the entry point turns
into an HTTP 500 so Pub/Sub redelivers with backoff; permanent ones end in a `failed` receipt.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from googleapiclient.errors import HttpError
from pydantic import ValidationError

from common.bus import Outgoing, PubSubBus
from common.errors import PermanentError, as_permanent, is_transient
from common.log import log
from common.models import Lead, RunSettings
from common.store import (
    Claim,
    FirestoreStore,
    LeaseHeld,
    ReceiptMissing,
    Settlement,
    decode_version,
)

QUICK_TRIES = 3
QUICK_BACKOFF_S = 0.2


class Retry(Exception):
    """Ask Pub/Sub to deliver this message again later."""


@dataclass(frozen=True)
class Delivery:
    """One push delivery of a lead action message, decoded from its CloudEvent."""

    run_id: str
    lead_doc_id: str
    action: str
    message_id: str
    publish_time: datetime | None
    booking: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)  # see `Outgoing.versions`
    lead_doc: dict[str, Any] | None = None  # see `Outgoing.lead`
    trace: str | None = None
    traceparent: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        """Cloud Logging labels that tell one lead's story."""
        return {"runId": self.run_id, "leadDocId": self.lead_doc_id, "action": self.action}


@dataclass
class Work:
    """What an effect gets: the run, the lead, the claim, and a way to publish follow-ups."""

    delivery: Delivery
    run: dict[str, Any]
    lead_doc: dict[str, Any]
    lead: Lead
    settings: RunSettings
    claim: Claim
    store: FirestoreStore
    bus: PubSubBus
    now: datetime
    follow_ups: list[Outgoing] = field(default_factory=list)
    settle: Settlement | None = None  # holds to keep as booked, with the receipt's commit
    tries: int = 1

    @property
    def resumed(self) -> bool:
        """Something before this try may have taken effect: look before acting again."""
        return self.claim.resumed or self.tries > 1

    @property
    def dry_run(self) -> bool:
        """Decided by the run document, never by the message."""
        return bool(self.run.get("dryRun"))

    @property
    def status_done(self) -> str:
        """The terminal status of a successful action in this run's mode."""
        return "simulated" if self.dry_run else "done"


Effect = Callable[[Work], dict[str, Any]]


def terminal(
    status: str,
    outcome: str | None,
    *,
    reason: str | None = None,
    external: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of a terminal receipt."""
    return {
        "status": status,
        "outcome": outcome,
        "reason": reason,
        "external": external,
        "error": error,
    }


def failed(reason: str, code: str, message: str) -> dict[str, Any]:
    """A `failed` receipt with its reason and error."""
    return terminal("failed", None, reason=reason, error={"code": code, "message": message})


def settle_email_after_calendar(
    store: FirestoreStore, delivery: Delivery, settings: RunSettings, reason: str
) -> None:
    """When the booking cannot go on, the email that would follow it must not stay pending."""
    if "email" in settings.actions and "calendar" in settings.actions:
        store.finish(
            delivery.run_id,
            delivery.lead_doc_id,
            "email",
            terminal(
                "rejected",
                None,
                reason=reason,
                error={"code": reason, "message": "the calendar action did not book a meeting"},
            ),
        )


def _with_quick_retries(effect: Effect, work: Work, note: Callable[..., None]) -> dict[str, Any]:
    """Run the effect, retrying a transient failure a few times in this delivery.

    Pub/Sub's redelivery backoff is seconds to minutes and its attempts are few; a brief local
    retry absorbs one-off 429s and 503s. Every retry is a resumed try, so it first looks for
    what the failed call may have done (the event, the draft, the folder) before acting again.
    """
    for attempt in range(1, QUICK_TRIES + 1):
        work.tries = attempt
        work.follow_ups.clear()
        work.settle = None
        try:
            return effect(work)
        except Exception as exc:
            if attempt == QUICK_TRIES or not is_transient(exc):
                raise
            note(
                f"transient error, retrying in process: {exc}", severity="WARNING", outcome="retry"
            )
            time.sleep(QUICK_BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _lead_of(lead_doc: dict[str, Any]) -> Lead | None:
    """The lead of a lead document; None if it does not hold a valid one.

    Stored leads were validated on the way in; JSON strings become datetimes again here.
    """
    try:
        return Lead.model_validate(lead_doc.get("lead"), strict=False)
    except ValidationError:
        return None


def handle_delivery(
    store: FirestoreStore,
    bus: PubSubBus,
    delivery: Delivery,
    effect: Effect,
    *,
    max_age: timedelta,
) -> str:
    """Run `effect` at most once for this receipt; returns the outcome for the log."""
    started = time.monotonic()
    owner = f"{delivery.message_id}:{uuid.uuid4().hex[:12]}"
    context: dict[str, Any] = {"messageId": delivery.message_id}

    def note(message: str, severity: str = "INFO", **fields: Any) -> None:
        elapsed = round((time.monotonic() - started) * 1000, 1)
        log(
            message,
            severity=severity,
            trace=delivery.trace,
            labels=delivery.labels,
            elapsedMs=elapsed,
            **context,
            **fields,
        )

    run = store.run_mode(delivery.run_id)
    if run is None:
        note("no such run: message dropped", severity="ERROR", outcome="dropped")
        return "dropped"
    try:
        claim = store.claim(
            delivery.run_id,
            delivery.lead_doc_id,
            delivery.action,
            owner,
            created=decode_version(delivery.versions.get(delivery.action)),
        )
    except ReceiptMissing:
        note("no receipt for this action: message dropped", severity="ERROR", outcome="dropped")
        return "dropped"
    except LeaseHeld as exc:
        note("another delivery holds the lease; retry later", severity="WARNING", outcome="busy")
        raise Retry("lease held") from exc
    except gexc.GoogleAPICallError as exc:
        # e.g. ABORTED while a crashed instance's transaction still locks the receipt.
        note(f"could not claim the receipt: {exc!r}", severity="WARNING", outcome="retry")
        raise Retry("claim failed") from exc
    context["attempt"] = claim.attempt
    if claim.terminal:
        note("already terminal: nothing to do", outcome="duplicate")
        return "duplicate"
    # The lead as schedule wrote it, carried by the message, holds only while the receipt is
    # still as schedule created it in the same commit (decision 0006); else read it.
    lead_doc, lead = None, None
    if claim.fresh and delivery.lead_doc is not None:
        lead_doc, lead = delivery.lead_doc, _lead_of(delivery.lead_doc)
    if lead is None:
        lead_doc = store.get_lead(delivery.run_id, delivery.lead_doc_id)
        lead = _lead_of(lead_doc) if lead_doc is not None else None
    if lead_doc is None or lead is None:
        # Schedule writes a lead with its receipts, so this is damage, not a race: say so in
        # the receipt rather than leave it pending for the sweeper to publish again and again.
        fields = failed(
            "permanent_error", "lead_missing", "the lead document is missing or invalid"
        )
        store.finish(delivery.run_id, delivery.lead_doc_id, delivery.action, fields, claim=claim)
        note("no readable lead: recorded as failed", severity="ERROR", outcome="permanent_error")
        return "permanent_error"
    settings = store.lead_settings(delivery.run_id, lead_doc)

    now = datetime.now(UTC)
    if delivery.publish_time and now - delivery.publish_time > max_age:
        fields = failed("expired", "expired", f"message older than {max_age}; replay to retry")
        store.finish(delivery.run_id, delivery.lead_doc_id, delivery.action, fields, claim=claim)
        if delivery.action == "calendar":
            settle_email_after_calendar(store, delivery, settings, "calendar_failed")
        note("message too old: recorded and dropped", severity="WARNING", outcome="expired")
        return "expired"

    work = Work(
        delivery=delivery,
        run=run,
        lead_doc=lead_doc,
        lead=lead,
        settings=settings,
        claim=claim,
        store=store,
        bus=bus,
        now=now,
    )

    def give_back(code: str, exc: BaseException, message: str, severity: str = "WARNING") -> None:
        """Release the lease with the error, so the redelivery can go on at once."""
        detail = str(exc) if code != "internal" else f"{type(exc).__name__}: {exc}"
        store.release(
            delivery.run_id,
            delivery.lead_doc_id,
            delivery.action,
            owner,
            {"code": code, "message": detail[:500]},
        )
        note(message, severity=severity, outcome="retry")

    try:
        fields = _with_quick_retries(effect, work, note)
    except PermanentError as exc:
        fields = failed("permanent_error", exc.code, exc.message)
    except Exception as exc:
        if is_transient(exc) or isinstance(exc, Retry):
            give_back("transient", exc, f"transient error, retrying: {exc}")
            raise Retry(str(exc)) from exc
        if not isinstance(exc, HttpError):
            give_back("internal", exc, f"unexpected error: {exc!r}", severity="ERROR")
            raise
        permanent = as_permanent(exc)
        fields = failed("permanent_error", permanent.code, permanent.message)
    try:
        if work.follow_ups:
            bus.publish(work.follow_ups, traceparent=delivery.traceparent)
        store.finish(
            delivery.run_id,
            delivery.lead_doc_id,
            delivery.action,
            fields,
            claim=claim,
            settle=work.settle,
        )
    except Exception as exc:
        # The effect is done (and idempotent): let the redelivery record it at once.
        give_back("record_failed", exc, f"recording failed, retrying: {exc!r}")
        raise Retry(str(exc)) from exc
    if fields["status"] == "failed" and delivery.action == "calendar":
        settle_email_after_calendar(store, delivery, settings, "calendar_failed")
    outcome = fields.get("outcome") or fields.get("reason")
    severity = "ERROR" if fields["status"] == "failed" else "INFO"
    note(
        f"{delivery.action} {fields['status']}",
        severity=severity,
        outcome=outcome,
        status=fields["status"],
    )
    return str(outcome)
