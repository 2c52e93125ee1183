"""`leadrun`: the operator's command line (docs/api.md, "CLI").

    leadrun run FILE [--dry-run] [--run-id ID] [--config FILE] [host/meeting/fallback flags]
    leadrun status RUN_ID [--json]
    leadrun report RUN_ID --out FILE.html
    leadrun ui [RUN_ID] [--no-open]
    leadrun pause|resume|cancel|replay RUN_ID [--lead ID]... [--yes] (replay: [--no-wait])
    leadrun undo RUN_ID [--lead ID]... [--preview] [--yes]
    leadrun seek SUBSCRIPTION --to TIME|SNAPSHOT
    leadrun redrive [--run-id ID]

Where the stack is: `--env FILE`; else the environment (`SCHEDULE_URL`, `DIAGNOSTICS_URL`,
`CONTROL_URL`, `GOOGLE_CLOUD_PROJECT`, and `LEADRUN_ID_TOKEN` for a Firebase ID token) when
`SCHEDULE_URL` is set; else `.leadrun/stack.env` (what `make up` writes). On the local stack the
operator's token is minted by the sandbox for `--uid` (default `$LEADRUN_UID`, else `operator`).
Steering goes through `CONTROL_URL` with that token, like any client: the function decides who
may steer which run (its owner; an operator listed in `LEADRUN_OPERATOR_UIDS`). See
docs/operations.md.

Exit codes: 0 ok; 1 some action failed (or the run did not settle in time, or a cancel was not
confirmed, or an undo); 2 bad input, nothing sent; 3 the stack refused or could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from google.api_core.exceptions import GoogleAPICallError, InvalidArgument, NotFound
from rich.markup import escape

from leadrun import terminal
from leadrun.client import LeadRunClient, read_env_file
from leadrun.leads import (
    LeadsFile,
    Problem,
    build_requests,
    read_leads_file,
    request_problems,
    settings_from_flags,
)
from leadrun.stack_config import DEAD_LETTER_AUDIT_SUBSCRIPTION
from leadrun.views import RunView, build_view, page_rows

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STACK = 0, 1, 2, 3
DEFAULT_ENV_FILE = Path(".leadrun") / "stack.env"
REPO_ENV_FILE = Path(__file__).resolve().parents[1] / ".leadrun" / "stack.env"
IMPLICIT_CONFIG = "run-config.json"


class CliError(Exception):
    """A problem to report in one line, with the exit code to end on."""

    def __init__(self, message: str, code: int = EXIT_STACK) -> None:
        super().__init__(message)
        self.code = code


# -- where the stack is -----------------------------------------------------------------------
def resolve_env(env_file: str | None) -> tuple[dict[str, str], str | None]:
    """(stack environment, Firebase ID token or None) as described in the module doc."""
    token = os.environ.get("LEADRUN_ID_TOKEN") or None
    if env_file:
        path = Path(env_file)
        if not path.exists():
            raise CliError(f"no such env file: {path}")
        return read_env_file(path), token
    if os.environ.get("SCHEDULE_URL"):
        missing = [
            key for key in ("DIAGNOSTICS_URL", "GOOGLE_CLOUD_PROJECT") if not os.environ.get(key)
        ]
        if missing:
            raise CliError(f"SCHEDULE_URL is set but {', '.join(missing)} is not")
        keys = (
            "SCHEDULE_URL",
            "DIAGNOSTICS_URL",
            "CONTROL_URL",
            "GOOGLE_CLOUD_PROJECT",
            "PUBSUB_EMULATOR_HOST",
            "FIRESTORE_EMULATOR_HOST",
            "WORKSPACE_SANDBOX_URL",
            "LEADRUN_DEAD_LETTER_AUDIT_SUBSCRIPTION",
        )
        env = {key: os.environ[key] for key in keys if os.environ.get(key)}
        if token is None and not env.get("WORKSPACE_SANDBOX_URL"):
            raise CliError("set LEADRUN_ID_TOKEN to a Firebase ID token (see docs/operations.md)")
        return env, token
    state_dir = os.environ.get("LEADRUN_STATE_DIR")
    candidates = [Path(state_dir) / "stack.env"] if state_dir else []
    candidates += [DEFAULT_ENV_FILE, REPO_ENV_FILE]
    for path in candidates:
        if path.exists():
            return read_env_file(path), token
    raise CliError(
        "no stack found: run `make up` (writes .leadrun/stack.env), pass --env FILE, "
        "or set SCHEDULE_URL, DIAGNOSTICS_URL, GOOGLE_CLOUD_PROJECT and LEADRUN_ID_TOKEN"
    )


def _client(args: argparse.Namespace) -> LeadRunClient:
    env, token = resolve_env(args.env)
    if token is None and not env.get("WORKSPACE_SANDBOX_URL"):
        raise CliError("no ID token: set LEADRUN_ID_TOKEN (production has no sandbox to mint one)")
    return LeadRunClient(env, uid=args.uid, id_token=token)


def _funnel(client: LeadRunClient, run_id: str) -> dict[str, Any]:
    try:
        answer = client.diagnostics(run_id)
    except requests.RequestException as exc:
        raise CliError(f"diagnostics unreachable: {exc}") from exc
    if answer.status_code != 200:
        raise CliError(f"diagnostics for {run_id}: {terminal.error_text(answer)}")
    return dict(answer.json())


def _view(client: LeadRunClient, run_id: str) -> RunView:
    """The run from diagnostics and the pages of `/leads`: never a read of every receipt."""
    funnel = _funnel(client, run_id)
    try:
        leads = client.all_leads(run_id)
    except requests.HTTPError as exc:
        assert exc.response is not None
        raise CliError(f"leads of {run_id}: {terminal.error_text(exc.response)}") from exc
    return build_view(funnel, page_rows(leads))


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
    console = terminal.console()
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
            print(terminal.error_text(answer), file=sys.stderr)
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
            problem = terminal.error_text(stages)
            console.print(f"[yellow]lead-engine stages not recorded: {problem}[/]")
    expected = len(parsed.leads) * len(parsed.settings["actions"])
    settled = terminal.wait_with_progress(
        console, client, run_id, expected=expected, timeout_s=args.timeout
    )
    view = _view(client, run_id)
    console.print(terminal.summary_table(view))
    failed = view.counts.get("failed", 0)
    if not settled:
        waiting = terminal.waiting_text(view.counts.get("waiting", 0), view.waiting_until)
        if waiting:
            console.print(
                f"[magenta]{waiting}[/]: they resume by themselves (nothing to do, or raise the"
                f" quota); follow with `leadrun status {run_id}`"
            )
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
    console = terminal.console()
    console.print(terminal.leads_table(view))
    console.print(terminal.funnel_table(view))
    console.print(terminal.reasons_line(view))
    waiting = terminal.waiting_text(view.counts.get("waiting", 0), view.waiting_until)
    if waiting:
        console.print(f"[magenta]{waiting}[/]: they resume by themselves")
    return EXIT_FAILED if view.counts.get("failed", 0) else EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    """Print the Operations page's address; open it when a browser is available."""
    from leadrun import ui

    env, _ = resolve_env(args.env)
    ui.show(ui.ops_url(env, args.run_id, args.uid), open_browser=not args.no_open)
    return EXIT_OK


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


