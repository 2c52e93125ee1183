"""HTTP server: routes Google API paths to the handlers and serves ``/_sandbox/*`` controls."""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import calendar_api, drive_api, gmail_api
from sandbox.discovery import Discovery, Route
from sandbox.drive_api import DEFAULT_FIELDS
from sandbox.errors import ApiError, bad_request
from sandbox.fields import apply_fields, parse_fields
from sandbox.identity import acting_user
from sandbox.limits import NO_LIMITS, LimitsError, parse_limits
from sandbox.state import ApiCall, FaultRule, Handler, SandboxState
from sandbox.tokens import TokenIssuer

JSON_TYPE = "application/json; charset=UTF-8"
MAX_BODY = 64 * 1024 * 1024
Answer = tuple[int, Any, dict[str, str]]


class ControlError(Exception):
    """A 4xx answer to a malformed ``/_sandbox/*`` request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Sandbox:
    """The application: state, routing, fault injection, tokens. Independent of the transport."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.state = SandboxState()
        self.discovery = Discovery()
        self.tokens = TokenIssuer(project)
        self.handlers: dict[str, Handler] = {
            **calendar_api.HANDLERS,
            **gmail_api.HANDLERS,
            **drive_api.HANDLERS,
        }

    def dispatch(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Answer:
        """Answer one HTTP request: ``(status, JSON-able body or None, extra headers)``."""
        try:
            if path == "/_sandbox" or path.startswith("/_sandbox/"):
                return self._control(method, path, body)
            return self._api(method, path, query, headers, body)
        except ApiError as exc:
            return exc.code, exc.body(), exc.headers
        except ControlError as exc:
            return exc.status, {"error": {"code": exc.status, "message": exc.message}}, {}
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            err = ApiError(500, f"Sandbox internal error: {exc}", "backendError")
            return 500, err.body(), {}

    # ---- Google API calls -------------------------------------------------------------------

    def _api(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Answer:
        route = self.discovery.route(method, path)
        if route is None:
            raise ApiError(404, f"Not Found: {method} {path}", "notFound")
        method_id = route.spec.id
        self.state.count_call(method_id)
        user = acting_user(headers)
        params = self.discovery.validate_query(route.spec, parse_qs(query, keep_blank_values=True))
        payload = self._body(route, params, headers, body)
        self.discovery.validate_body(route.spec, payload)
        # a bad mask is refused before the call has any effect, as Google refuses it
        mask = parse_fields(str(params.get("fields") or DEFAULT_FIELDS.get(method_id, "")))
        self.discovery.validate_fields(route.spec, mask)
        handler = self.handlers.get(method_id)
        if handler is None:
            raise ApiError(501, f"{method_id} is not implemented by the sandbox", "notImplemented")
        call = ApiCall(method_id, route.params, params, payload, user)
        admission = self.state.admit(method_id, user, payload)
        effect = False  # without an effect, the sends and invites admission charged go back
        try:
            # inside the admission, so a slow call holds its user's concurrency slot meanwhile
            latency = self.state.latency_ms
            if latency > 0:
                time.sleep(latency / 1000.0)
            fired = self.state.roll_faults(method_id)
            before = [rule for rule in fired if not rule.after_effect]
            if before:
                raise before[0].error()
            try:
                result = handler(self.state, call)
            except ApiError:
                if fired:
                    raise fired[0].error() from None
                raise
            effect = True
            if fired:
                raise fired[0].error()
        finally:
            self.state.settle(admission, effect)
        if method_id.endswith(".delete"):
            return 204, None, {}
        return 200, apply_fields(result, mask), {}

    def _body(self, route: Route, params: dict[str, Any], headers: Any, body: bytes) -> Any:
        content_type = str(headers.get("Content-Type") or "")
        if route.upload:
            return self._upload_body(route, params, content_type, body)
        if not body.strip():
            return {} if route.spec.request_ref else None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise bad_request(f"Invalid JSON payload received. {exc}", "parseError") from None

    def _upload_body(
        self, route: Route, params: dict[str, Any], content_type: str, body: bytes
    ) -> Any:
        metadata: dict[str, Any] = {}
        media = body
        if params.get("uploadType") == "multipart" or content_type.startswith("multipart/"):
            head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
            parsed = email.message_from_bytes(head + body, policy=email.policy.compat32)
            parts = parsed.get_payload()
            if not isinstance(parts, list) or len(parts) != 2:
                raise bad_request("Invalid multipart upload", "badContent")
            meta_bytes = _part_bytes(parts[0])
            metadata = json.loads(meta_bytes) if meta_bytes.strip() else {}
            media = _part_bytes(parts[1])
        if route.spec.api == "gmail":
            raw = gmail_api.encode_raw(media)
            if ".drafts." in route.spec.id:
                metadata.setdefault("message", {})["raw"] = raw
            else:
                metadata["raw"] = raw
        return metadata

    # ---- control endpoints ------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> Answer:
        key = (method, path.rstrip("/"))
        data = _json_object(body) if method in ("POST", "PUT") else {}
        state = self.state
        if key == ("GET", "/_sandbox/health"):
            return 200, {"ok": True, "project": self.project}, {}
        if key == ("GET", "/_sandbox/state"):
            calendar_api.settle_conferences(state)
            return 200, state.snapshot(), {}
        if key == ("GET", "/_sandbox/limits"):
            with state.lock:
                return 200, state.limits.document, {}
        if key == ("POST", "/_sandbox/limits"):
            try:
                limits = parse_limits(data)
            except LimitsError as exc:
                raise ControlError(400, f"invalid limits: {exc}") from None
            state.set_limits(limits)
            return 200, {"ok": True, "limits": limits.document}, {}
        if key == ("DELETE", "/_sandbox/limits"):
            state.set_limits(NO_LIMITS)
            return 200, {"ok": True}, {}
        if key == ("POST", "/_sandbox/reset"):
            state.reset()
            return 200, {"ok": True}, {}
        if key == ("POST", "/_sandbox/busy"):
            for name in ("calendarId", "start", "end"):
                if not isinstance(data.get(name), str):
                    raise ControlError(400, f"busy needs a string {name}")
            calendar_api.add_busy(state, data["calendarId"], data["start"], data["end"])
            return 200, {"ok": True}, {}
        if key == ("POST", "/_sandbox/faults"):
            rule = _fault_rule(data)
            state.add_fault(rule)
            return 200, {"ok": True, "rule": rule.describe()}, {}
        if key == ("GET", "/_sandbox/faults"):
            with state.lock:
                return 200, {"faults": [f.describe() for f in state.faults]}, {}
        if key == ("DELETE", "/_sandbox/faults"):
            state.clear_faults()
            return 200, {"ok": True}, {}
        if key == ("POST", "/_sandbox/faults/seed"):
            state.seed(data.get("seed"))
            return 200, {"ok": True}, {}
        if key == ("POST", "/_sandbox/latency"):
            ms = data.get("ms", 0)
            if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
                raise ControlError(400, "latency needs a number ms >= 0")
            state.latency_ms = float(ms)
            return 200, {"ok": True, "ms": state.latency_ms}, {}
        if key == ("POST", "/_sandbox/token"):
            uid, claims = data.get("uid"), data.get("claims") or {}
            if not isinstance(uid, str) or not isinstance(claims, dict):
                raise ControlError(400, 'token needs {"uid": str, "claims": {optional}}')
            token = self.tokens.mint(uid, claims, unknown_key=bool(data.get("unknownKey")))
            return 200, {"idToken": token}, {}
        if key == ("GET", "/_sandbox/certs"):
            expires = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
            headers = {"Cache-Control": "public, max-age=3600", "Expires": expires}
            return 200, self.tokens.certs(), headers
        raise ControlError(404, f"no control endpoint {method} {path}")


def _part_bytes(part: Any) -> bytes:
    data = part.get_payload(decode=True) if isinstance(part, email.message.Message) else None
    return data if isinstance(data, bytes) else b""


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise ControlError(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


def _fault_rule(data: dict[str, Any]) -> FaultRule:
    method, status = data.get("method"), data.get("status")
    rate = data.get("rate", 1.0)
    count = data.get("count")
    if not isinstance(method, str) or not method:
        raise ControlError(400, "fault needs a method id (glob allowed)")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise ControlError(400, "fault needs an HTTP status 400..599")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ControlError(400, "fault rate must be a number in [0, 1]")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise ControlError(400, "fault count must be a non-negative integer")
    reason, message = data.get("reason"), data.get("message")
    return FaultRule(
        method=method,
        status=status,
        rate=float(rate),
        after_effect=bool(data.get("afterEffect", False)),
        reason=str(reason) if reason else None,
        count=count,
        message=str(message) if message else None,
    )


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WorkspaceSandbox/1.0"
    timeout = 600
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed after each request)
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(413, {"error": {"code": 413, "message": "Bad or too large body"}}, {})
            return
        url = urlsplit(self.path)
        status, payload, headers = self.server.app.dispatch(
            self.command, url.path, url.query, self.headers, body
        )
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", JSON_TYPE)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that remembers its open connections so ``stop`` can close them."""

    daemon_threads = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], app: Sandbox) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection and remember it."""
        sock, addr = super().get_request()
        with self._conn_lock:
            self._connections.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        """Forget and close a finished connection."""
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close every open keep-alive connection (used when stopping)."""
        with self._conn_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def url(self) -> str:
        """The base URL clients use (``http://host:port``)."""
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"


def make_server(
    host: str = "127.0.0.1", port: int = 0, project: str = "demo-leadrun"
) -> SandboxHTTPServer:
    """Create (bind) a sandbox server without starting it; ``port=0`` picks a free port."""
    return SandboxHTTPServer((host, port), Sandbox(project))


def start_sandbox(
    host: str = "127.0.0.1", port: int = 0, project: str = "demo-leadrun"
) -> tuple[str, Callable[[], None]]:
    """Start a sandbox in a background thread; return ``(url, stop)``."""
    server = make_server(host, port, project)
    thread = threading.Thread(target=server.serve_forever, name="workspace-sandbox", daemon=True)
    thread.start()

    def stop() -> None:
        """Stop serving, close connections and the listening socket."""
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)

    return server.url, stop
