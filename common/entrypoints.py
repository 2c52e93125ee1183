"""What the functions' `main.py` files call: HTTP and CloudEvent plumbing around the handlers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
from cloudevents.http import CloudEvent
from pydantic import ValidationError

from common.auth import CertificatesUnavailable, Unauthenticated
from common.bootstrap import app
from common.handlers.book import book
from common.handlers.control import handle_control
from common.handlers.dead_letter import handle_dead_letter
from common.handlers.delivery import Delivery, Effect, Retry, handle_delivery
from common.handlers.diagnostics import (
    handle_diagnostics_get,
    handle_diagnostics_post,
    handle_leads_get,
)
from common.handlers.drive import drive
from common.handlers.intake import HttpResult, error, handle_schedule
from common.handlers.notify import notify
from common.handlers.revert import REVERTS
from common.handlers.sweep import sweep
from common.log import log, trace_field
from common.models import LeadMessage, parse_time
from common.ops_page import ops_http, ops_route

MAX_BODY = 1024 * 1024
# What the web client sends beyond the CORS-safelisted headers. Nothing is exposed: the client
# reads only the status and the JSON body, which CORS always lets it read.
CORS_HEADERS = ("Authorization", "Content-Type")
CORS_MAX_AGE_S = 3600
Handler = Callable[[str, flask.Request], HttpResult]


def _cors(request: flask.Request, methods: str) -> tuple[dict[str, str], bool]:
    """CORS headers for this request, and whether its origin (if any) is one we allow."""
    origin = request.headers.get("Origin")
    if origin is None:
        return {}, True
    if origin not in app().settings.allowed_origins:
        return {"Vary": "Origin"}, False
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}, True


def _preflight(request: flask.Request, methods: list[str], cors: dict[str, str]) -> flask.Response:
    """Answer `OPTIONS`: 204 with what the origin may do, or 403 for anything we would refuse."""
    if "Access-Control-Allow-Origin" not in cors:
        return _json(error(403, "forbidden", "origin not allowed"), cors)
    wanted = request.headers.get("Access-Control-Request-Method", "")
    if wanted not in methods:
        message = f"method {wanted or '(none)'} not allowed; use {', '.join(methods)}"
        return _json(error(403, "forbidden", message), {"Vary": "Origin"})
    allowed = {name.lower() for name in CORS_HEADERS}
    asked = request.headers.get("Access-Control-Request-Headers", "")
    extra = [h.strip() for h in asked.split(",") if h.strip() and h.strip().lower() not in allowed]
    if extra:
        message = f"headers not allowed: {', '.join(extra)}"
        return _json(error(403, "forbidden", message), {"Vary": "Origin"})
    headers = {
        **cors,
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": ", ".join(CORS_HEADERS),
        "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
    }
    return flask.Response(status=204, headers=headers)


def _json(result: HttpResult, extra: dict[str, str]) -> flask.Response:
    response = flask.Response(
        json.dumps(result.body), status=result.status, mimetype="application/json"
    )
    for key, value in {**extra, **result.headers}.items():
        response.headers[key] = value
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _body(request: flask.Request) -> bytes | None:
    """The body, or None if it is over the limit (checked before it is all read)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    data = request.stream.read(MAX_BODY + 1)
    return None if len(data) > MAX_BODY else data


def serve_http(request: flask.Request, handlers: dict[str, Handler]) -> flask.Response:
    """Method, CORS, size and auth checks, then the handler; every answer is JSON."""
    try:
        return _serve_http(request, handlers)
    except Exception as exc:  # even a broken configuration answers JSON
        log(f"internal error: {exc!r}", severity="ERROR")
        return _json(error(500, "internal", "internal error; nothing was lost, retry"), {})


def _serve_http(request: flask.Request, handlers: dict[str, Handler]) -> flask.Response:
    methods = list(handlers)
    cors, origin_ok = _cors(request, ", ".join(methods))
    if request.method == "OPTIONS":
        return _preflight(request, methods, cors)
    if not origin_ok:
        return _json(error(403, "forbidden", "origin not allowed"), cors)
    handler = handlers.get(request.method)
    if handler is None:
        result = error(405, "method_not_allowed", f"use {' or '.join(handlers)}")
        return _json(result, {**cors, "Allow": ", ".join([*methods, "OPTIONS"])})
    trace = trace_field(
        app().settings.project,
        request.headers.get("traceparent"),
        request.headers.get("X-Cloud-Trace-Context"),
    )
    try:
        uid = app().verifier.uid(request.headers.get("Authorization"))
    except Unauthenticated as exc:
        headers = {**cors, "WWW-Authenticate": 'Bearer error="invalid_token"'}
        return _json(error(401, "unauthenticated", str(exc)), headers)
    except CertificatesUnavailable as exc:
        log(f"token not checked: {exc}", severity="ERROR", trace=trace)
        return _json(error(503, "unavailable", "cannot check tokens right now; retry"), cors)
    try:
        return _json(handler(uid, request), cors)
    except Exception as exc:
        log(f"internal error: {exc!r}", severity="ERROR", trace=trace)
        return _json(error(500, "internal", "internal error; nothing was lost, retry"), cors)


def _too_large() -> HttpResult:
    return error(
        413,
        "payload_too_large",
        "the body is over 1 MiB",
        [{"field": "body", "message": f"must be at most {MAX_BODY} bytes"}],
    )


