"""`make demo`: what an operator does, on the local stack, in one command.

1. start the local stack in the background (`python -m leadrun.stack up`; reused when it is
   already up; `make down` stops it),
2. empty the sandbox and the run data (Firestore) so the demo starts from a clean slate,
3. seed busy blocks in the host's calendar (`samples/busy.json`, in the slot syntax), so some
   leads' candidate slots are taken (expanded search) and two leads find nothing at all
   (no slot: an availability draft instead),
4. run the `leadrun` commands exactly as an operator types them: a dry run, the live run,
   `leadrun status` (per-lead receipts + diagnostics funnel) and `leadrun report`,
5. print the address of the live run's Operations page (`leadrun ui`).

The commands are the CLI's own `main()`, called in-process, so the output is the CLI's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.rule import Rule

from leadrun import cli, terminal
from leadrun.client import LeadRunClient, read_env_file
from leadrun.leads import parse_slot, today_in
from leadrun.running_stack import Stack
from leadrun.stack import reset_emulators
from leadrun.stack_config import DEFAULT_STATE_DIR, ENV_FILE, REPO_ROOT
from leadrun.ui import ops_url

SAMPLES = REPO_ROOT / "samples"


def _step(console: Console, title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{title}", align="left"))


def _operator(console: Console, argv: list[str]) -> int:
    """Show a command as typed, then run it."""
    console.print(f"[bold green]$[/] leadrun {shlex.join(argv)}")
    sys.stdout.flush()
    code = cli.main(argv)
    sys.stdout.flush()
    return code


def start_stack(state_dir: Path) -> dict[str, str]:
    """`python -m leadrun.stack up` (idempotent); returns stack.env."""
    subprocess.run(
        [sys.executable, "-m", "leadrun.stack", "up", "--state-dir", str(state_dir)],
        check=True,
        cwd=REPO_ROOT,
    )
    return read_env_file(state_dir / ENV_FILE)


def seed_busy(console: Console, client: LeadRunClient, busy_file: Path, now: datetime) -> None:
    """Busy blocks from `busy_file`, read in its time zone with the leads' slot syntax."""
    spec = json.loads(busy_file.read_text(encoding="utf-8"))
    zone = ZoneInfo(spec["timeZone"])
    today = today_in(zone, now)
    for block in spec["blocks"]:
        span = parse_slot(block["slot"], today, zone)
        client.sandbox.busy(spec["calendarId"], span["start"], span["end"])
        console.print(
            f"  busy {spec['calendarId']} {span['start']} → {span['end']}"
            f"  [dim]({block.get('why', '')})[/]"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit non-zero if any step did."""
    parser = argparse.ArgumentParser(prog="python -m leadrun.demo", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LEADRUN_STATE_DIR") or DEFAULT_STATE_DIR),
        help="the stack's state dir (default: LEADRUN_STATE_DIR or <repo>/.leadrun)",
    )
    parser.add_argument("--leads", type=Path, default=SAMPLES / "leads.csv")
    parser.add_argument("--busy", type=Path, default=SAMPLES / "busy.json")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    console = terminal.console()
    # The CLI finds the stack through LEADRUN_STATE_DIR, exactly as it would after `make up`.
    os.environ["LEADRUN_STATE_DIR"] = str(state_dir)
    os.chdir(REPO_ROOT)

    _step(console, "1. local stack (make up)")
    env = start_stack(state_dir)
    stack = Stack.load(state_dir)
    if stack is None:
        console.print("[red]the stack did not record itself[/]")
        return 1

    _step(console, "2. clean slate: empty the sandbox and the run data, seed busy blocks")
    reset_emulators(stack, firestore=True, pubsub=False, sandbox=True)
    client = LeadRunClient(env, uid="operator")
    now = datetime.now(UTC)
    seed_busy(console, client, args.busy, now)

    stamp = now.strftime("%Y%m%d-%H%M%S")
    leads = os.path.relpath(args.leads, REPO_ROOT)
    dry_id, live_id = f"demo-dry-{stamp}", f"demo-{stamp}"

    _step(console, "3. dry run: what would happen (nothing is written to Google)")
    if _operator(console, ["run", leads, "--dry-run", "--run-id", dry_id]) != 0:
        return 1

    _step(console, "4. live run")
    if _operator(console, ["run", leads, "--run-id", live_id]) != 0:
        return 1

    _step(console, "5. status: receipts per lead and the diagnostics funnel")
    if _operator(console, ["status", live_id]) != 0:
        return 1

    _step(console, "6. HTML report")
    report = state_dir / f"report-{live_id}.html"
    out = str(report.relative_to(REPO_ROOT)) if report.is_relative_to(REPO_ROOT) else str(report)
    if _operator(console, ["report", live_id, "--out", out]) != 0:
        return 1

    state = client.sandbox.state()
    console.print()
    console.print(
        f"[bold]done.[/] sandbox now holds {len(state['events'])} events, "
        f"{len(state['messages'])} sent messages, {len(state['drafts'])} drafts, "
        f"{len(state['folders'])} folders"
    )
    console.print(f"report: file://{report}")
    console.print(f"Operations page (sign in as operator): {ops_url(env, live_id, 'operator')}")
    console.print("the stack keeps running: `make down` stops it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
