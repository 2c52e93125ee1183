"""The local stack's stand-in for Cloud Scheduler: publishes to `lead-sweep` on a fixed period.

`python -m leadrun.scheduler --port P --project ID --every SECONDS` (PUBSUB_EMULATOR_HOST set).
It answers `GET /` with its tick count so the stack can tell it is up.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from common.topology import TOPIC_SWEEP


def tick_forever(project: str, every_s: float, ticks: list[int]) -> None:
    """Publish `{}` to lead-sweep every `every_s` seconds; a failed publish waits for the next."""
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(project, TOPIC_SWEEP)
    while True:
        time.sleep(every_s)
        try:
            publisher.publish(topic, b"{}", source="leadrun-scheduler").result(timeout=10)
            ticks[0] += 1
        except Exception as exc:  # the topic may not exist yet while the stack starts
            print(f"scheduler: publish failed: {exc!r}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve health and tick."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args(argv)
    ticks = [0]

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"topic": TOPIC_SWEEP, "everyS": args.every, "ticks": ticks[0]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *values: object) -> None:
            return

    server = ThreadingHTTPServer((args.host, args.port), Health)
    threading.Thread(
        target=tick_forever, args=(args.project, args.every, ticks), daemon=True
    ).start()
    print(f"scheduler ready: {TOPIC_SWEEP} every {args.every:g}s", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
