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
        changed = receipts.finish(d.run_id, d.lead_doc_id, d.action, fields)
    except ReceiptMissing:
        log(
            "dead letter for an unknown receipt",
            severity="ERROR",
            labels=d.labels,
            messageId=d.message_id,
        )
        return "dropped"
    booking_failed = changed and d.action == "calendar" and _failed(receipts, d)
    lead = receipts.get_lead(d.run_id, d.lead_doc_id) if booking_failed else None
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


def _failed(receipts: Receipts, d: Delivery) -> bool:
    """Whether the dead letter failed the booking (a dead revert leaves it done)."""
    receipt = receipts.get_receipt(d.run_id, d.lead_doc_id, d.action)
    return receipt is not None and receipt.status is Status.FAILED
