"""Settings of the local stack: paths, component names, ports, push backoff, and stack.env.

Environment (CLI defaults; the Python API takes them as arguments):

| variable | default | meaning |
|---|---|---|
| `LEADRUN_STATE_DIR` | `<repo>/.leadrun` | pid file, `stack.env`, logs |
| `LEADRUN_PROJECT` | `leadrun-local` | project id |
| `LEADRUN_PORT_BASE` | `8600` | ports are base + offset (`PORT_OFFSETS`); `auto` picks free ports |
| `LEADRUN_RETRY_MIN_S`, `LEADRUN_RETRY_MAX_S` | `1`, `10` | push subscriptions' backoff |
| `LEADRUN_FUNCTIONS_DIR` | `<repo>/functions` | where the deploy units live |
| `LEADRUN_SANDBOX_CMD` | `python -m sandbox` | sandbox command; fills `{port}` `{project}` |
| `LEADRUN_STARTUP_TIMEOUT_S` | `90` | readiness deadline |
| `LEADRUN_ALLOWED_ORIGINS` | `http://localhost:5173` | passed to the functions |
| `LEADRUN_GOOGLE_LIMITS` | unset | Google's per-user limits (JSON): functions and sandbox |
| `LEADRUN_OPERATOR_UIDS` | unset | uids that may steer and read any run: to the functions |
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from common import topology

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_STATE_DIR = REPO_ROOT / ".leadrun"
DEFAULT_FUNCTIONS_DIR = REPO_ROOT / "functions"
DEFAULT_PROJECT = "leadrun-local"
DEFAULT_PORT_BASE = 8600
DEFAULT_RETRY_MIN_S = 1.0
DEFAULT_RETRY_MAX_S = 10.0
DEFAULT_ALLOWED_ORIGINS = "http://localhost:5173"
DEFAULT_STARTUP_TIMEOUT_S = 90.0
HOST = "127.0.0.1"

# Pull subscription on the dead-letter topic: dead letters stay inspectable (and `leadrun redrive`
# pulls them from here) whatever the dead-letter function does with its own copy.
DEAD_LETTER_AUDIT_SUBSCRIPTION = "lead-dead-letter-audit"

ENV_FILE = "stack.env"
PID_FILE = "stack.pids.json"
LOCK_FILE = ".stack.lock"
LOG_DIR = "logs"

PUBSUB = "pubsub"
FIRESTORE = "firestore"
SANDBOX = "sandbox"
SCHEDULER = "scheduler"
PUSHER = "pusher"  # push loops beside the emulator's two (docs/decisions/0010)
BACKGROUND_SERVICES: tuple[str, ...] = (PUBSUB, FIRESTORE, SANDBOX)
DEFAULT_SWEEP_EVERY_S = 10.0

# Port = base + offset; functions get 10 + their index in topology.FUNCTIONS.
PORT_OFFSETS: dict[str, int] = {
    PUBSUB: 0,
    FIRESTORE: 1,
    SANDBOX: 2,
    SCHEDULER: 3,
    PUSHER: 4,
    **{spec.name: 10 + i for i, spec in enumerate(topology.FUNCTIONS)},
}
COMPONENTS: tuple[str, ...] = tuple(PORT_OFFSETS)


class StackError(RuntimeError):
    """The stack could not be started or inspected; the message says what to do."""


def env_float(name: str, default: float) -> float:
    """A number from the environment; `default` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise StackError(f"{name}={raw!r} is not a number") from exc


