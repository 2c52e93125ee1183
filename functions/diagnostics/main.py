"""Deploy unit `diagnostics`: the run funnel, the Operations page, the dead-letter subscriber
and the sweeper."""

from pathlib import Path

import flask
import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import dead_letter_event, diagnostics_http, sweep_event

# The Operations page's files, shipped beside this module (docs/api.md, "Operations page").
OPS_ASSETS = Path(__file__).resolve().with_name("ops")


@functions_framework.http
def diagnostics(request: flask.Request) -> flask.Response:
    """GET or POST a run's diagnostics, or the Operations page (docs/api.md, "Diagnostics")."""
    return diagnostics_http(request, OPS_ASSETS)


@functions_framework.cloud_event
def dead_letter(event: CloudEvent) -> None:
    """Mark a dead-lettered action failed (lead-dead-letter)."""
    dead_letter_event(event)


@functions_framework.cloud_event
def sweep(event: CloudEvent) -> None:
    """Re-publish actions whose message was lost (lead-sweep, every few minutes)."""
    sweep_event(event)
