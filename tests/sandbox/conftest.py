"""Fixtures: an in-process sandbox on a free port and real googleapiclient clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build

from sandbox import start_sandbox
from tests.sandbox import PROJECT


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """A sandbox started in a background thread on a free port."""
    url, stop = start_sandbox(port=0, project=PROJECT)
    yield url
    stop()


@pytest.fixture(autouse=True)
def _reset(sandbox_url: str) -> None:
    """Every test starts from an empty sandbox."""
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()


def _build(api: str, version: str, url: str) -> Any:
    return build(
        api,
        version,
        static_discovery=True,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": url},
        cache_discovery=False,
    )


@pytest.fixture
def calendar(sandbox_url: str) -> Any:
    """A Calendar v3 client for the sandbox."""
    return _build("calendar", "v3", sandbox_url)


@pytest.fixture
def gmail(sandbox_url: str) -> Any:
    """A Gmail v1 client for the sandbox."""
    return _build("gmail", "v1", sandbox_url)


@pytest.fixture
def drive(sandbox_url: str) -> Any:
    """A Drive v3 client for the sandbox."""
    return _build("drive", "v3", sandbox_url)


@pytest.fixture
def state(sandbox_url: str) -> Any:
    """A function returning ``GET /_sandbox/state``."""

    def _state() -> dict[str, Any]:
        return requests.get(f"{sandbox_url}/_sandbox/state", timeout=10).json()

    return _state
