"""Pub/Sub from leadrun: clients for a stack's environment, and the local stack's topology.

`pubsub_clients(env)` serves the operator CLI (replay, seek, redrive: production or emulator),
the local stack (creating and deleting topics and subscriptions), the benchmark and the tests.
The local stack's subscriptions carry the production retry and dead-letter policy
(`common.topology`), with the backoff shortened for local runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from common import topology
from leadrun.emulators import emulator_address
from leadrun.stack_config import DEAD_LETTER_AUDIT_SUBSCRIPTION, HOST, retry_backoff

if TYPE_CHECKING:
    from common.bus import PubSubBus


@contextlib.contextmanager
def pubsub_clients(env: Mapping[str, str]) -> Iterator[tuple[PubSubBus, Any]]:
    """A publisher bus and a subscriber client for `env` (the emulator when it names one).

    `env` needs `GOOGLE_CLOUD_PROJECT`, and `PUBSUB_EMULATOR_HOST` for an emulator. Besides
    `publish`, `bus.publisher` and the subscriber answer every Pub/Sub admin call
    (`create_topic`, `list_subscriptions`, `pull`, `seek`, ...). Both are closed on the way out.
    """
    # Imported here: the Pub/Sub library takes a while to load, and `leadrun.stack status` and
    # most CLI commands never need it.
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from common.bus import PubSubBus

    # The clients read the emulator address when they are built: set it for exactly that moment.
    with emulator_address("PUBSUB_EMULATOR_HOST", env.get("PUBSUB_EMULATOR_HOST")):
        bus = PubSubBus(env["GOOGLE_CLOUD_PROJECT"])
        _ = bus.publisher
        subscriber = pubsub_v1.SubscriberClient()
    try:
        yield bus, subscriber
    finally:
        subscriber.close()
        bus.publisher.transport.close()


def pubsub_env(pubsub_host: str, project: str) -> dict[str, str]:
    """The part of stack.env that `pubsub_clients` reads, for the emulator at `pubsub_host`."""
    return {"GOOGLE_CLOUD_PROJECT": project, "PUBSUB_EMULATOR_HOST": pubsub_host}


def push_endpoint(project: str, topic: str, port: int) -> str:
    """Push URL of a local function: the path makes functions-framework build a CloudEvent."""
    return f"http://{HOST}:{port}/projects/{project}/topics/{topic}"


def _duration(seconds: float) -> dict[str, int]:
    """A protobuf Duration as a dict."""
    whole = int(seconds)
    return {"seconds": whole, "nanos": round((seconds - whole) * 1e9)}


def subscription_requests(
    project: str,
    function_ports: Mapping[str, int],
    retry_min_s: float,
    retry_max_s: float,
) -> list[dict[str, Any]]:
    """The `Subscription` messages (as dicts) of the local stack, push and audit."""
    dead_letter_topic = f"projects/{project}/topics/{topology.TOPIC_DEAD_LETTER}"
    subs: list[dict[str, Any]] = []
    for spec in topology.FUNCTIONS:
        if spec.signature != "cloudevent" or spec.topic is None or spec.subscription is None:
            continue
        sub: dict[str, Any] = {
            "name": f"projects/{project}/subscriptions/{spec.subscription}",
            "topic": f"projects/{project}/topics/{spec.topic}",
            "push_config": {
                "push_endpoint": push_endpoint(project, spec.topic, function_ports[spec.name])
            },
            "ack_deadline_seconds": spec.ack_deadline_s,
            "retry_policy": {
                "minimum_backoff": _duration(retry_min_s),
                "maximum_backoff": _duration(retry_max_s),
            },
            "retain_acked_messages": True,
            "message_retention_duration": _duration(topology.MESSAGE_RETENTION_S),
        }
        if spec.dead_letter:
            sub["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": topology.MAX_DELIVERY_ATTEMPTS,
            }
        subs.append(sub)
    subs.append(
        {
            "name": f"projects/{project}/subscriptions/{DEAD_LETTER_AUDIT_SUBSCRIPTION}",
            "topic": dead_letter_topic,
            "ack_deadline_seconds": topology.ACK_DEADLINE_S,
            "retain_acked_messages": True,
            "message_retention_duration": _duration(topology.MESSAGE_RETENTION_S),
        }
    )
    return subs


def ensure_topology(
    pubsub_host: str,
    project: str,
    function_ports: Mapping[str, int],
    retry_min_s: float | None = None,
    retry_max_s: float | None = None,
) -> None:
    """Create every topic of topology.TOPICS and every subscription; existing ones are kept."""
    from google.api_core.exceptions import AlreadyExists

    lo, hi = retry_backoff(retry_min_s, retry_max_s)
    with pubsub_clients(pubsub_env(pubsub_host, project)) as (bus, subscriber):
        publisher = bus.publisher
        for topic in topology.TOPICS:
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(request={"name": f"projects/{project}/topics/{topic}"})
        for sub in subscription_requests(project, function_ports, lo, hi):
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(request=sub)


def delete_topology(pubsub_host: str, project: str) -> None:
    """Delete every subscription and topic of `project` on the emulator (drops all backlog)."""
    from google.api_core.exceptions import NotFound

    with pubsub_clients(pubsub_env(pubsub_host, project)) as (bus, subscriber):
        publisher = bus.publisher
        for sub in subscriber.list_subscriptions(request={"project": f"projects/{project}"}):
            with contextlib.suppress(NotFound):
                subscriber.delete_subscription(request={"subscription": sub.name})
        for topic in publisher.list_topics(request={"project": f"projects/{project}"}):
            with contextlib.suppress(NotFound):
                publisher.delete_topic(request={"topic": topic.name})
