"""Pub/Sub adapter: publishes lead action messages (docs/api.md, "Topics")."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from common.topology import ACTION_TOPICS, TOPIC_SWEEP


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: the action's topic follows from `action`."""

    run_id: str
    lead_doc_id: str
    action: str
    booking: dict[str, Any] | None = None

    def data(self) -> bytes:
        """The JSON body every subscriber decodes."""
        body: dict[str, Any] = {
            "runId": self.run_id,
            "leadDocId": self.lead_doc_id,
            "action": self.action,
        }
        if self.booking is not None:
            body["booking"] = self.booking
        return json.dumps(body, separators=(",", ":")).encode()


class PubSubBus:
    """Publishes to the project's topics; waits until Pub/Sub has accepted every message."""

    def __init__(self, project: str, publisher: pubsub_v1.PublisherClient | None = None) -> None:
        self.project = project
        self._publisher = publisher

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        """The client, built on first use (never at import time)."""
        if self._publisher is None:
            settings = pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.002)
            self._publisher = pubsub_v1.PublisherClient(batch_settings=settings)
        return self._publisher

    def publish(
        self, messages: Iterable[Outgoing], timeout_s: float = 30.0, traceparent: str | None = None
    ) -> int:
        """Publish all; raise if any was not accepted (the caller's receipts stay pending).

        `traceparent` rides along as an attribute, so every function's log lines of a lead join
        the trace of the request that started it.
        """
        extra = {"traceparent": traceparent} if traceparent else {}
        pending = []
        for message in messages:
            topic = self.publisher.topic_path(self.project, ACTION_TOPICS[message.action])
            pending.append(
                self.publisher.publish(
                    topic,
                    message.data(),
                    runId=message.run_id,
                    leadDocId=message.lead_doc_id,
                    action=message.action,
                    **extra,
                )
            )
        done, not_done = futures.wait(pending, timeout=timeout_s)
        if not_done:
            raise TimeoutError(f"{len(not_done)} of {len(pending)} messages not published in time")
        for future in done:
            future.result()
        return len(pending)

    def wake(self, timeout_s: float = 30.0) -> None:
        """Start a sweeper tick now, as Cloud Scheduler's does each minute: for waits written
        to start before the next one (a tick with nothing due within its minute ends early)."""
        topic = self.publisher.topic_path(self.project, TOPIC_SWEEP)
        self.publisher.publish(topic, b"{}", reason="wake").result(timeout=timeout_s)
