"""The local stack: the production topology in miniature, on one machine.

`python -m leadrun.stack up|down|status` (what `make up` / `make down` call) starts, in the
background and each in its own process group:

* Google's Pub/Sub and Firestore emulators (from the Google Cloud CLI),
* the Workspace sandbox (`python -m sandbox`, docs/api.md, "Workspace sandbox"),
* every function of `common.topology.FUNCTIONS` under functions-framework, one port each,

then creates the topics and the push subscriptions with the production retry and dead-letter
policy (the backoff shortened through `LEADRUN_RETRY_MIN_S` / `LEADRUN_RETRY_MAX_S`, 1 s / 10 s by
default, so local runs settle fast), and writes `<state dir>/stack.env` and a pid file.

The test suite uses the Python API instead: `start_stack(tmp_dir, ports="auto")` returns a
`Stack` it can `stop()`, `restart_function()` and `reset_emulators()`.

`up` is idempotent: a recorded stack that is healthy is reused; `down` stops every process `up`
started, by pid, and nothing else.

This module orchestrates the start and holds the commands; the parts live by concern: settings,
ports and stack.env in leadrun.stack_config, each component's command in leadrun.components,
process groups and /proc in leadrun.processes, Pub/Sub clients and topology in leadrun.pubsub,
the running `Stack` in leadrun.running_stack.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import requests

from common import topology
from leadrun.components import DEFAULT_SANDBOX_CMD, Commands
from leadrun.pubsub import delete_topology, ensure_topology
from leadrun.running_stack import ComponentFailed, Stack, wait_ready
from leadrun.stack_config import (
    BACKGROUND_SERVICES,
    DEFAULT_ALLOWED_ORIGINS,
    DEFAULT_FUNCTIONS_DIR,
    DEFAULT_PROJECT,
    DEFAULT_STARTUP_TIMEOUT_S,
    DEFAULT_STATE_DIR,
    ENV_FILE,
    GOOGLE_LIMITS_ENV,
    LOCK_FILE,
    LOG_DIR,
    PUSHER,
    SCHEDULER,
    StackError,
    check_prerequisites,
    client_env,
    env_float,
    free_ports,
    resolve_ports,
    retry_backoff,
)

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
        start_and_wait([SCHEDULER, PUSHER])
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


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    """Serialise up/down on one state dir (two `make up` at once must not race)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_FILE).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stop_recorded(state_dir: Path) -> bool:
    """Stop the stack recorded in `state_dir`; False when nothing was recorded."""
    stack = Stack.load(state_dir)
    if stack is None:
        (state_dir / ENV_FILE).unlink(missing_ok=True)
        return False
    stack.stop()
    return True


def cmd_up(args: argparse.Namespace) -> int:
    """`up`: start the stack unless the recorded one is already up and healthy."""
    state_dir: Path = args.state_dir
    with _state_lock(state_dir):
        existing = Stack.load(state_dir)
        if existing is not None:
            if existing.healthy() and (state_dir / ENV_FILE).exists():
                print(f"local stack already up ({state_dir / ENV_FILE})")
                return 0
            print("recorded stack is not healthy; stopping what is left of it", file=sys.stderr)
            existing.stop()
        sandbox_cmd = (
            shlex.split(os.environ["LEADRUN_SANDBOX_CMD"])
            if os.environ.get("LEADRUN_SANDBOX_CMD")
            else None
        )
        try:
            stack = start_stack(
                state_dir,
                ports=args.ports,
                project=args.project,
                functions_dir=args.functions_dir,
                sandbox_cmd=sandbox_cmd,
                stop_at_exit=False,
            )
        except StackError as exc:
            print(f"leadrun stack: {exc}", file=sys.stderr)
            return 1
    _print_summary(stack)
    return 0


def _print_summary(stack: Stack) -> None:
    lo, hi = stack.retry_backoff_s
    print(f"local stack up in {stack.startup_s:.1f}s (project {stack.project})")
    for name, info in stack.processes.items():
        print(f"  {name:<12} {stack.url(name):<28} pid {info.pid:<7} log {info.log}")
    print(
        f"  push retry backoff {lo:g}s..{hi:g}s, dead letter after "
        f"{topology.MAX_DELIVERY_ATTEMPTS} deliveries"
    )
    print(f"  environment: {stack.state_dir / ENV_FILE}")


def cmd_down(args: argparse.Namespace) -> int:
    """`down`: stop every process `up` started."""
    with _state_lock(args.state_dir):
        stopped = _stop_recorded(args.state_dir)
    print("local stack stopped" if stopped else "no local stack recorded; nothing to stop")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: which components are up; exit 0 only when all are."""
    stack = Stack.load(args.state_dir)
    if stack is None:
        print("local stack: not running")
        return 1
    status = stack.status()
    for name, state in status.items():
        print(f"  {name:<12} {state:<9} {stack.url(name)}")
    return 0 if all(state == "up" for state in status.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    """The `python -m leadrun.stack` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m leadrun.stack", description="Run the local stack in the background."
    )
    parser.add_argument(
        "command", choices=("up", "down", "status"), help="start / stop / show the stack"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LEADRUN_STATE_DIR") or DEFAULT_STATE_DIR),
        help="pid file, stack.env and logs (default: LEADRUN_STATE_DIR or <repo>/.leadrun)",
    )
    parser.add_argument(
        "--project",
        default=os.environ.get("LEADRUN_PROJECT") or DEFAULT_PROJECT,
        help="project id (default: LEADRUN_PROJECT or leadrun-local)",
    )
    parser.add_argument(
        "--ports",
        default=None,
        help="'auto' or a base port (default: LEADRUN_PORT_BASE or 8600)",
    )
    parser.add_argument(
        "--functions-dir",
        type=Path,
        default=Path(os.environ.get("LEADRUN_FUNCTIONS_DIR") or DEFAULT_FUNCTIONS_DIR),
        help="deploy units (default: LEADRUN_FUNCTIONS_DIR or <repo>/functions)",
    )
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m leadrun.stack`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except StackError as exc:
        print(f"leadrun stack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
