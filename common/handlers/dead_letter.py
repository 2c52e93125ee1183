"""Messages Pub/Sub gave up on: their receipts end `failed` with reason `dead_lettered`."""

from __future__ import annotations

from common.handlers.delivery import Delivery, close_email_after_failed_booking
from common.log import log
from common.ports import Receipts
from common.receipts import Status, failed
from common.runs import ReceiptMissing


def handle_dead_letter(receipts: Receipts, delivery: Delivery, attempts: str | None) -> str:
    """Mark the receipt of a dead-lettered message failed (if nothing finished it meanwhile)."""
    d = delivery
    fields = failed(
        "dead_lettered",
        "dead_lettered",
        f"Pub/Sub stopped after {attempts or 'the maximum'} delivery attempts",
    )
    try:
        recorded = receipts.record(d.run_id, d.lead_doc_id, d.action, lambda r: r.finish(fields))
    except ReceiptMissing:
        log(
            "dead letter for an unknown receipt",
            severity="ERROR",
            labels=d.labels,
            messageId=d.message_id,
        )
        return "dropped"
    changed = recorded is not None
    # A dead revert leaves the booking done: only a failed booking closes its email.
    failed_booking = (
        d.action == "calendar" and recorded is not None and recorded.status is Status.FAILED
    )
    lead = receipts.get_lead(d.run_id, d.lead_doc_id) if failed_booking else None
    if lead:
        settings = receipts.lead_settings(d.run_id, lead)
        close_email_after_failed_booking(receipts, d.run_id, d.lead_doc_id, settings)
    log(
        "dead-lettered message recorded" if changed else "dead letter for a settled receipt",
        severity="ERROR" if changed else "INFO",
        labels=d.labels,
        messageId=d.message_id,
        outcome="dead_lettered" if changed else "duplicate",
    )
    return "dead_lettered" if changed else "duplicate"
