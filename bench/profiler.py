"""Optional sampling profile of the function processes with py-spy (`--profile DIR`)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from leadrun.running_stack import Stack


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiling(stack: Stack, names: tuple[str, ...], out_dir: Path, tag: str) -> Iterator[None]:
    """Record `names`' processes (every thread, idle included: wall time, 100 Hz) meanwhile.

    Writes `<out_dir>/<tag>-<name>.txt` in collapsed-stack format. Only the py-spy processes
    started here are signalled (SIGINT makes py-spy write its output and exit).
    """
    exe = py_spy()
    if exe is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy==0.4.3)")
    out_dir.mkdir(parents=True, exist_ok=True)
    spies: list[subprocess.Popen[bytes]] = []
    for name in names:
        cmd = [exe, "record", "--pid", str(stack.processes[name].pid), "--subprocesses"]
        cmd += ["--rate", "100", "--idle", "--format", "raw", "--nonblocking"]
        cmd += ["--output", str(out_dir / f"{tag}-{name}.txt")]
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield
    finally:
        for spy in spies:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


ROOTS = ("handle_delivery", "handle_schedule")


def _frame_name(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `func (to/module.py)`; line numbers merged."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if parts else file
    return f"{name} ({short})"


def _category(leaf: str) -> str:
    """What the thread was doing at the leaf frame."""
    if "grpc/" in leaf or "grpc_" in leaf:
        return "gRPC wait (Firestore, Pub/Sub)"
    if any(k in leaf for k in ("http/client.py", "socket.py", "httplib2/", "ssl.py")):
        return "HTTP wait (Workspace sandbox)"
    if "Condition.wait" in leaf or "Event.wait" in leaf or "futures/_base.py" in leaf:
        return "waiting on a future or lock"
    return "Python on CPU"


@dataclass
class Breakdown:
    """Where the handlers' wall time went: samples under `ROOTS`, by project frame and kind."""

    samples: int = 0
    by_frame: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)


def breakdown(path: Path) -> Breakdown:
    """Attribute each handler sample to its deepest `common/` frame and to its leaf's kind."""
    result = Breakdown()
    if not path.exists():
        return result
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        roots = [i for i, f in enumerate(frames) if f.startswith(ROOTS)]
        if not roots:
            continue
        sub = frames[roots[0] :]
        count = int(count_text)
        own = [f for f in sub if "common/" in f]
        result.samples += count
        result.by_frame[_frame_name(own[-1]) if own else "?"] += count
        result.by_kind[_category(sub[-1])] += count
    return result