def _schedule_post(uid: str, request: flask.Request) -> HttpResult:
    body = _body(request)
    if body is None:
        return _too_large()
    traceparent = request.headers.get("traceparent")
    trace = trace_field(app().settings.project, traceparent)
    return handle_schedule(
        app().store,
        app().bus,
        uid,
        body,
        trace,
        hosts=app().settings.hosts,
        traceparent=traceparent,
        pace=app().pace,
    )


def schedule_http(request: flask.Request) -> flask.Response:
    """HTTP entry of `schedule`."""
    return serve_http(request, {"POST": _schedule_post})


def _control_post(uid: str, request: flask.Request) -> HttpResult:
    body = _body(request)
    if body is None:
        return _too_large()
    return handle_control(
        app().store,
        app().bus,
        app().pace,
        uid,
        body,
        app().clock.now(),
        app().settings.operator_uids,
    )


def control_http(request: flask.Request) -> flask.Response:
    """HTTP entry of `control`: steer a run (docs/api.md, "Control")."""
    return serve_http(request, {"POST": _control_post})


def _diagnostics_post(uid: str, request: flask.Request) -> HttpResult:
    body = _body(request)
    if body is None:
        return _too_large()
    return handle_diagnostics_post(app().store, uid, body, app().clock.now())


def diagnostics_http(request: flask.Request, ops_assets: Path | None = None) -> flask.Response:
    """HTTP entry of `diagnostics`: `/leads` pages a run's leads, `/ops` is the Operations page
    (its files in `ops_assets`), any other path the run's funnel."""
    if ops_assets is not None and ops_route(request.path) is not None:
        try:
            return ops_http(request, app().settings, ops_assets)
        except Exception as exc:
            log(f"internal error: {exc!r}", severity="ERROR")
            return _json(error(500, "internal", "internal error; retry"), {})
    if request.path.rstrip("/").endswith("/leads"):
        return serve_http(
            request,
            {
                "GET": lambda uid, req: handle_leads_get(
                    app().store, uid, dict(req.args), app().settings.operator_uids
                )
            },
        )
    return serve_http(
        request,
        {
            "GET": lambda uid, req: handle_diagnostics_get(
                app().store, uid, dict(req.args), app().clock.now(), app().settings.operator_uids
            ),
            "POST": _diagnostics_post,
        },
    )


def decode_delivery(event: CloudEvent) -> Delivery | None:
    """The lead action of a Pub/Sub push CloudEvent, or None if it is not one of ours."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    message = data.get("message") or {}
    attributes = message.get("attributes") or {}
    try:
        payload = json.loads(base64.b64decode(message.get("data") or "") or b"{}")
        payload = {**{k: attributes.get(k) for k in ("runId", "leadDocId", "action")}, **payload}
        parsed = LeadMessage.model_validate(payload)
    except (ValueError, binascii.Error, ValidationError) as exc:
        log(
            f"undecodable message dropped: {exc}",
            severity="ERROR",
            messageId=message.get("messageId") or message.get("message_id"),
        )
        return None
    published = message.get("publishTime") or message.get("publish_time")
    traceparent = attributes.get("traceparent") or event.get_attributes().get("traceparent")
    return Delivery(
        run_id=parsed.runId,
        lead_doc_id=parsed.leadDocId,
        action=parsed.action,
        message_id=str(message.get("messageId") or message.get("message_id") or event["id"]),
        publish_time=parse_time(published) if published else None,
        booking=parsed.booking,
        trace=trace_field(app().settings.project, traceparent),
        traceparent=traceparent,
    )


def _deliver(event: CloudEvent, action: str, effect: Effect) -> None:
    delivery = decode_delivery(event)
    if delivery is None:
        return
    if delivery.action != action:
        log(
            f"{delivery.action} message on the {action} subscription dropped",
            severity="ERROR",
            labels=delivery.labels,
            messageId=delivery.message_id,
        )
        return
    try:
        handle_delivery(app().deps, delivery, effect, REVERTS[action])
    except Retry as exc:
        # Raising makes functions-framework answer 500, so Pub/Sub redelivers with backoff.
        raise RuntimeError(f"retry: {exc}") from exc


def book_event(event: CloudEvent) -> None:
    """CloudEvent entry of `book` (lead-calendar)."""
    _deliver(event, "calendar", book)


def notify_event(event: CloudEvent) -> None:
    """CloudEvent entry of `notify` (lead-notify)."""
    _deliver(event, "email", notify)


def drive_event(event: CloudEvent) -> None:
    """CloudEvent entry of `drive` (lead-drive)."""
    _deliver(event, "drive", drive)


def dead_letter_event(event: CloudEvent) -> None:
    """CloudEvent entry of `dead-letter` (lead-dead-letter)."""
    delivery = decode_delivery(event)
    if delivery is None:
        return
    attributes = ((event.data or {}).get("message") or {}).get("attributes") or {}
    attempts = attributes.get("CloudPubSubDeadLetterSourceDeliveryCount")
    handle_dead_letter(app().store, delivery, attempts, app().clock.now())


def sweep_event(event: CloudEvent) -> None:
    """CloudEvent entry of `sweep` (lead-sweep, published by Cloud Scheduler)."""
    config = app().settings
    sweep(
        app().store,
        app().bus,
        app().pace,
        stale_after=timedelta(seconds=config.sweep_stale_s),
        loop_s=config.sweep_loop_s,
        clock=app().clock.now,
        sleep=app().clock.sleep,
    )
