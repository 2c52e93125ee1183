"""Fixtures: an in-process sandbox on a free port and real googleapiclient clients for it.

Every client acts as a user, as the functions do: its credentials name the delegated subject
(`SandboxUserCredentials`), and the sandbox keeps each user's mailbox, drive and quotas apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from googleapiclient.discovery import build

from common.google_apis import SandboxUserCredentials
from sandbox import start_sandbox
from tests.sandbox import PROJECT, USER

Clients = Callable[..., Any]


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """A sandbox started in a background thread on a free port."""
    url, stop = start_sandbox(port=0, project=PROJECT)
    yield url
    stop()


@pytest.fixture(autouse=True)
def _reset(sandbox_url: str) -> None:
    """Every test starts from an empty sandbox (no limits either)."""
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()


def build_client(api: str, version: str, url: str, user: str = USER) -> Any:
    """A googleapiclient service for the sandbox, acting as `user`."""
    return build(
        api,
        version,
        static_discovery=True,
        credentials=SandboxUserCredentials(user),
        client_options={"api_endpoint": url},
        cache_discovery=False,
    )


@pytest.fixture
def client(sandbox_url: str) -> Clients:
    """`client("gmail", user="bob@example.com")`: a client of one API acting as a user."""
    versions = {"calendar": "v3", "gmail": "v1", "drive": "v3"}

    def _client(api: str, user: str = USER) -> Any:
        return build_client(api, versions[api], sandbox_url, user)

    return _client


@pytest.fixture
def calendar(client: Clients) -> Any:
    """A Calendar v3 client for the sandbox, acting as USER."""
    return client("calendar")


@pytest.fixture
def gmail(client: Clients) -> Any:
    """A Gmail v1 client for the sandbox, acting as USER."""
    return client("gmail")


@pytest.fixture
def drive(client: Clients) -> Any:
    """A Drive v3 client for the sandbox, acting as USER."""
    return client("drive")


@pytest.fixture
def state(sandbox_url: str) -> Any:
    """A function returning ``GET /_sandbox/state``."""

    def _state() -> dict[str, Any]:
        return requests.get(f"{sandbox_url}/_sandbox/state", timeout=10).json()

    return _state


@pytest.fixture
def limits(sandbox_url: str) -> Callable[[dict[str, Any]], None]:
    """A function applying a limits document (``POST /_sandbox/limits``)."""

    def _limits(document: dict[str, Any]) -> None:
        answer = requests.post(f"{sandbox_url}/_sandbox/limits", json=document, timeout=10)
        assert answer.status_code == 200, answer.text

    return _limits