def retry_backoff(min_s: float | None = None, max_s: float | None = None) -> tuple[float, float]:
    """The push subscriptions' (min, max) backoff in seconds for the local stack.

    Arguments win, then `LEADRUN_RETRY_MIN_S` / `LEADRUN_RETRY_MAX_S`, then 1 s / 10 s
    (production uses topology.RETRY_MIN_BACKOFF_S / RETRY_MAX_BACKOFF_S).
    """
    lo = min_s if min_s is not None else env_float("LEADRUN_RETRY_MIN_S", DEFAULT_RETRY_MIN_S)
    hi = max_s if max_s is not None else env_float("LEADRUN_RETRY_MAX_S", DEFAULT_RETRY_MAX_S)
    if not 0 <= lo <= hi <= 600:
        raise StackError(f"retry backoff must satisfy 0 <= min ({lo}) <= max ({hi}) <= 600")
    return lo, hi


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def resolve_ports(ports: str | int | Mapping[str, int] | None = None) -> dict[str, int]:
    """Every component's port.

    `"auto"`: free ports; an int: that base + `PORT_OFFSETS`; a mapping: those ports, the rest from
    `LEADRUN_PORT_BASE`; None: `LEADRUN_PORT_BASE` (default 8600, or `auto`) + offsets.
    """
    if ports is None:
        raw = os.environ.get("LEADRUN_PORT_BASE", "").strip() or str(DEFAULT_PORT_BASE)
        ports = "auto" if raw == "auto" else _parse_port(raw, "LEADRUN_PORT_BASE")
    if ports == "auto":
        return dict(zip(COMPONENTS, free_ports(len(COMPONENTS)), strict=True))
    if isinstance(ports, str):
        ports = _parse_port(ports, "ports")
    if isinstance(ports, int):
        return {name: ports + offset for name, offset in PORT_OFFSETS.items()}
    unknown = set(ports) - set(COMPONENTS)
    if unknown:
        raise StackError(f"unknown components in ports: {sorted(unknown)}; known: {COMPONENTS}")
    base = resolve_ports(None)
    return {**base, **ports}


def _parse_port(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise StackError(f"{what}={raw!r}: expected a port number or 'auto'") from exc


def check_prerequisites() -> tuple[str, str]:
    """Paths of `gcloud` and `java`; StackError naming what to install when one is missing."""
    gcloud = shutil.which("gcloud")
    java = shutil.which("java")
    missing = []
    if gcloud is None:
        missing.append(
            "the Google Cloud CLI (`gcloud`) with the Pub/Sub and Firestore emulator components "
            "(Debian: apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator "
            "google-cloud-cli-firestore-emulator; or `gcloud components install pubsub-emulator "
            "cloud-firestore-emulator beta`)"
        )
    if java is None:
        missing.append("Java 17 or newer (`java` on PATH; Debian: apt-get install openjdk-17-jre)")
    if missing:
        raise StackError("the local stack needs " + " and ".join(missing))
    assert gcloud is not None and java is not None
    return gcloud, java


def _env_key(name: str) -> str:
    return name.upper().replace("-", "_")


def function_url_key(name: str) -> str:
    """The stack.env key holding function `name`'s URL, e.g. `LEADRUN_FUNCTION_URL_DEAD_LETTER`."""
    return f"LEADRUN_FUNCTION_URL_{_env_key(name)}"


def client_env(project: str, port_map: Mapping[str, int]) -> dict[str, str]:
    """What stack.env holds for the given ports."""
    sandbox_url = f"http://{HOST}:{port_map[SANDBOX]}"
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "PUBSUB_EMULATOR_HOST": f"{HOST}:{port_map[PUBSUB]}",
        "FIRESTORE_EMULATOR_HOST": f"{HOST}:{port_map[FIRESTORE]}",
        "WORKSPACE_SANDBOX_URL": sandbox_url,
        "SCHEDULE_URL": f"http://{HOST}:{port_map['schedule']}/",
        "DIAGNOSTICS_URL": f"http://{HOST}:{port_map['diagnostics']}/",
        "CONTROL_URL": f"http://{HOST}:{port_map['control']}/",
        "LEADRUN_FIREBASE_CERTS_URL": f"{sandbox_url}/_sandbox/certs",
        "LEADRUN_GOOGLE_MODE": "sandbox",
        "LEADRUN_DEAD_LETTER_AUDIT_SUBSCRIPTION": DEAD_LETTER_AUDIT_SUBSCRIPTION,
    }
    for spec in topology.FUNCTIONS:
        env[function_url_key(spec.name)] = f"http://{HOST}:{port_map[spec.name]}/"
    return env


GOOGLE_LIMITS_ENV = "LEADRUN_GOOGLE_LIMITS"
OPERATOR_UIDS_ENV = "LEADRUN_OPERATOR_UIDS"
