"""Deploy unit `schedule`: the HTTP intake, steering a run, and the calendar booking subscriber."""

import flask
import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import book_event, control_http, schedule_http


@functions_framework.http
def schedule(request: flask.Request) -> flask.Response:
    """POST a lead run (docs/api.md, "Schedule")."""
    return schedule_http(request)


@functions_framework.http
def control(request: flask.Request) -> flask.Response:
    """Pause, resume, cancel or replay a lead run (docs/api.md, "Control")."""
    return control_http(request)


@functions_framework.cloud_event
def book(event: CloudEvent) -> None:
    """Book one lead's meeting (lead-calendar)."""
    book_event(event)