STEER_COMMANDS = ("pause", "resume", "cancel", "replay")
YES = ("y", "yes")


ASKS = {
    "cancel": "Every action not done yet ends cancelled; a meeting already booked stays booked.",
    "undo": "Every action not done yet ends cancelled, and what was made is taken back as "
    "previewed above; sent emails stay sent.",
}


def confirmed(args: argparse.Namespace) -> bool:
    """Whether a cancel or an undo may go: `--yes`, or a line of stdin that says y or yes."""
    if args.yes or args.command not in ASKS:
        return True
    what = f"{len(args.lead)} lead(s) of run" if args.lead else "the whole run"
    print(
        f"{args.command} {what} {args.run_id}? {ASKS[args.command]} [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    return sys.stdin.readline().strip().lower() in YES


def _control_exit(status: int) -> int:
    """A refusal of the request itself (400, 404, 409, 413) is the operator's to fix; a refused
    token or a failing service is the stack's."""
    return EXIT_STACK if status >= 500 or status in (401, 403) else EXIT_INPUT


def _control_client(args: argparse.Namespace) -> LeadRunClient:
    client = _client(args)
    if not client.env.get("CONTROL_URL"):
        raise CliError("no CONTROL_URL: set it (production) or run `make up` again (local)")
    return client


def _sent(
    client: LeadRunClient, run_id: str, command: str, leads: list[str] | None, preview: bool = False
) -> dict[str, Any] | int:
    """The control function's answer to a command; its refusal printed, as an exit code."""
    try:
        answer = client.control(run_id, command, leads, preview=preview)
    except requests.RequestException as exc:
        raise CliError(f"control unreachable: {exc}") from exc
    if answer.status_code != 200:
        print(terminal.error_text(answer), file=sys.stderr)
        return _control_exit(answer.status_code)
    return dict(answer.json())


def cmd_control(args: argparse.Namespace) -> int:
    """Pause, resume, cancel or replay a run (or `--lead` leads) through `CONTROL_URL`, the way
    the web client does: the function checks the token and the owner, nothing is done around it."""
    client = _control_client(args)
    if not confirmed(args):
        print("not cancelled: nothing was sent", file=sys.stderr)
        return EXIT_FAILED
    result = _sent(client, args.run_id, args.command, args.lead or None)
    if isinstance(result, int):
        return result
    console = terminal.console()
    for line in terminal.control_lines(result):
        console.print(escape(line))
    if args.command != "replay" or args.no_wait or not result.get("affected"):
        return EXIT_OK
    # The bar follows what the replay set going: the receipts pending now, paused ones aside
    # (a replay leaves them paused; they wait for a resume, not for time).
    counts = _funnel(client, args.run_id)["counts"]
    pending = int(counts.get("pending", 0)) - int(counts.get("paused", 0))
    settled = terminal.wait_with_progress(
        console,
        client,
        args.run_id,
        expected=pending,
        timeout_s=args.timeout,
        paused_settle=True,
    )
    failed = int(_funnel(client, args.run_id)["counts"].get("failed", 0))
    if not settled or failed:
        console.print(f"[red]{failed} failed, settled: {settled}[/]")
        return EXIT_FAILED
    console.print("settled: every receipt is terminal (or paused) and none failed")
    return EXIT_OK


NOTHING_TO_UNDO = "nothing was made: nothing to undo"


def cmd_undo(args: argparse.Namespace) -> int:
    """Undo a run (or `--lead` leads) through `CONTROL_URL`: its preview first, then, once
    confirmed, the undo itself (docs/api.md, "Control"; docs/operations.md, "I started the wrong
    run")."""
    client = _control_client(args)
    leads = args.lead or None
    preview = _sent(client, args.run_id, "undo", leads, preview=True)
    if isinstance(preview, int):
        return preview
    if "toRevert" not in preview:
        raise CliError("the control function's preview does not say what undo would revert")
    console = terminal.console()
    what = f"{len(args.lead)} lead(s) of run {args.run_id}" if args.lead else args.run_id
    console.print(escape(f"undo {what} (preview: nothing was changed):"))
    for line in terminal.undo_lines(preview) or [NOTHING_TO_UNDO]:
        console.print(escape(f"  {line}"))
    if preview.get("affected"):
        console.print(
            escape(
                f"  affected {preview['affected']}: actions not done yet end cancelled, "
                "what was made is queued for its revert"
            )
        )
    if args.preview:
        return EXIT_OK
    if not confirmed(args):
        print("not undone: only the preview was sent (it changes nothing)", file=sys.stderr)
        return EXIT_FAILED
    result = _sent(client, args.run_id, "undo", leads)
    if isinstance(result, int):
        return result
    lines = terminal.control_lines(result)
    reverts = terminal.undo_lines(result)
    if reverts:
        # Queued, then paced in the host's lanes like any Google call: `eta` says when they end.
        lines[1:1] = ["what undo takes back (queued, paced like any Google call; eta below):"] + [
            f"  {line}" for line in reverts
        ]
    else:
        lines.insert(1, NOTHING_TO_UNDO)
    lines.append(f"follow the reverts (receipts end `reverted`): leadrun status {args.run_id}")
    for line in lines:
        console.print(escape(line))
    return EXIT_OK


def cmd_seek(args: argparse.Namespace) -> int:
    """Seek a subscription to a time or a snapshot."""
    from leadrun.operations import parse_seek_target, seek_subscription, subscription_path
    from leadrun.pubsub import pubsub_clients

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
    from leadrun.operations import redrive_dead_letters, subscription_path
    from leadrun.pubsub import pubsub_clients

    client = _client(args)
    name = (
        args.subscription
        or client.env.get("LEADRUN_DEAD_LETTER_AUDIT_SUBSCRIPTION")
        or DEAD_LETTER_AUDIT_SUBSCRIPTION
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
def _run_and_leads(parser: argparse.ArgumentParser) -> None:
    """A steering command's run, and the leads it may be narrowed to."""
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument(
        "--lead",
        action="append",
        default=[],
        metavar="ID",
        help="only this lead (repeat for more; default: the whole run)",
    )


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
        description="Operate lead runs: submit, follow, inspect, report, steer.",
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

    page = sub.add_parser("ui", parents=[common], help="the Operations page: watch and steer a run")
    page.add_argument("run_id", metavar="RUN_ID", nargs="?", help="the run to show")
    page.add_argument("--no-open", action="store_true", help="print the address only")
    page.set_defaults(handler=cmd_ui)

    helps = {
        "pause": "hold every action not done yet (the brake)",
        "resume": "let paused actions go on",
        "cancel": "end every action not done yet (asks first)",
        "replay": "publish again every action without a terminal receipt, and retry failed ones",
    }
    for name in STEER_COMMANDS:
        steer = sub.add_parser(name, parents=[common], help=f"{helps[name]}, via CONTROL_URL")
        _run_and_leads(steer)
        steer.add_argument(
            "--yes", action="store_true", help="do not ask for confirmation (cancel asks)"
        )
        if name == "replay":
            steer.add_argument(
                "--no-wait", action="store_true", help="do not wait for the run to settle"
            )
            steer.add_argument("--timeout", type=float, default=600.0)
        steer.set_defaults(handler=cmd_control)

    undo = sub.add_parser(
        "undo",
        parents=[common],
        help="cancel what is not done yet and take back what was made (previews, then asks), "
        "via CONTROL_URL",
    )
    _run_and_leads(undo)
    undo.add_argument(
        "--preview", action="store_true", help="only say what undo would do; change nothing"
    )
    undo.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    undo.set_defaults(handler=cmd_undo)

    seek = sub.add_parser("seek", parents=[common], help="seek a subscription to a time/snapshot")
    seek.add_argument("subscription", metavar="SUBSCRIPTION", help="e.g. lead-notify-send")
    seek.add_argument("--to", required=True, metavar="TIME|SNAPSHOT", help="RFC 3339 or snapshot")
    seek.set_defaults(handler=cmd_seek)

    redrive = sub.add_parser(
        "redrive", parents=[common], help="dead-lettered messages back to their topics"
    )
    redrive.add_argument(
        "--subscription",
        help=f"dead-letter pull subscription (default {DEAD_LETTER_AUDIT_SUBSCRIPTION})",
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
