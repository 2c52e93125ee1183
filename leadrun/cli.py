"""`leadrun`: the operator's command line (CONTRACT §8).

    leadrun run FILE [--dry-run] [--run-id ID] [--config FILE] [host/meeting/fallback flags]
    leadrun status RUN_ID [--json]
    leadrun report RUN_ID --out FILE.html
    leadrun replay RUN_ID
    leadrun seek SUBSCRIPTION --to TIME|SNAPSHOT
    leadrun redrive [--run-id ID]

Where the stack is: `--env FILE`; else the environment (`SCHEDULE_URL`, `DIAGNOSTICS_URL`,
`GOOGLE_CLOUD_PROJECT`, and `LEADRUN_ID_TOKEN` for a Firebase ID token) when `SCHEDULE_URL` is
set; else `.leadrun/stack.env` (what `make up` writes). On the local stack the operator's token
is minted by the sandbox for `--uid` (default `operator`). See docs/operations.md.

Exit codes: 0 ok; 1 some action failed (or the run did not settle in time); 2 bad input, nothing
sent; 3 the stack refused or could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from google.api_core.exceptions import GoogleAPICallError, InvalidArgument, NotFound
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from leadrun.client import LeadRunClient, read_env_file
from leadrun.leads import (
    LeadsFile,
    Problem,
    build_requests,
    read_leads_file,
    request_problems,
    settings_from_flags,
)
from leadrun.views import OUTCOME_LABELS, RunView, build_view, tally

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STACK = 0, 1, 2, 3
DEFAULT_ENV_FILE = Path(".leadrun") / "stack.env"
REPO_ENV_FILE = Path(__file__).resolve().parents[1] / ".leadrun" / "stack.env"
IMPLICIT_CONFIG = "run-config.json"
DEFAULT_AUDIT_SUBSCRIPTION = "lead-dead-letter-audit"
PROGRESS_ORDER = ("booked", "no_slot", "sent", "drafted", "created", "rejected", "failed")
_COLOURS = {
    "booked": "green",
    "no_slot": "yellow",
    "sent": "green",
    "drafted": "blue",
    "created": "green",
    "rejected": "red",
    "failed": "bold red",
    "simulated": "cyan",
}


class CliError(Exception):
    """A problem to report in one line, with the exit code to end on."""

    def __init__(self, message: str, code: int = EXIT_STACK) -> None:
        super().__init__(message)
        self.code = code


# -- where the stack is -----------------------------------------------------------------------
def resolve_env(env_file: str | None) -> tuple[dict[str, str], str | None]:
    """(stack environment, Firebase ID token or None) as described in the module doc."""
    if env_file:
        path = Path(env_file)
        if not path.exists():
            raise CliError(f"no such env file: {path}")
        return read_env_file(str(path)), os.environ.get("LEADRUN_ID_TOKEN") or None
    if os.environ.get("SCHEDULE_URL"):
        missing = [
            key for key in ("DIAGNOSTICS_URL", "GOOGLE_CLOUD_PROJECT") if not os.environ.get(key)
        ]
        if missing:
            raise CliError(f"SCHEDULE_URL is set but {', '.join(missing)} is not")
        keys = (
            "SCHEDULE_URL",
            "DIAGNOSTICS_URL",
            "GOOGLE_CLOUD_PROJECT",
            "PUBSUB_EMULATOR_HOST",
            "FIRESTORE_EMULATOR_HOST",
            "WORKSPACE_SANDBOX_URL",
            "LEADRUN_DEAD_LETTER_AUDIT_SUBSCRIPTION",
        )
        env = {key: os.environ[key] for key in keys if os.environ.get(key)}
        token = os.environ.get("LEADRUN_ID_TOKEN") or None
        if token is None and not env.get("WORKSPACE_SANDBOX_URL"):
            raise CliError("set LEADRUN_ID_TOKEN to a Firebase ID token (see docs/operations.md)")
        return env, token
    state_dir = os.environ.get("LEADRUN_STATE_DIR")
    candidates = [Path(state_dir) / "stack.env"] if state_dir else []
    candidates += [DEFAULT_ENV_FILE, REPO_ENV_FILE]
    for path in candidates:
        if path.exists():
            return read_env_file(str(path)), os.environ.get("LEADRUN_ID_TOKEN") or None
    raise CliError(
        "no stack found: run `make up` (writes .leadrun/stack.env), pass --env FILE, "
        "or set SCHEDULE_URL, DIAGNOSTICS_URL, GOOGLE_CLOUD_PROJECT and LEADRUN_ID_TOKEN"
    )


def _client(args: argparse.Namespace) -> LeadRunClient:
    env, token = resolve_env(args.env)
    if token is None and not env.get("WORKSPACE_SANDBOX_URL"):
        raise CliError("no ID token: set LEADRUN_ID_TOKEN (production has no sandbox to mint one)")
    return LeadRunClient(env, uid=args.uid, id_token=token)


def _console() -> Console:
    # Piped output (make demo | tee, CI logs) gets a wide fixed width instead of 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=150)


def _error_text(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}: {answer.text[:300]}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"HTTP {answer.status_code}: {json.dumps(body)[:300]}"
    lines = [f"HTTP {answer.status_code} {error.get('code')}: {error.get('message')}"]
    for detail in error.get("details") or []:
        lines.append(f"  {detail.get('field')}: {detail.get('message')}")
    return "\n".join(lines)


def _funnel(client: LeadRunClient, run_id: str) -> dict[str, Any]:
    try:
        answer = client.diagnostics(run_id)
    except requests.RequestException as exc:
        raise CliError(f"diagnostics unreachable: {exc}") from exc
    if answer.status_code != 200:
        raise CliError(f"diagnostics for {run_id}: {_error_text(answer)}")
    return dict(answer.json())


def _view(client: LeadRunClient, run_id: str) -> RunView:
    return build_view(_funnel(client, run_id), client.receipts(run_id))


# -- waiting, with a progress bar -------------------------------------------------------------
def _outcomes_text(buckets: Counter[str]) -> str:
    parts = []
    for key in (*PROGRESS_ORDER, *sorted(set(buckets) - set(PROGRESS_ORDER))):
        if buckets.get(key):
            colour = _COLOURS.get(key, "white")
            label = OUTCOME_LABELS.get(key, key)
            parts.append(f"[{colour}]{label} {buckets[key]}[/]")
    return "  ".join(parts) or "[dim]waiting for the first receipts[/]"


def wait_with_progress(
    console: Console,
    client: LeadRunClient,
    run_id: str,
    *,
    expected: int,
    timeout_s: float,
    poll_s: float = 0.4,
) -> bool:
    """Show terminal receipts by outcome until every receipt is terminal; False on timeout."""
    deadline = time.monotonic() + timeout_s
    columns = (
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=36),
        MofNCompleteColumn(),
        TextColumn("{task.fields[outcomes]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("receipts", total=max(expected, 1), outcomes="")
        while True:
            total, done, buckets = tally(client.receipts(run_id))
            total = max(total, expected)
            progress.update(task, total=total, completed=done, outcomes=_outcomes_text(buckets))
            if done >= total:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)


def summary_table(view: RunView) -> Table:
    """Per action: how many receipts ended how."""
    by_action: dict[str, Counter[str]] = {}
    expanded = 0
    for row in view.leads:
        expanded += int(row.expanded)
        for action, receipt in row.receipts.items():
            key = str(receipt.get("outcome") or receipt.get("status"))
            by_action.setdefault(action, Counter())[key] += 1
    mode = "dry run: what would happen" if view.dry_run else "live run"
    table = Table(title=f"run {view.run_id} · {mode}", title_justify="left")
    table.add_column("action")
    for key in ("booked", "no_slot", "sent", "drafted", "created", "rejected", "failed", "pending"):
        table.add_column(OUTCOME_LABELS.get(key, key), justify="right")
    for action in ("calendar", "email", "drive"):
        if action not in by_action:
            continue
        counts = by_action[action]
        cells = []
        for key in ("booked", "no_slot", "sent", "drafted", "created", "rejected", "failed"):
            value = counts.get(key, 0)
            cells.append(f"[{_COLOURS.get(key, 'white')}]{value}[/]" if value else "[dim]·[/]")
        cells.append(str(counts.get("pending", 0)) if counts.get("pending") else "[dim]·[/]")
        if action == "calendar" and expanded:
            cells[0] += f" [dim]({expanded} expanded)[/]"
        table.add_row(action, *cells)
    return table


def funnel_table(view: RunView) -> Table:
    """The diagnostics funnel (CONTRACT §6) with a bar per stage."""
    c = view.counts
    stages: list[tuple[str, int, str]] = []
    if c.get("sourced") or c.get("filtered"):
        stages += [
            ("sourced", c.get("sourced", 0), "white"),
            ("filtered out", c["filtered"], "dim"),
        ]
    stages += [
        ("submitted", view.submitted, "white"),
        ("accepted", c.get("accepted", 0), "cyan"),
        ("rejected", c.get("rejected", 0), "red"),
        ("booked", c.get("booked", 0), "green"),
        ("no slot", c.get("noSlot", 0), "yellow"),
        ("sent", c.get("sent", 0), "green"),
        ("drafted", c.get("drafted", 0), "blue"),
        ("folders", c.get("foldersCreated", 0), "green"),
        ("simulated", c.get("simulated", 0), "cyan"),
        ("failed", c.get("failed", 0), "bold red"),
        ("pending", c.get("pending", 0), "white"),
    ]
    top = max([value for _, value, _ in stages] + [1])
    table = Table(title=f"diagnostics funnel · {view.run_id}", title_justify="left")
    table.add_column("stage")
    table.add_column("count", justify="right")
    table.add_column("", min_width=30)
    for name, value, colour in stages:
        bar = "█" * round(30 * value / top) if value else ""
        table.add_row(name, str(value), f"[{colour}]{bar}[/]")
    return table


def reasons_line(view: RunView) -> str:
    """Diagnostics' reasons (counted per receipt) in one line."""
    if not view.reasons:
        return "reasons: none"
    return "reasons (receipts): " + ", ".join(f"{k} {v}" for k, v in sorted(view.reasons.items()))


