"""Deploy unit `schedule`: the HTTP intake and the calendar booking subscriber."""

import flask
import functions_framework
from cloudevents.http import CloudEvent

from common.entrypoints import book_event, schedule_http


@functions_framework.http
def schedule(request: flask.Request) -> flask.Response:
    """POST a lead run (docs/api.md, "Schedule")."""
    return schedule_http(request)


@functions_framework.cloud_event
def book(event: CloudEvent) -> None:
    """Book one lead's meeting (lead-calendar)."""
    book_event(event)
