"""What the local stack's helper processes (`leadrun.scheduler`, `leadrun.pusher`) share: their
command line and the `GET /` that tells the stack they are up."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def arguments(description: str | None) -> argparse.ArgumentParser:
    """`--host`, `--port` (required) and `--project` (required); add the helper's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    return parser


def serve_status(host: str, port: int, status: Callable[[], dict[str, Any]]) -> None:
    """Answer `GET /` with `status()` as JSON, forever."""

    class Status(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(status())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *values: object) -> None:
            return

    ThreadingHTTPServer((host, port), Status).serve_forever()
