"""The local stack: the production topology in miniature, on one machine.

`python -m leadrun.stack up|down|status` (what `make up` / `make down` call) starts, in the
background and each in its own process group:

* Google's Pub/Sub and Firestore emulators (from the Google Cloud CLI),
* the Workspace sandbox (`python -m sandbox`, CONTRACT section 7),
* every function of `common.topology.FUNCTIONS` under functions-framework, one port each,

then creates the topics and the push subscriptions with the production retry and dead-letter
policy (the backoff shortened through `LEADRUN_RETRY_MIN_S` / `LEADRUN_RETRY_MAX_S`, 1 s / 10 s by
default, so local runs settle fast), and writes `<state dir>/stack.env` and a pid file.

The test suite uses the Python API instead: `start_stack(tmp_dir, ports="auto")` returns a
`Stack` it can `stop()`, `restart_function()` and `reset_emulators()`.

Environment (CLI defaults; the API takes them as arguments):

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
| `LEADRUN_GOOGLE_LIMITS` | unset | per-user limits (JSON, §7): to the functions and the sandbox |

Only processes this module started are ever signalled: each is recorded with its pid, process
group and start time, and checked against `/proc` before it is stopped.
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
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from common import topology

log = logging.getLogger(__name__)

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
BACKGROUND_SERVICES: tuple[str, ...] = (PUBSUB, FIRESTORE, SANDBOX)
DEFAULT_SWEEP_EVERY_S = 10.0

# Port = base + offset; functions get 10 + their index in topology.FUNCTIONS.
PORT_OFFSETS: dict[str, int] = {
    PUBSUB: 0,
    FIRESTORE: 1,
    SANDBOX: 2,
    SCHEDULER: 3,
    **{spec.name: 10 + i for i, spec in enumerate(topology.FUNCTIONS)},
}
COMPONENTS: tuple[str, ...] = tuple(PORT_OFFSETS)

DEFAULT_SANDBOX_CMD: tuple[str, ...] = (
    "{python}",
    "-m",
    "sandbox",
    "--host",
    HOST,
    "--port",
    "{port}",
    "--project",
    "{project}",
)

# Keep gcloud quiet and offline: no prompts, no update checks, no usage reports.
_GCLOUD_ENV = {
    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
}
# The emulators are JVMs started fresh with every stack. Measured (docs/decisions/0006): with the
# JVM's defaults, C2 compilation takes more CPU than the emulators' own work for a whole run, on
# two cores shared with everything else. C1 only and the serial collector halve their CPU.
DEFAULT_EMULATOR_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _emulator_env() -> dict[str, str]:
    """The environment of an emulator: gcloud's settings and the JVM options.

    LEADRUN_EMULATOR_JAVA_OPTS replaces the options (empty: the JVM's defaults); options already
    in JAVA_TOOL_OPTIONS come first, so ours win where both set the same flag.
    """
    options = os.environ.get("LEADRUN_EMULATOR_JAVA_OPTS", DEFAULT_EMULATOR_JAVA_OPTS)
    inherited = os.environ.get("JAVA_TOOL_OPTIONS", "")
    env = dict(_GCLOUD_ENV)
    combined = f"{inherited} {options}".strip()
    if combined:
        env["JAVA_TOOL_OPTIONS"] = combined
    return env


_BIND_ERRORS = ("address already in use", "bindexception", "connection in use", "errno 98")
_TERM_GRACE_S = 5.0
_FOREIGN_GRACE_S = 2.0


class StackError(RuntimeError):
    """The stack could not be started or inspected; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Processes: start, verify ownership, stop.


@dataclass
class ProcessInfo:
    """One process the stack started, as recorded in the pid file."""

    pid: int
    pgid: int
    port: int
    log: str
    start_time: int  # /proc/<pid>/stat starttime (clock ticks since boot): guards against pid reuse
    cmd: list[str]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)  # overrides on top of the inherited env


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgid, starttime) of a live process, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2]), int(fields[19])


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat and stat[1] == pgid and stat[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def owned_processes(info: ProcessInfo) -> list[int]:
    """The live processes of `info`'s process group that this stack started (maybe none).

    The group leader is the process we started (start_new_session=True). If a process with that
    pid exists but started at another time, the pid was reused: nothing there is ours. While any
    member of a group lives, Linux never hands its id out again, so the leader's children (the
    emulators' java processes) stay recognisable after the leader is gone.
    """
    leader = _proc_stat(info.pgid)
    if leader is not None and leader[2] != info.start_time:
        return []
    members = []
    for pid in _group_members(info.pgid):
        stat = _proc_stat(pid)
        if stat is not None and stat[2] >= info.start_time:
            members.append(pid)
    return members


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (IPv4 or IPv6), from /proc/net/tcp*."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def _owns_port(pids: Sequence[int], port: int) -> bool | None:
    """Whether one of `pids` holds the listening socket of `port`; None when /proc can't tell."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None if not Path("/proc/net/tcp").exists() else False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                        return True
    return False


def _http_answers(url: str, want_status: int | None = None) -> bool:
    """Whether `url` answers HTTP at all (or with `want_status`)."""
    try:
        response = requests.get(url, timeout=1.0)
    except requests.RequestException:
        return False
    return want_status is None or response.status_code == want_status


def _log_tail(path: str | Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _launch(
    name: str, cmd: list[str], port: int, log_dir: Path, cwd: Path, env: dict[str, str]
) -> tuple[ProcessInfo, subprocess.Popen[bytes]]:
    """Start `cmd` in a new session (its own process group), output to `<log_dir>/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log_file:
        log_file.write(f"\n--- {time.strftime('%H:%M:%S')} {shlex.join(cmd)}\n".encode())
        log_file.flush()
        popen = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stat = _proc_stat(popen.pid)
    info = ProcessInfo(
        pid=popen.pid,
        pgid=popen.pid,
        port=port,
        log=str(log_path),
        start_time=stat[2] if stat else 0,
        cmd=cmd,
        cwd=str(cwd),
        env=env,
    )
    return info, popen


def terminate(info: ProcessInfo, popen: subprocess.Popen[bytes] | None = None) -> None:
    """Stop `info`'s whole process group: SIGTERM, wait, then SIGKILL. Never touches others."""
    terminate_all([info], [popen] if popen is not None else [])


def terminate_all(
    infos: Iterable[ProcessInfo], popens: Iterable[subprocess.Popen[bytes]] = ()
) -> None:
    """Stop several process groups at once: SIGTERM to all, wait, SIGKILL what is left."""
    infos, popens = list(infos), list(popens)
    for info in infos:
        _signal_group(info, signal.SIGTERM)
    if _wait_gone(infos, popens, _TERM_GRACE_S):
        return
    for info in infos:
        _signal_group(info, signal.SIGKILL)
    if not _wait_gone(infos, popens, _TERM_GRACE_S):
        left = [pid for info in infos for pid in owned_processes(info)]
        log.warning("processes %s did not exit after SIGKILL", left)


def _signal_group(info: ProcessInfo, sig: signal.Signals) -> None:
    members = owned_processes(info)
    if not members:
        return
    if _proc_stat(info.pgid) is not None or len(members) == len(_group_members(info.pgid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(info.pgid, sig)
    else:  # leader gone and the group holds strangers: signal ours one by one
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _wait_gone(
    infos: Sequence[ProcessInfo], popens: Sequence[subprocess.Popen[bytes]], timeout: float
) -> bool:
    """Whether every process of `infos` exits within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for popen in popens:
            popen.poll()  # reap our own children, or they linger as zombies
        if not any(owned_processes(info) for info in infos):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Configuration helpers.


def _env_float(name: str, default: float) -> float:
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
    lo = min_s if min_s is not None else _env_float("LEADRUN_RETRY_MIN_S", DEFAULT_RETRY_MIN_S)
    hi = max_s if max_s is not None else _env_float("LEADRUN_RETRY_MAX_S", DEFAULT_RETRY_MAX_S)
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


def push_endpoint(project: str, topic: str, port: int) -> str:
    """Push URL of a local function: the path makes functions-framework build a CloudEvent."""
    return f"http://{HOST}:{port}/projects/{project}/topics/{topic}"


def _env_key(name: str) -> str:
    return name.upper().replace("-", "_")


def function_url_key(name: str) -> str:
    """The stack.env key holding function `name`'s URL, e.g. `LEADRUN_FUNCTION_URL_DEAD_LETTER`."""
    return f"LEADRUN_FUNCTION_URL_{_env_key(name)}"


# --------------------------------------------------------------------------------------------
# Pub/Sub topology.


@contextlib.contextmanager
def pubsub_clients(host: str) -> Iterator[tuple[Any, Any]]:
    """GAPIC publisher and subscriber clients talking to the emulator at `host`."""
    import grpc
    from google.pubsub_v1 import PublisherClient, SubscriberClient
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host)
    try:
        yield (
            PublisherClient(transport=PublisherGrpcTransport(channel=channel)),
            SubscriberClient(transport=SubscriberGrpcTransport(channel=channel)),
        )
    finally:
        channel.close()


def _duration(seconds: float) -> dict[str, int]:
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
            "ack_deadline_seconds": topology.ACK_DEADLINE_S,
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
    with pubsub_clients(pubsub_host) as (publisher, subscriber):
        for topic in topology.TOPICS:
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(request={"name": f"projects/{project}/topics/{topic}"})
        for sub in subscription_requests(project, function_ports, lo, hi):
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(request=sub)


def _delete_topology(pubsub_host: str, project: str) -> None:
    """Delete every subscription and topic of `project` on the emulator (drops all backlog)."""
    from google.api_core.exceptions import NotFound

    with pubsub_clients(pubsub_host) as (publisher, subscriber):
        for sub in subscriber.list_subscriptions(request={"project": f"projects/{project}"}):
            with contextlib.suppress(NotFound):
                subscriber.delete_subscription(request={"subscription": sub.name})
        for topic in publisher.list_topics(request={"project": f"projects/{project}"}):
            with contextlib.suppress(NotFound):
                publisher.delete_topic(request={"topic": topic.name})


# --------------------------------------------------------------------------------------------
# The stack.


@dataclass(eq=False)
class Stack:
    """A running local stack: its processes, ports and the environment clients need.

    `env` is what `stack.env` holds (GOOGLE_CLOUD_PROJECT, PUBSUB_EMULATOR_HOST, ...).
    """

    state_dir: Path
    project: str
    env: dict[str, str] = field(repr=False)
    processes: dict[str, ProcessInfo] = field(repr=False)
    retry_backoff_s: tuple[float, float] = (DEFAULT_RETRY_MIN_S, DEFAULT_RETRY_MAX_S)
    startup_s: float = 0.0
    _popens: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- addresses

    def port(self, name: str) -> int:
        """Port of component `name` (`pubsub`, `firestore`, `sandbox` or a function name)."""
        try:
            return self.processes[name].port
        except KeyError:
            raise KeyError(f"no component {name!r}; have {sorted(self.processes)}") from None

    def url(self, name: str) -> str:
        """Base URL of a component; a function's URL ends with `/` (like SCHEDULE_URL)."""
        base = f"http://{HOST}:{self.port(name)}"
        return base + "/" if name not in (*BACKGROUND_SERVICES, SCHEDULER) else base

    @property
    def pubsub_host(self) -> str:
        """`host:port` of the Pub/Sub emulator."""
        return self.env["PUBSUB_EMULATOR_HOST"]

    @property
    def firestore_host(self) -> str:
        """`host:port` of the Firestore emulator."""
        return self.env["FIRESTORE_EMULATOR_HOST"]

    @property
    def sandbox_url(self) -> str:
        """Base URL of the Workspace sandbox."""
        return self.env["WORKSPACE_SANDBOX_URL"]

    # -- health

    def component_status(self, name: str) -> str:
        """`up`, `starting` (alive, not answering), `down` or `foreign` (port held by another)."""
        info = self.processes[name]
        popen = self._popens.get(name)
        if popen is not None:
            popen.poll()
        members = owned_processes(info)
        if not members:
            return "down"
        if _owns_port(members, info.port) is False:
            return "foreign" if _listening_inodes(info.port) else "starting"
        want = 200 if name == SANDBOX else None
        path = "/_sandbox/health" if name == SANDBOX else "/"
        return "up" if _http_answers(f"http://{HOST}:{info.port}{path}", want) else "starting"

    def status(self) -> dict[str, str]:
        """component_status of every component."""
        return {name: self.component_status(name) for name in self.processes}

    def healthy(self) -> bool:
        """Whether every component is up."""
        return all(state == "up" for state in self.status().values())

    def pids(self) -> list[int]:
        """Every live process of the stack, including children such as the emulators' java."""
        return sorted(pid for info in self.processes.values() for pid in owned_processes(info))

    # -- lifecycle

    def stop(self) -> None:
        """Stop every process of the stack and remove the pid file and stack.env. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            terminate_all(self.processes.values(), self._popens.values())
            self._popens.clear()
            self._stopped = True
            atexit.unregister(self.stop)
            for name in (PID_FILE, ENV_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.state_dir / name).unlink()

    def restart_function(self, name: str, timeout: float = 60.0) -> None:
        """Kill -9 one function's processes and start it again on the same port (crash test)."""
        topology.function(name)  # KeyError for a name that is no function
        with self._lock:
            info = self.processes[name]
            _signal_group(info, signal.SIGKILL)
            old_popen = self._popens.get(name)
            _wait_gone([info], [old_popen] if old_popen else [], _TERM_GRACE_S)
            new_info, popen = _launch(
                name,
                info.cmd,
                info.port,
                Path(info.log).parent,
                Path(info.cwd),
                info.env,
            )
            self.processes[name] = new_info
            self._popens[name] = popen
            self._write_pid_file()
        _wait_ready(self, [name], time.monotonic() + timeout)

    def _write_pid_file(self) -> None:
        data = {name: asdict(info) for name, info in self.processes.items()}
        _atomic_write(self.state_dir / PID_FILE, json.dumps(data, indent=2) + "\n")

    def _write_env_file(self) -> None:
        lines = "".join(f"{key}={value}\n" for key, value in self.env.items())
        _atomic_write(self.state_dir / ENV_FILE, lines)

    @classmethod
    def load(cls, state_dir: Path) -> Stack | None:
        """The stack recorded in `state_dir` (running or not), or None when nothing is recorded."""
        pid_path = state_dir / PID_FILE
        if not pid_path.exists():
            return None
        try:
            raw = json.loads(pid_path.read_text())
            processes = {name: ProcessInfo(**entry) for name, entry in raw.items()}
        except (ValueError, TypeError) as exc:
            raise StackError(
                f"{pid_path} is unreadable ({exc}); stop its processes by hand"
            ) from exc
        env = read_env_file(state_dir / ENV_FILE)
        project = env.get("GOOGLE_CLOUD_PROJECT", DEFAULT_PROJECT)
        stack = cls(state_dir=state_dir, project=project, env=env, processes=processes)
        with contextlib.suppress(KeyError, ValueError, StackError):
            stack.retry_backoff_s = retry_backoff(
                float(env["LEADRUN_RETRY_MIN_S"]), float(env["LEADRUN_RETRY_MAX_S"])
            )
        return stack


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a stack.env (empty when the file is missing)."""
    env: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.lstrip().startswith("#"):
                env[key.strip()] = value.strip()
    return env


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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


def _wait_ready(stack: Stack, names: Sequence[str], deadline: float) -> None:
    """Poll until every component in `names` is up; StackError with the log tail otherwise.

    A port seen held by another process counts only if it stays so for `_FOREIGN_GRACE_S`:
    a server may briefly open and close a probe socket on its own port while starting.
    """
    pending = list(names)
    foreign_since: dict[str, float] = {}
    while pending:
        now = time.monotonic()
        for name in list(pending):
            state = stack.component_status(name)
            if state == "foreign":
                foreign_since.setdefault(name, now)
                if now - foreign_since[name] < _FOREIGN_GRACE_S:
                    continue
            else:
                foreign_since.pop(name, None)
            if state == "up":
                pending.remove(name)
            elif state in ("down", "foreign"):
                info = stack.processes[name]
                why = (
                    "exited" if state == "down" else f"port {info.port} is held by another process"
                )
                raise _ComponentFailed(name, state, f"{name} {why} during startup", info.log)
        if pending and time.monotonic() >= deadline:
            name = pending[0]
            raise _ComponentFailed(
                name, "timeout", f"{name} not ready in time", stack.processes[name].log
            )
        if pending:
            time.sleep(0.05)


class _ComponentFailed(StackError):
    def __init__(self, name: str, state: str, message: str, log_path: str) -> None:
        self.name = name
        self.state = state
        self.log_path = log_path
        tail = _log_tail(log_path)
        self.port_clash = state == "foreign" or any(e in tail.lower() for e in _BIND_ERRORS)
        super().__init__(f"{message} (log {log_path}):\n{tail}")


def _python() -> str:
    return sys.executable


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
        else _env_float("LEADRUN_STARTUP_TIMEOUT_S", DEFAULT_STARTUP_TIMEOUT_S)
    )
    auto = ports == "auto"
    port_map = resolve_ports(ports)
    log_dir = state_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "pubsub-data").mkdir(exist_ok=True)

    sandbox_template = list(sandbox_cmd or DEFAULT_SANDBOX_CMD)
    python = _python()
    allowed_origins = os.environ.get("LEADRUN_ALLOWED_ORIGINS", DEFAULT_ALLOWED_ORIGINS)

    def command(name: str, port: int) -> tuple[list[str], dict[str, str]]:
        if name == PUBSUB:
            return [
                gcloud,
                "beta",
                "emulators",
                "pubsub",
                "start",
                f"--host-port={HOST}:{port}",
                f"--project={project}",
                f"--data-dir={state_dir / 'pubsub-data'}",
            ], _emulator_env()
        if name == FIRESTORE:
            return [
                gcloud,
                "emulators",
                "firestore",
                "start",
                f"--host-port={HOST}:{port}",
            ], _emulator_env()
        if name == SANDBOX:
            values = {"python": python, "port": str(port), "project": project}
            return [part.format(**values) for part in sandbox_template], {
                "PYTHONPATH": str(REPO_ROOT),
                "GOOGLE_CLOUD_PROJECT": project,
                "PYTHONUNBUFFERED": "1",
            }
        if name == SCHEDULER:
            every = os.environ.get("LEADRUN_SWEEP_EVERY_S", f"{DEFAULT_SWEEP_EVERY_S:g}")
            return [
                python,
                "-m",
                "leadrun.scheduler",
                "--host",
                HOST,
                "--port",
                str(port),
                "--project",
                project,
                "--every",
                every,
            ], {
                "PYTHONPATH": str(REPO_ROOT),
                "PYTHONUNBUFFERED": "1",
                "PUBSUB_EMULATOR_HOST": f"{HOST}:{port_map[PUBSUB]}",
            }
        spec = topology.function(name)
        return [
            python,
            "-m",
            "functions_framework",
            "--target",
            spec.target,
            "--source",
            str(functions_dir / spec.source_dir / "main.py"),
            "--signature-type",
            spec.signature,
            "--host",
            HOST,
            "--port",
            str(port),
        ], {**function_env(), "K_SERVICE": name, "FUNCTION_TARGET": spec.target}

    def function_env() -> dict[str, str]:
        env = _client_env(project, port_map)
        return {
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "GOOGLE_CLOUD_PROJECT": project,
            "PUBSUB_EMULATOR_HOST": env["PUBSUB_EMULATOR_HOST"],
            "FIRESTORE_EMULATOR_HOST": env["FIRESTORE_EMULATOR_HOST"],
            "WORKSPACE_SANDBOX_URL": env["WORKSPACE_SANDBOX_URL"],
            "LEADRUN_GOOGLE_MODE": "sandbox",
            "LEADRUN_FIREBASE_CERTS_URL": env["LEADRUN_FIREBASE_CERTS_URL"],
            "LEADRUN_ALLOWED_ORIGINS": allowed_origins,
            **{k: v for k, v in os.environ.items() if k == GOOGLE_LIMITS_ENV},
            **(extra_env or {}),
        }

    stack = Stack(
        state_dir=state_dir,
        project=project,
        env=_client_env(project, port_map),
        processes={},
        retry_backoff_s=backoff,
    )
    started = time.monotonic()
    deadline = started + timeout

    def start(name: str) -> None:
        cmd, overrides = command(name, port_map[name])
        info, popen = _launch(name, cmd, port_map[name], log_dir, REPO_ROOT, overrides)
        stack.processes[name] = info
        stack._popens[name] = popen

    def start_and_wait(names: Sequence[str]) -> None:
        for name in names:
            start(name)
        stack._write_pid_file()  # recorded before waiting, so `down` can clean up after a crash
        attempts = 0
        while True:
            try:
                _wait_ready(stack, names, deadline)
                return
            except _ComponentFailed as failure:
                attempts += 1
                # Another process took a port we picked (tests run concurrently): pick again.
                if not (auto and failure.port_clash and attempts < 3):
                    raise
                terminate(stack.processes[failure.name], stack._popens.get(failure.name))
                port_map[failure.name] = free_ports(1)[0]
                log.warning(
                    "%s lost its port, retrying on %d", failure.name, port_map[failure.name]
                )
                start(failure.name)
                stack._write_pid_file()

    try:
        start_and_wait(BACKGROUND_SERVICES)
        apply_google_limits(stack.sandbox_url)
        start_and_wait([spec.name for spec in topology.FUNCTIONS])
        stack.env = {
            **_client_env(project, port_map),
            "LEADRUN_RETRY_MIN_S": f"{backoff[0]:g}",
            "LEADRUN_RETRY_MAX_S": f"{backoff[1]:g}",
        }
        ensure_topology(stack.pubsub_host, project, port_map, *backoff)
        start_and_wait([SCHEDULER])
        stack._write_env_file()
    except BaseException:
        stack.stop()
        raise
    stack.startup_s = time.monotonic() - started
    if stop_at_exit:
        atexit.register(stack.stop)  # stop() is idempotent: a later explicit stop is harmless
    return stack


def _client_env(project: str, port_map: Mapping[str, int]) -> dict[str, str]:
    """What stack.env holds for the given ports."""
    sandbox_url = f"http://{HOST}:{port_map[SANDBOX]}"
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "PUBSUB_EMULATOR_HOST": f"{HOST}:{port_map[PUBSUB]}",
        "FIRESTORE_EMULATOR_HOST": f"{HOST}:{port_map[FIRESTORE]}",
        "WORKSPACE_SANDBOX_URL": sandbox_url,
        "SCHEDULE_URL": f"http://{HOST}:{port_map['schedule']}/",
        "DIAGNOSTICS_URL": f"http://{HOST}:{port_map['diagnostics']}/",
        "LEADRUN_FIREBASE_CERTS_URL": f"{sandbox_url}/_sandbox/certs",
        "LEADRUN_GOOGLE_MODE": "sandbox",
        "LEADRUN_DEAD_LETTER_AUDIT_SUBSCRIPTION": DEAD_LETTER_AUDIT_SUBSCRIPTION,
    }
    for spec in topology.FUNCTIONS:
        env[function_url_key(spec.name)] = f"http://{HOST}:{port_map[spec.name]}/"
    return env


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
        _delete_topology(stack.pubsub_host, stack.project)
        ports = {spec.name: stack.port(spec.name) for spec in topology.FUNCTIONS}
        ensure_topology(stack.pubsub_host, stack.project, ports, *stack.retry_backoff_s)
    if sandbox:
        requests.post(f"{stack.sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()
        apply_google_limits(stack.sandbox_url)  # a reset empties limits too; keep the stack's


GOOGLE_LIMITS_ENV = "LEADRUN_GOOGLE_LIMITS"


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


# --------------------------------------------------------------------------------------------
# CLI.


def _stop_recorded(state_dir: Path) -> bool:
    """Stop the stack recorded in `state_dir`; False when nothing was recorded."""
    stack = Stack.load(state_dir)
    if stack is None:
        for name in (ENV_FILE,):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
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