def _link(url: str | None, text: str) -> str:
    if not url or not url.startswith(("http://", "https://")):
        return ""
    return f"[link={escape(url)}]{text}[/link]"


def leads_table(view: RunView) -> Table:
    """One row per lead: status, outcome, reason, links to the event, the Meet and the folder."""
    table = Table(title=f"receipts per lead · {view.run_id}", title_justify="left")
    for name in ("lead", "email", "status", "outcome", "reason", "meeting", "links"):
        table.add_column(name, overflow="fold")
    status_colour = {
        "done": "green",
        "simulated": "cyan",
        "rejected": "red",
        "failed": "bold red",
        "pending": "yellow",
    }
    for row in view.leads:
        links = " ".join(
            part
            for part in (
                _link(row.links.event, "event"),
                _link(row.links.meet, "meet"),
                _link(row.links.folder, "folder"),
            )
            if part
        )
        meeting = ""
        if row.meeting_start:
            meeting = row.meeting_start[:16].replace("T", " ") + (" ⤳" if row.expanded else "")
        colour = status_colour.get(row.status, "white")
        table.add_row(
            escape(row.lead_doc_id),
            escape(row.email or "—"),
            f"[{colour}]{row.status}[/]",
            escape(row.outcome),
            escape(row.reason or ""),
            meeting,
            links or "[dim]—[/]",
        )
    table.caption = "⤳ booked by the expanded search (no candidate slot was free)"
    table.caption_justify = "left"
    return table


