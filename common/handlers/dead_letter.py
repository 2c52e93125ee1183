"""Messages Pub/Sub gave up on: their receipts end `failed` with reason `dead_lettered`."""

from __future__ import annotations

from common.handlers.delivery import Delivery, failed, settle_email_after_calendar
from common.log import log
from common.store import FirestoreStore, ReceiptMissing


def handle_dead_letter(store: FirestoreStore, delivery: Delivery, attempts: str | None) -> str:
    """Mark the receipt of a dead-lettered message failed (if nothing finished it meanwhile)."""
    fields = failed(
        "dead_lettered",
        "dead_lettered",
        f"Pub/Sub stopped after {attempts or 'the maximum'} delivery attempts",
    )
    try:
        changed = store.finish(delivery.run_id, delivery.lead_doc_id, delivery.action, fields)
    except ReceiptMissing:
        log(
            "dead letter for an unknown receipt",
            severity="ERROR",
            labels=delivery.labels,
            messageId=delivery.message_id,
        )
        return "dropped"
    if changed and delivery.action == "calendar":
        lead = store.get_lead(delivery.run_id, delivery.lead_doc_id)
        if lead:
            settings = store.lead_settings(delivery.run_id, lead)
            settle_email_after_calendar(store, delivery, settings, "calendar_failed")
    log(
        "dead-lettered message recorded" if changed else "dead letter for a settled receipt",
        severity="ERROR" if changed else "INFO",
        labels=delivery.labels,
        messageId=delivery.message_id,
        outcome="dead_lettered" if changed else "duplicate",
    )
    return "dead_lettered" if changed else "duplicate"
