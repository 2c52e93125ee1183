"""Deploy unit `notify`: confirmation emails and availability drafts."""

import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import notify_event


@functions_framework.cloud_event
def notify(event: CloudEvent) -> None:
    """Send or draft one lead's email (lead-notify)."""
    notify_event(event)
