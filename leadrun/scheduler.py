"""The local stack's stand-in for Cloud Scheduler: publishes to `lead-sweep` on a fixed period.

`python -m leadrun.scheduler --port P --project ID --every SECONDS` (PUBSUB_EMULATOR_HOST set).
It answers `GET /` with its tick count so the stack can tell it is up.
"""

from __future__ import annotations

import threading
import time

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from common.topology import TOPIC_SWEEP
from leadrun import helper


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
    parser = helper.arguments(__doc__)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args(argv)
    ticks = [0]
    threading.Thread(
        target=tick_forever, args=(args.project, args.every, ticks), daemon=True
    ).start()
    print(f"scheduler ready: {TOPIC_SWEEP} every {args.every:g}s", flush=True)
    helper.serve_status(
        args.host,
        args.port,
        lambda: {"topic": TOPIC_SWEEP, "everyS": args.every, "ticks": ticks[0]},
    )


if __name__ == "__main__":
    main()
