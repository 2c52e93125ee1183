"""More push loops for the local stack: Pub/Sub push, many messages in flight, as in production.

The Pub/Sub emulator pushes each subscription's messages through two loops, each waiting for its
endpoint's answer, so at most two deliveries of a function run at once. Production push keeps
many in flight and Cloud Run takes up to 80 requests an instance. With two, every wait a delivery
makes in process (a Meet link still `pending`, a start in the host's lane a moment away) stalls
half of a function's intake, and the local stack measures the emulator, not the pipeline
(docs/decisions/0010).

This process adds `--lanes` loops per push subscription beside the emulator's own. Each pulls one
message, POSTs it to the endpoint the subscription names, in the body push sends, and acknowledges
a 2xx; anything else is a nack, which the emulator redelivers after the subscription's retry
backoff and dead-letters at its 10th attempt, as it does its own failed pushes. The subscriptions
stay push subscriptions: a subscription that is turned into a pull one (`push_config` emptied)
is left alone, and a message pulled meanwhile is given back at once.

`python -m leadrun.pusher --port P --project ID --lanes N` (PUBSUB_EMULATOR_HOST set); `GET /`
answers how many messages it pushed.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import requests

from common.models import stamp
from leadrun import helper

PULL_TIMEOUT_S = 10.0  # an empty pull returns after this; then the loop looks again
LIST_EVERY_S = 1.0  # how often the subscriptions and their endpoints are read again
PUSH_TIMEOUT_S = 600.0  # a function's own timeout ends a delivery first


def envelope(subscription: str, received: Any) -> dict[str, Any]:
    """The JSON body Pub/Sub push POSTs for one received message."""
    message = received.message
    published = stamp(message.publish_time)
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": subscription,
    }
    if received.delivery_attempt:
        body["deliveryAttempt"] = received.delivery_attempt
    return body


class Pusher:
    """The loops of every push subscription of one project."""

    def __init__(self, subscriber: Any, project: str, lanes: int) -> None:
        self.subscriber, self.project, self.lanes = subscriber, project, lanes
        self.endpoints: dict[str, str] = {}  # subscription path -> push endpoint, as last read
        self.pushed = 0
        self._started: set[str] = set()
        self._lock = threading.Lock()

    def watch(self) -> None:
        """Read the subscriptions every `LIST_EVERY_S`; start loops for each new push one."""
        while True:
            try:
                listed = self.subscriber.list_subscriptions(
                    request={"project": f"projects/{self.project}"}
                )
                self.endpoints = {
                    s.name: s.push_config.push_endpoint
                    for s in listed
                    if s.push_config.push_endpoint
                }
            except Exception as exc:  # the emulator restarting: read again shortly
                print(f"pusher: listing subscriptions failed: {exc!r}", flush=True)
            for name in self.endpoints.keys() - self._started:
                self._started.add(name)
                for _ in range(self.lanes):
                    threading.Thread(target=self.loop, args=(name,), daemon=True).start()
            time.sleep(LIST_EVERY_S)

    def loop(self, subscription: str) -> None:
        """Pull one message, push it, acknowledge or nack; for as long as the process lives."""
        session = requests.Session()
        while True:
            if subscription not in self.endpoints:  # turned into a pull subscription, or gone
                time.sleep(LIST_EVERY_S)
                continue
            try:
                answer = self.subscriber.pull(
                    request={"subscription": subscription, "max_messages": 1},
                    timeout=PULL_TIMEOUT_S,
                )
            except Exception:  # nothing to pull within the timeout, or a deleted subscription
                time.sleep(0.2)
                continue
            for received in answer.received_messages:
                self._push(session, subscription, received)

    def _push(self, session: requests.Session, subscription: str, received: Any) -> None:
        url = self.endpoints.get(subscription)
        status = 0
        if url:
            try:
                body = envelope(subscription, received)
                status = session.post(url, json=body, timeout=PUSH_TIMEOUT_S).status_code
            except requests.RequestException:
                status = 0  # refused or cut off: a failed push, redelivered like any other
        ack = {"subscription": subscription, "ack_ids": [received.ack_id]}
        try:
            if 200 <= status < 300:
                self.subscriber.acknowledge(request=ack)
                with self._lock:
                    self.pushed += 1
            else:
                self.subscriber.modify_ack_deadline(request={**ack, "ack_deadline_seconds": 0})
        except Exception as exc:  # the ack deadline passes and the message comes again
            print(f"pusher: could not settle a message of {subscription}: {exc!r}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve health and push."""
    parser = helper.arguments(__doc__)
    parser.add_argument("--lanes", type=int, default=8)
    args = parser.parse_args(argv)
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    pusher = Pusher(pubsub_v1.SubscriberClient(), args.project, args.lanes)
    threading.Thread(target=pusher.watch, daemon=True).start()
    print(f"pusher ready: {args.lanes} loops per push subscription", flush=True)
    helper.serve_status(
        args.host,
        args.port,
        lambda: {
            "subscriptions": len(pusher.endpoints),
            "lanes": args.lanes,
            "pushed": pusher.pushed,
        },
    )


if __name__ == "__main__":
    main()
