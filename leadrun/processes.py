"""Processes of the local stack: start each in its own process group, recognise our own, stop them.

Only processes this module started are ever signalled: each is recorded with its pid, process
group and start time, and checked against `/proc` before it is stopped. Which process holds a
listening port is read from `/proc` too, so a port taken by another program is never mistaken
for ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

log = logging.getLogger(__name__)

TERM_GRACE_S = 5.0


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


def proc_stat(pid: int) -> tuple[str, int, int] | None:
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
        stat = proc_stat(int(entry))
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
    leader = proc_stat(info.pgid)
    if leader is not None and leader[2] != info.start_time:
        return []
    members = []
    for pid in _group_members(info.pgid):
        stat = proc_stat(pid)
        if stat is not None and stat[2] >= info.start_time:
            members.append(pid)
    return members


def listening_inodes(port: int) -> set[str]:
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


def owns_port(pids: Sequence[int], port: int) -> bool | None:
    """Whether one of `pids` holds the listening socket of `port`; None when /proc can't tell."""
    inodes = listening_inodes(port)
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


def http_answers(url: str, want_status: int | None = None) -> bool:
    """Whether `url` answers HTTP at all (or with `want_status`)."""
    try:
        response = requests.get(url, timeout=1.0)
    except requests.RequestException:
        return False
    return want_status is None or response.status_code == want_status


def log_tail(path: str | Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file (for error messages)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def launch(
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
    stat = proc_stat(popen.pid)
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


def terminate_all(
    infos: Iterable[ProcessInfo], popens: Iterable[subprocess.Popen[bytes]] = ()
) -> None:
    """Stop process groups: SIGTERM to all, wait, SIGKILL what is left. Never touches others."""
    infos, popens = list(infos), list(popens)
    for info in infos:
        signal_group(info, signal.SIGTERM)
    if wait_gone(infos, popens, TERM_GRACE_S):
        return
    for info in infos:
        signal_group(info, signal.SIGKILL)
    if not wait_gone(infos, popens, TERM_GRACE_S):
        left = [pid for info in infos for pid in owned_processes(info)]
        log.warning("processes %s did not exit after SIGKILL", left)


def signal_group(info: ProcessInfo, sig: signal.Signals) -> None:
    """Send `sig` to the processes of `info` that are ours, and to no other."""
    members = owned_processes(info)
    if not members:
        return
    if proc_stat(info.pgid) is not None or len(members) == len(_group_members(info.pgid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(info.pgid, sig)
    else:  # leader gone and the group holds strangers: signal ours one by one
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def wait_gone(
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
