"""Shared fixtures: one local stack per test session, started by the suite itself."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.quota_limits import GOOGLE_LIMITS, compressed
from leadrun.client import LeadRunClient

TOLD_LIMITS = compressed(GOOGLE_LIMITS, 4)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Emulators, sandbox and every function on free ports, stopped at the end of the session."""
    from leadrun.stack import start_stack

    state_dir: Path = tmp_path_factory.mktemp("stack")
    os.environ.setdefault("LEADRUN_SWEEP_EVERY_S", "3")  # the local Cloud Scheduler's period
    started = start_stack(
        state_dir,
        ports="auto",
        project="leadrun-test",
        extra_env={
            "LEADRUN_ALLOWED_ORIGINS": "https://app.example.com",
            "LEADRUN_LEASE_S": "20",
            "LEADRUN_SWEEP_STALE_S": "15",
            # The functions pace to Google's published limits with a minute of 15 s; the
            # sandbox enforces none unless a test puts some in force (`/_sandbox/limits`).
            "LEADRUN_GOOGLE_LIMITS": json.dumps(TOLD_LIMITS),
            # One operator (docs/decisions/0014): tests/integration/test_control_http.py.
            "LEADRUN_OPERATOR_UIDS": "ops-steer",
        },
        retry_min_s=float(os.environ.get("LEADRUN_TEST_RETRY_MIN_S", "1")),
        retry_max_s=float(os.environ.get("LEADRUN_TEST_RETRY_MAX_S", "3")),
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def stack_env(stack: object) -> dict[str, str]:
    """The stack's `stack.env` keys."""
    return dict(stack.env)  # type: ignore[attr-defined]


@pytest.fixture
def client(stack_env: dict[str, str]) -> Iterator[LeadRunClient]:
    """A web-client stand-in for uid `alice`, with the sandbox's faults cleared."""
    api = LeadRunClient(stack_env, uid="alice")
    api.sandbox.clear_faults()
    yield api
    api.sandbox.clear_faults()


@pytest.fixture
def limited(client: LeadRunClient) -> Iterator[LeadRunClient]:
    """The client; whatever limits a test puts in force in the sandbox are removed afterwards."""
    try:
        yield client
    finally:
        client.sandbox.limits(None)


# A failing test on a stack says what the functions last logged, so a failure in CI explains itself.
LOGGED_TAIL = 15
LOGGED = ("book", "notify", "drive", "dead-letter", "sweep", "control", "pusher", "scheduler")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("stack")
    if report.when != "call" or not report.failed or running is None:
        return
    from leadrun.processes import log_tail

    for name in LOGGED:
        info = running.processes.get(name)
        if info is not None:
            lines = log_tail(info.log, LOGGED_TAIL).splitlines()
            report.sections.append((f"{name} log", "\n".join(line[:400] for line in lines)))
