"""Messages Pub/Sub gave up on: their receipts end `failed` with reason `dead_lettered`.

Unless the receipt is on a course of its own: a delivery holds its lease, or it waits for a time
(Google's limit, its start in the lane, a search to catch up) or for a resume. Then the message
that died was a copy (each delivery of a copy met the lease of the one at work, and spent an
attempt), and failing the receipt would tell the user of a failure while its action goes on.
"""

from __future__ import annotations

from datetime import datetime

from common.handlers.delivery import Delivery, close_email_after_failed_booking
from common.log import log
from common.ports import Receipts
from common.receipts import Receipt, Status, failed
from common.runs import ReceiptMissing


def handle_dead_letter(
    receipts: Receipts, delivery: Delivery, attempts: str | None, now: datetime
) -> str:
    """Mark the receipt of a dead-lettered message failed (if nothing finished it meanwhile,
    and it is on no course of its own at `now`)."""
    d = delivery
    fields = failed(
        "dead_lettered",
        "dead_lettered",
        f"Pub/Sub stopped after {attempts or 'the maximum'} delivery attempts",
    )

    def end(receipt: Receipt) -> Receipt | None:
        return None if receipt.on_its_course(now) else receipt.finish(fields)

    try:
        recorded = receipts.record(d.run_id, d.lead_doc_id, d.action, end)
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
        "dead-lettered message recorded"
        if changed
        else "dead letter for a settled or busy receipt: left as it is",
        severity="ERROR" if changed else "INFO",
        labels=d.labels,
        messageId=d.message_id,
        outcome="dead_lettered" if changed else "duplicate",
    )
    return "dead_lettered" if changed else "duplicate"
