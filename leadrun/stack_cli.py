"""`python -m leadrun.stack up|down|status`: run the local stack in the background (`make up`).

`up` is idempotent: a recorded stack that is healthy is reused; `down` stops every process `up`
started, by pid, and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from common import topology
from leadrun.stack import Stack, start_stack
from leadrun.stack_config import (
    DEFAULT_FUNCTIONS_DIR,
    DEFAULT_PROJECT,
    DEFAULT_STATE_DIR,
    ENV_FILE,
    LOCK_FILE,
    StackError,
)


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
