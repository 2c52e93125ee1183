"""A running local stack: its processes, addresses and health, and the files that record it.

`Stack.load(state_dir)` finds the stack `up` recorded (pid file and stack.env), so `down` and
`status` work from any process; `start_stack` (leadrun.stack) builds a new one.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import topology
from leadrun.client import read_env_file
from leadrun.processes import (
    TERM_GRACE_S,
    ProcessInfo,
    http_answers,
    launch,
    listening_inodes,
    log_tail,
    owned_processes,
    owns_port,
    signal_group,
    terminate_all,
    wait_gone,
)
from leadrun.stack_config import (
    BACKGROUND_SERVICES,
    DEFAULT_PROJECT,
    DEFAULT_RETRY_MAX_S,
    DEFAULT_RETRY_MIN_S,
    ENV_FILE,
    HOST,
    LOG_DIR,
    PID_FILE,
    PUSHER,
    REPO_ROOT,
    SANDBOX,
    SCHEDULER,
    StackError,
    retry_backoff,
)

_BIND_ERRORS = ("address already in use", "bindexception", "connection in use", "errno 98")
_FOREIGN_GRACE_S = 2.0


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
        return base + "/" if name not in (*BACKGROUND_SERVICES, SCHEDULER, PUSHER) else base

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
        if owns_port(members, info.port) is False:
            return "foreign" if listening_inodes(info.port) else "starting"
        want = 200 if name == SANDBOX else None
        path = "/_sandbox/health" if name == SANDBOX else "/"
        return "up" if http_answers(f"http://{HOST}:{info.port}{path}", want) else "starting"

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
            signal_group(info, signal.SIGKILL)
            old_popen = self._popens.get(name)
            wait_gone([info], [old_popen] if old_popen else [], TERM_GRACE_S)
            new_info, popen = launch(
                name,
                info.cmd,
                info.port,
                Path(info.log).parent,
                Path(info.cwd),
                info.env,
            )
            self.processes[name] = new_info
            self._popens[name] = popen
            self.write_pid_file()
        wait_ready(self, [name], time.monotonic() + timeout)

    def start_component(self, name: str, cmd: list[str], port: int, env: dict[str, str]) -> None:
        """Launch component `name` (its log in `<state_dir>/logs`) and record it."""
        info, popen = launch(name, cmd, port, self.state_dir / LOG_DIR, REPO_ROOT, env)
        self.processes[name] = info
        self._popens[name] = popen

    def stop_component(self, name: str) -> None:
        """Stop one component's processes (it stays recorded until started again)."""
        popen = self._popens.get(name)
        terminate_all([self.processes[name]], [popen] if popen is not None else [])

    def write_pid_file(self) -> None:
        """Record every process, so `down` can stop them from another interpreter."""
        data = {name: asdict(info) for name, info in self.processes.items()}
        _atomic_write(self.state_dir / PID_FILE, json.dumps(data, indent=2) + "\n")

    def write_env_file(self) -> None:
        """Write stack.env: what clients need to find the stack."""
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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def wait_ready(stack: Stack, names: Sequence[str], deadline: float) -> None:
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
                # One that gave up binding its port (gunicorn tries for a few seconds) exited
                # for the same reason as one seen beside another process's listener.
                clash = state == "foreign" or any(
                    e in log_tail(info.log).lower() for e in _BIND_ERRORS
                )
                why = f"port {info.port} is held by another process" if clash else "exited"
                raise ComponentFailed(name, state, f"{name} {why} during startup", info.log)
        if pending and time.monotonic() >= deadline:
            name = pending[0]
            raise ComponentFailed(
                name, "timeout", f"{name} not ready in time", stack.processes[name].log
            )
        if pending:
            time.sleep(0.05)


class ComponentFailed(StackError):
    """A component did not come up; `port_clash` when another process took its port."""

    def __init__(self, name: str, state: str, message: str, log_path: str) -> None:
        self.name = name
        self.state = state
        self.log_path = log_path
        tail = log_tail(log_path)
        self.port_clash = state == "foreign" or any(e in tail.lower() for e in _BIND_ERRORS)
        super().__init__(f"{message} (log {log_path}):\n{tail}")