# -- commands ---------------------------------------------------------------------------------
def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"config {path}: {exc}", EXIT_INPUT) from exc
    if not isinstance(data, dict):
        raise CliError(f"config {path}: expected a JSON object", EXIT_INPUT)
    return data


def load_leads(args: argparse.Namespace, now: datetime) -> LeadsFile:
    """Read and validate the leads file with its settings (nothing is sent)."""
    path = Path(args.file)
    if not path.exists():
        raise CliError(f"no such file: {path}", EXIT_INPUT)
    config = _read_config(Path(args.config)) if args.config else None
    sibling = path.parent / IMPLICIT_CONFIG
    implicit = _read_config(sibling) if config is None and sibling.exists() else None
    overrides = settings_from_flags(
        host_email=args.host_email,
        host_tz=args.host_tz,
        host_name=args.host_name,
        title=args.title,
        duration=args.duration,
        expand_days=args.expand_days,
        workday=args.workday,
        no_draft=args.no_draft,
        actions=args.actions,
        parent_folder=args.parent_folder,
    )
    return read_leads_file(path, now, config=config, overrides=overrides, implicit_config=implicit)


def _report_problems(problems: Sequence[Problem], source: str) -> None:
    print(f"{source}: {len(problems)} problem(s); nothing was sent:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def new_run_id(dry_run: bool, now: datetime) -> str:
    """`run-20261126-1502-1a2b3c` (a dry run starts with `dry-`)."""
    prefix = "dry" if dry_run else "run"
    return f"{prefix}-{now.strftime('%Y%m%d-%H%M')}-{uuid.uuid4().hex[:6]}"


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, submit in requests of at most 500 leads, follow the run until it settles."""
    console = _console()
    now = datetime.now(UTC)
    parsed = load_leads(args, now)
    if parsed.problems:
        _report_problems(parsed.problems, args.file)
        return EXIT_INPUT
    if not parsed.leads:
        _report_problems([Problem("file", "leads", "no leads in the file")], args.file)
        return EXIT_INPUT
    dry_run = bool(args.dry_run or parsed.dry_run)
    run_id = args.run_id or parsed.run_id or new_run_id(dry_run, now)
    bodies = build_requests(run_id, dry_run, parsed.settings, parsed.leads)
    problems = request_problems(bodies[0])
    if problems:
        _report_problems(problems, args.file)
        return EXIT_INPUT
    client = _client(args)
    host = parsed.settings["host"]
    console.print(
        f"[bold]run[/] {run_id} · {'[cyan]dry run[/]' if dry_run else '[green]live[/]'} · "
        f"{len(parsed.leads)} leads in {len(bodies)} request(s) · host {escape(host['calendarId'])}"
        f" ({escape(host['timeZone'])})"
    )
    accepted = rejected = 0
    for index, body in enumerate(bodies, start=1):
        try:
            answer = client.schedule(body)
        except requests.RequestException as exc:
            raise CliError(f"schedule unreachable: {exc}") from exc
        if answer.status_code != 202:
            console.print(f"[red]request {index}/{len(bodies)} refused[/]")
            print(_error_text(answer), file=sys.stderr)
            if index > 1:
                print(f"the first {index - 1} request(s) were accepted", file=sys.stderr)
            return EXIT_STACK if answer.status_code >= 500 or index > 1 else EXIT_INPUT
        result = answer.json()
        accepted += len(result.get("accepted") or [])
        rejected += len(result.get("rejected") or [])
    console.print(f"accepted {accepted} · rejected at intake {rejected}")
    if parsed.stages:
        stages = client.post_stages({"runId": run_id, **parsed.stages})
        if stages.status_code != 200:
            console.print(f"[yellow]lead-engine stages not recorded: {_error_text(stages)}[/]")
    expected = len(parsed.leads) * len(parsed.settings["actions"])
    settled = wait_with_progress(console, client, run_id, expected=expected, timeout_s=args.timeout)
    view = _view(client, run_id)
    console.print(summary_table(view))
    failed = view.counts.get("failed", 0)
    if not settled:
        console.print(f"[red]not settled after {args.timeout:g}s[/]: `leadrun status {run_id}`")
        return EXIT_FAILED
    if failed:
        console.print(
            f"[red]{failed} action(s) failed[/]: see `leadrun status {run_id}`; "
            f"`leadrun replay {run_id}` retries them"
        )
        return EXIT_FAILED
    console.print(f"settled · `leadrun status {run_id}` · `leadrun report {run_id} --out FILE`")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """The funnel and a per-lead table (or JSON)."""
    client = _client(args)
    view = _view(client, args.run_id)
    if args.json:
        print(json.dumps(view.to_json(), indent=2, sort_keys=False))
        return EXIT_OK
    console = _console()
    console.print(leads_table(view))
    console.print(funnel_table(view))
    console.print(reasons_line(view))
    return EXIT_FAILED if view.counts.get("failed", 0) else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Write the run's self-contained HTML report."""
    from leadrun.report import render_report

    client = _client(args)
    view = _view(client, args.run_id)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(view), encoding="utf-8")
    print(f"report written: {out.resolve()}")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Reopen failed receipts and re-publish every action that is not terminal."""
    from leadrun.operations import pubsub_clients, replay_run

    client = _client(args)
    if client.store.get_run(args.run_id) is None:
        raise CliError(f"no run {args.run_id}", EXIT_INPUT)
    console = _console()
    with pubsub_clients(client.env) as (bus, _subscriber):
        result = replay_run(client.store, bus, args.run_id)
    console.print(
        f"replay {args.run_id}: reopened {len(result.reopened)} failed receipt(s), "
        f"re-published {len(result.published)} action(s)"
    )
    for lead_id, action in result.published:
        console.print(f"  → {lead_id} {action}")
    if args.no_wait or not result.published:
        return EXIT_OK
    total, _, _ = tally(client.receipts(args.run_id))
    settled = wait_with_progress(
        console, client, args.run_id, expected=total, timeout_s=args.timeout
    )
    rows = client.receipts(args.run_id)
    failed = sum(1 for _, _, rs in rows for r in rs.values() if r.get("status") == "failed")
    if not settled or failed:
        console.print(f"[red]{failed} failed, settled: {settled}[/]")
        return EXIT_FAILED
    console.print("settled: every receipt is terminal and none failed")
    return EXIT_OK


def cmd_seek(args: argparse.Namespace) -> int:
    """Seek a subscription to a time or a snapshot."""
    from leadrun.operations import (
        parse_seek_target,
        pubsub_clients,
        seek_subscription,
        subscription_path,
    )

    env, _ = resolve_env(args.env)
    try:
        target = parse_seek_target(args.to)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    path = subscription_path(env["GOOGLE_CLOUD_PROJECT"], args.subscription)
    with pubsub_clients(env) as (_bus, subscriber):
        seek_subscription(subscriber, path, target)
    shown = target.isoformat() if isinstance(target, datetime) else f"snapshot {target}"
    print(f"seeked {path} to {shown}")
    return EXIT_OK


def cmd_redrive(args: argparse.Namespace) -> int:
    """Dead-lettered messages back to their topics, their receipts reopened."""
    from leadrun.operations import pubsub_clients, redrive_dead_letters, subscription_path

    client = _client(args)
    name = (
        args.subscription
        or client.env.get("LEADRUN_DEAD_LETTER_AUDIT_SUBSCRIPTION")
        or DEFAULT_AUDIT_SUBSCRIPTION
    )
    path = subscription_path(client.env["GOOGLE_CLOUD_PROJECT"], name)
    with pubsub_clients(client.env) as (bus, subscriber):
        result = redrive_dead_letters(
            client.store, bus, subscriber, path, run_id=args.run_id, max_messages=args.max
        )
    print(
        f"redrove {len(result.redriven)} dead letter(s) from {path}"
        f" (already settled {result.settled}, left for later {result.skipped},"
        f" dropped {result.dropped})"
    )
    for run_id, lead_id, action in result.redriven:
        print(f"  → {run_id} {lead_id} {action}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The `leadrun` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--env",
        metavar="FILE",
        help="stack.env to use (default: $SCHEDULE_URL... if set, else .leadrun/stack.env)",
    )
    common.add_argument(
        "--uid",
        default=os.environ.get("LEADRUN_UID", "operator"),
        help="operator uid on the local stack (token minted by the sandbox; default operator)",
    )
    parser = argparse.ArgumentParser(
        prog="leadrun",
        description="Operate lead runs: submit, follow, inspect, report, replay.",
        epilog="docs/operations.md has the file formats, the slot syntax and production use.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[common], help="submit a CSV or JSON file of leads and follow the run"
    )
    run.add_argument("file", help="leads: .csv (columns in docs/operations.md) or .json")
    run.add_argument(
        "--dry-run", action="store_true", help="simulate: nothing is written to Google"
    )
    run.add_argument("--run-id", help="run id (default: generated); resubmitting one is safe")
    run.add_argument(
        "--config",
        help=f"run settings JSON (default: {IMPLICIT_CONFIG} next to the leads file, if any)",
    )
    run.add_argument("--host-email", help="host calendar and sender address")
    run.add_argument("--host-tz", help="host IANA time zone (relative slots are read in it)")
    run.add_argument("--host-name", help="host display name")
    run.add_argument("--title", help="meeting title")
    run.add_argument("--duration", type=int, help="meeting length in minutes")
    run.add_argument("--expand-days", type=int, help="working days the fallback search covers")
    run.add_argument("--workday", metavar="HH:MM-HH:MM", help="working hours, e.g. 09:00-17:00")
    run.add_argument(
        "--no-draft", action="store_true", help="no availability draft when no slot is free"
    )
    run.add_argument("--actions", help="comma-separated subset of calendar,email,drive")
    run.add_argument("--parent-folder", help="Drive folder id the lead folders go into")
    run.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the run to settle"
    )
    run.set_defaults(handler=cmd_run)

    status = sub.add_parser("status", parents=[common], help="funnel and per-lead receipts")
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    report = sub.add_parser("report", parents=[common], help="self-contained HTML report")
    report.add_argument("run_id", metavar="RUN_ID")
    report.add_argument("--out", required=True, metavar="FILE.html")
    report.set_defaults(handler=cmd_report)

    replay = sub.add_parser(
        "replay",
        parents=[common],
        help="re-publish every action without a terminal receipt, or failed",
    )
    replay.add_argument("run_id", metavar="RUN_ID")
    replay.add_argument("--no-wait", action="store_true", help="do not wait for the run to settle")
    replay.add_argument("--timeout", type=float, default=600.0)
    replay.set_defaults(handler=cmd_replay)

    seek = sub.add_parser("seek", parents=[common], help="seek a subscription to a time/snapshot")
    seek.add_argument("subscription", metavar="SUBSCRIPTION", help="e.g. lead-notify-send")
    seek.add_argument("--to", required=True, metavar="TIME|SNAPSHOT", help="RFC 3339 or snapshot")
    seek.set_defaults(handler=cmd_seek)

    redrive = sub.add_parser(
        "redrive", parents=[common], help="dead-lettered messages back to their topics"
    )
    redrive.add_argument(
        "--subscription",
        help=f"dead-letter pull subscription (default {DEFAULT_AUDIT_SUBSCRIPTION})",
    )
    redrive.add_argument("--run-id", help="only this run's dead letters (others stay queued)")
    redrive.add_argument("--max", type=int, default=1000, help="at most this many messages")
    redrive.set_defaults(handler=cmd_redrive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `leadrun`."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as exc:
        print(f"leadrun: {exc}", file=sys.stderr)
        return exc.code
    except requests.RequestException as exc:
        print(f"leadrun: the stack could not be reached: {exc}", file=sys.stderr)
        return EXIT_STACK
    except GoogleAPICallError as exc:
        print(f"leadrun: {type(exc).__name__}: {exc.message or exc}", file=sys.stderr)
        return EXIT_INPUT if isinstance(exc, NotFound | InvalidArgument) else EXIT_STACK
    except KeyboardInterrupt:
        print("leadrun: interrupted; the run goes on (see `leadrun status`)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
