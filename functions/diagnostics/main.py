"""Deploy unit `diagnostics`: the run funnel, the dead-letter subscriber and the sweeper."""

import flask
import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import dead_letter_event, diagnostics_http, sweep_event


@functions_framework.http
def diagnostics(request: flask.Request) -> flask.Response:
    """GET or POST a run's diagnostics (docs/api.md, "Diagnostics")."""
    return diagnostics_http(request)


@functions_framework.cloud_event
def dead_letter(event: CloudEvent) -> None:
    """Mark a dead-lettered action failed (lead-dead-letter)."""
    dead_letter_event(event)


@functions_framework.cloud_event
def sweep(event: CloudEvent) -> None:
    """Re-publish actions whose message was lost (lead-sweep, every few minutes)."""
    sweep_event(event)
