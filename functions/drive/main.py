"""Deploy unit `drive`: one Drive folder per lead."""

import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import drive_event


@functions_framework.cloud_event
def drive(event: CloudEvent) -> None:
    """Create one lead's folder (lead-drive)."""
    drive_event(event)
