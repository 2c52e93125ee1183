"""Deploy unit `diagnostics`: the run funnel, and the dead-letter subscriber."""

import flask
import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import dead_letter_event, diagnostics_http


@functions_framework.http
def diagnostics(request: flask.Request) -> flask.Response:
    """GET or POST a run's diagnostics (CONTRACT §6)."""
    return diagnostics_http(request)


@functions_framework.cloud_event
def dead_letter(event: CloudEvent) -> None:
    """Mark a dead-lettered action failed (lead-dead-letter)."""
    dead_letter_event(event)
