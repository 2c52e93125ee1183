"""The HTTP functions loaded in this process through functions-framework, against the session stack.

`create_app(target, source, "http").test_client()` is how functions-framework's own tests call a
function: no port, no subprocess, so hundreds of hostile requests take seconds. The process
environment points at the stack's emulators and sandbox (as the stack's function processes see
them), plus a host allowlist, and is put back when the package's tests are done.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests
from flask.testing import FlaskClient
from google.cloud import firestore, pubsub_v1

from common import bootstrap, config, paths, topology

REPO = Path(__file__).resolve().parents[2]
ALLOWED_ORIGIN = "https://app.example.com"
# Every host the request builders make is `host-…@example.com`; `ceo@victim.test` is not allowed.
WORKSPACE_SUBJECTS = "example.com,solo@acme.test"


def _reset_caches() -> None:
    config.settings.cache_clear()
    bootstrap.app.cache_clear()


@pytest.fixture(scope="package")
def function_env(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """os.environ as a deployed function on the local stack sees it (restored afterwards)."""
    wanted = {
        "GOOGLE_CLOUD_PROJECT": stack_env["GOOGLE_CLOUD_PROJECT"],
        "PUBSUB_EMULATOR_HOST": stack_env["PUBSUB_EMULATOR_HOST"],
        "FIRESTORE_EMULATOR_HOST": stack_env["FIRESTORE_EMULATOR_HOST"],
        "WORKSPACE_SANDBOX_URL": stack_env["WORKSPACE_SANDBOX_URL"],
        "LEADRUN_FIREBASE_CERTS_URL": stack_env["LEADRUN_FIREBASE_CERTS_URL"],
        "LEADRUN_GOOGLE_MODE": "sandbox",
        "LEADRUN_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "LEADRUN_WORKSPACE_SUBJECTS": WORKSPACE_SUBJECTS,
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    _reset_caches()
    try:
        yield wanted
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset_caches()


def load_function(name: str, signature_type: str = "http") -> FlaskClient:
    """The test client of one function of `common.topology`, loaded from its deploy unit."""
    spec = topology.function(name)
    source = REPO / "functions" / spec.source_dir / "main.py"
    app = functions_framework.create_app(spec.target, str(source), signature_type=signature_type)
    return app.test_client()


@pytest.fixture(scope="package")
def schedule_fn(function_env: dict[str, str]) -> FlaskClient:
    """`schedule` through functions-framework."""
    return load_function("schedule")


@pytest.fixture(scope="package")
def diagnostics_fn(function_env: dict[str, str]) -> FlaskClient:
    """`diagnostics` through functions-framework."""
    return load_function("diagnostics")


@dataclass
class Tokens:
    """ID tokens from the sandbox (docs/api.md, "Auth"), cached per uid."""

    sandbox_url: str
    session: requests.Session = field(default_factory=requests.Session)
    _cache: dict[str, str] = field(default_factory=dict)

    def mint(
        self, uid: str, claims: Mapping[str, Any] | None = None, unknown_key: bool = False
    ) -> str:
        """A fresh token; `claims` override (None removes), `unknown_key` signs with a stray key."""
        body: dict[str, Any] = {"uid": uid, "claims": dict(claims or {})}
        if unknown_key:
            body["unknownKey"] = True
        answer = self.session.post(f"{self.sandbox_url}/_sandbox/token", json=body, timeout=30)
        answer.raise_for_status()
        return str(answer.json()["idToken"])

    def bearer(self, uid: str = "alice") -> dict[str, str]:
        """The Authorization header of a valid token for `uid`."""
        if uid not in self._cache:
            self._cache[uid] = self.mint(uid)
        return {"Authorization": f"Bearer {self._cache[uid]}"}


@pytest.fixture(scope="package")
def tokens(function_env: dict[str, str]) -> Tokens:
    """Token minting against the stack's sandbox."""
    return Tokens(function_env["WORKSPACE_SANDBOX_URL"].rstrip("/"))


@pytest.fixture(scope="package")
def db(function_env: dict[str, str]) -> firestore.Client:
    """The emulator's Firestore, read directly."""
    return firestore.Client(project=function_env["GOOGLE_CLOUD_PROJECT"])


def run_traces(db: firestore.Client, run_id: str) -> list[str]:
    """What exists in Firestore for `run_id`: the run document and any lead document."""
    found = []
    if db.document(paths.run(run_id)).get().exists:
        found.append(paths.run(run_id))
    found.extend(doc.reference.path for doc in db.collection(paths.leads(run_id)).limit(5).get())
    return found


class PublishProbe:
    """A pull subscription on every action topic: sees every message published while it exists.

    The stack's push subscriptions get their own copies, so this takes nothing from the pipeline.
    """

    def __init__(self, project: str) -> None:
        self.project = project
        self.subscriber = pubsub_v1.SubscriberClient()
        self.names: dict[str, str] = {}
        tag = uuid.uuid4().hex[:8]
        for topic in topology.ACTION_TOPICS.values():
            name = self.subscriber.subscription_path(project, f"probe-{topic}-{tag}")
            self.subscriber.create_subscription(
                request={"name": name, "topic": f"projects/{project}/topics/{topic}"}
            )
            self.names[topic] = name
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        """Pull (and ack) whatever arrived; returns every message seen so far."""
        for topic, name in self.names.items():
            while True:
                with warnings.catch_warnings():
                    # Deprecated for production pulls, but exactly "what is there right now".
                    warnings.simplefilter("ignore", DeprecationWarning)
                    answer = self.subscriber.pull(
                        request={
                            "subscription": name,
                            "max_messages": 500,
                            "return_immediately": True,
                        },
                        timeout=10,
                    )
                if not answer.received_messages:
                    break
                for received in answer.received_messages:
                    message = received.message
                    self.seen.append(
                        {
                            "topic": topic,
                            "attributes": dict(message.attributes),
                            "data": json.loads(message.data or b"{}"),
                        }
                    )
                self.subscriber.acknowledge(
                    request={
                        "subscription": name,
                        "ack_ids": [r.ack_id for r in answer.received_messages],
                    }
                )
        return self.seen

    def published_for(self, run_id: str, lead_doc_id: str | None = None) -> list[dict[str, Any]]:
        """Messages seen for a run (and lead)."""
        return [
            m
            for m in self.drain()
            if m["attributes"].get("runId") == run_id
            and (lead_doc_id is None or m["attributes"].get("leadDocId") == lead_doc_id)
        ]

    def close(self) -> None:
        """Delete the probe's subscriptions."""
        for name in self.names.values():
            self.subscriber.delete_subscription(request={"subscription": name})
        self.subscriber.close()


@pytest.fixture(scope="package")
def probe(function_env: dict[str, str]) -> Iterator[PublishProbe]:
    """One publish probe for the package."""
    publish_probe = PublishProbe(function_env["GOOGLE_CLOUD_PROJECT"])
    try:
        yield publish_probe
    finally:
        publish_probe.close()
