"""The local stack: the production topology in miniature, on one machine.

`python -m leadrun.stack up|down|status` (what `make up` / `make down` call; leadrun.stack_cli)
starts, in the background and each in its own process group:

* Google's Pub/Sub and Firestore emulators (from the Google Cloud CLI),
* the Workspace sandbox (`python -m sandbox`, CONTRACT section 7),
* every function of `common.topology.FUNCTIONS` under functions-framework, one port each,

then creates the topics and the push subscriptions with the production retry and dead-letter
policy (the backoff shortened through `LEADRUN_RETRY_MIN_S` / `LEADRUN_RETRY_MAX_S`, 1 s / 10 s by
default, so local runs settle fast), and writes `<state dir>/stack.env` and a pid file.

The test suite uses the Python API instead: `start_stack(tmp_dir, ports="auto")` returns a
`Stack` it can `stop()`, `restart_function()` and `reset_emulators()`.

This module orchestrates the start; the parts live by concern: settings, ports and stack.env in
leadrun.stack_config, each component's command in leadrun.components, process groups and /proc
in leadrun.processes, Pub/Sub clients and topology in leadrun.pubsub, the running `Stack` in
leadrun.running_stack, the `up|down|status` commands in leadrun.stack_cli. The names callers
import from here stay importable from here (`__all__`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

from common import topology
from leadrun.client import read_env_file
from leadrun.components import DEFAULT_SANDBOX_CMD, Commands
from leadrun.processes import owned_processes
from leadrun.pubsub import delete_topology, ensure_topology, pubsub_clients, subscription_requests
from leadrun.running_stack import ComponentFailed, Stack, wait_ready
from leadrun.stack_config import (
    BACKGROUND_SERVICES,
    COMPONENTS,
    DEAD_LETTER_AUDIT_SUBSCRIPTION,
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_FUNCTIONS_DIR,
    DEFAULT_PROJECT,
    DEFAULT_STARTUP_TIMEOUT_S,
    DEFAULT_STATE_DIR,
    ENV_FILE,
    GOOGLE_LIMITS_ENV,
    LOG_DIR,
    REPO_ROOT,
    SCHEDULER,
    StackError,
    check_prerequisites,
    client_env,
    env_float,
    free_ports,
    resolve_ports,
    retry_backoff,
)

# Names other code (tests, bench, the demo) imports from leadrun.stack: they stay importable here.
__all__ = [
    "COMPONENTS",
    "DEAD_LETTER_AUDIT_SUBSCRIPTION",
    "DEFAULT_STATE_DIR",
    "ENV_FILE",
    "REPO_ROOT",
    "Stack",
    "StackError",
    "free_ports",
    "main",
    "owned_processes",
    "pubsub_clients",
    "read_env_file",
    "reset_emulators",
    "resolve_ports",
    "retry_backoff",
    "start_stack",
    "subscription_requests",
]

log = logging.getLogger(__name__)


def start_stack(
    state_dir: Path,
    ports: str | int | Mapping[str, int] | None = "auto",
    project: str = DEFAULT_PROJECT,
    extra_env: Mapping[str, str] | None = None,
    functions_dir: Path | None = None,
    *,
    sandbox_cmd: Sequence[str] | None = None,
    retry_min_s: float | None = None,
    retry_max_s: float | None = None,
    startup_timeout_s: float | None = None,
    stop_at_exit: bool = True,
) -> Stack:
    """Start the whole local stack and return it once every component answers.

    state_dir: pid file, stack.env and logs/ go there (created if needed).
    ports: "auto" (free ports: what tests should use), a base port, a name -> port mapping, or
        None for LEADRUN_PORT_BASE.
    extra_env: added to every function's environment (after the stack's own variables).
    functions_dir: the deploy units (`<dir>/<source_dir>/main.py`), default `<repo>/functions`.
    sandbox_cmd: command of the Workspace sandbox; `{python}`, `{port}`, `{project}` are filled in.
    retry_min_s / retry_max_s: push backoff (default LEADRUN_RETRY_MIN_S/MAX_S, else 1 s / 10 s).
    stop_at_exit: stop the stack when this interpreter exits (the CLI's `up` passes False).

    On failure everything started so far is stopped and StackError says why, with the log tail.
    With ports="auto" a component that loses its port to another process is moved to a new one.
    """
    gcloud, _java = check_prerequisites()
    state_dir = Path(state_dir).resolve()
    functions_dir = Path(functions_dir or DEFAULT_FUNCTIONS_DIR).resolve()
    missing = [
        str(functions_dir / spec.source_dir / "main.py")
        for spec in topology.FUNCTIONS
        if not (functions_dir / spec.source_dir / "main.py").exists()
    ]
    if missing:
        raise StackError("function sources missing: " + ", ".join(sorted(set(missing))))
    backoff = retry_backoff(retry_min_s, retry_max_s)
    timeout = (
        startup_timeout_s
        if startup_timeout_s is not None
        else env_float("LEADRUN_STARTUP_TIMEOUT_S", DEFAULT_STARTUP_TIMEOUT_S)
    )
    auto = ports == "auto"
    port_map = resolve_ports(ports)
    (state_dir / LOG_DIR).mkdir(parents=True, exist_ok=True)
    (state_dir / "pubsub-data").mkdir(exist_ok=True)

    commands = Commands(
        gcloud=gcloud,
        python=sys.executable,
        project=project,
        state_dir=state_dir,
        functions_dir=functions_dir,
        sandbox_template=tuple(sandbox_cmd or DEFAULT_SANDBOX_CMD),
        allowed_origins=os.environ.get("LEADRUN_ALLOWED_ORIGINS", DEFAULT_ALLOWED_ORIGINS),
        extra_env=dict(extra_env or {}),
    )
    stack = Stack(
        state_dir=state_dir,
        project=project,
        env=client_env(project, port_map),
        processes={},
        retry_backoff_s=backoff,
    )
    started = time.monotonic()
    deadline = started + timeout

    def start(name: str) -> None:
        cmd, overrides = commands.command(name, port_map)
        stack.start_component(name, cmd, port_map[name], overrides)

    def start_and_wait(names: Sequence[str]) -> None:
        for name in names:
            start(name)
        stack.write_pid_file()  # recorded before waiting, so `down` can clean up after a crash
        attempts = 0
        while True:
            try:
                wait_ready(stack, names, deadline)
                return
            except ComponentFailed as failure:
                attempts += 1
                # Another process took a port we picked (tests run concurrently): pick again.
                if not (auto and failure.port_clash and attempts < 3):
                    raise
                stack.stop_component(failure.name)
                port_map[failure.name] = free_ports(1)[0]
                log.warning(
                    "%s lost its port, retrying on %d", failure.name, port_map[failure.name]
                )
                start(failure.name)
                stack.write_pid_file()

    try:
        start_and_wait(BACKGROUND_SERVICES)
        apply_google_limits(stack.sandbox_url)
        start_and_wait([spec.name for spec in topology.FUNCTIONS])
        stack.env = {
            **client_env(project, port_map),
            "LEADRUN_RETRY_MIN_S": f"{backoff[0]:g}",
            "LEADRUN_RETRY_MAX_S": f"{backoff[1]:g}",
        }
        ensure_topology(stack.pubsub_host, project, port_map, *backoff)
        start_and_wait([SCHEDULER])
        stack.write_env_file()
    except BaseException:
        stack.stop()
        raise
    stack.startup_s = time.monotonic() - started
    if stop_at_exit:
        atexit.register(stack.stop)  # stop() is idempotent: a later explicit stop is harmless
    return stack


def reset_emulators(
    stack: Stack, *, firestore: bool = True, pubsub: bool = True, sandbox: bool = True
) -> None:
    """Empty the stack between tests: Firestore documents, Pub/Sub backlog, sandbox state.

    Pub/Sub is reset by deleting every topic and subscription and creating them again.
    """
    if firestore:
        url = (
            f"http://{stack.firestore_host}/emulator/v1/projects/{stack.project}"
            "/databases/(default)/documents"
        )
        requests.delete(url, timeout=10).raise_for_status()
    if pubsub:
        delete_topology(stack.pubsub_host, stack.project)
        ports = {spec.name: stack.port(spec.name) for spec in topology.FUNCTIONS}
        ensure_topology(stack.pubsub_host, stack.project, ports, *stack.retry_backoff_s)
    if sandbox:
        requests.post(f"{stack.sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()
        apply_google_limits(stack.sandbox_url)  # a reset empties limits too; keep the stack's


def apply_google_limits(sandbox_url: str) -> None:
    """Apply `LEADRUN_GOOGLE_LIMITS` (if set) to the sandbox: it models what functions pace to."""
    raw = os.environ.get(GOOGLE_LIMITS_ENV, "").strip()
    if not raw:
        return
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise StackError(f"{GOOGLE_LIMITS_ENV} is not JSON: {exc}") from None
    answer = requests.post(f"{sandbox_url}/_sandbox/limits", json=document, timeout=10)
    if answer.status_code != 200:
        raise StackError(f"{GOOGLE_LIMITS_ENV} refused by the sandbox: {answer.text}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m leadrun.stack` (the commands are in leadrun.stack_cli)."""
    from leadrun.stack_cli import main as stack_main

    return stack_main(argv)


if __name__ == "__main__":
    sys.exit(main())
