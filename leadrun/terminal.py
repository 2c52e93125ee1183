"""What `leadrun` prints: rich tables of a run, the live progress bar, one-line summaries.

Pure rendering of a `RunView` (leadrun.views), except `wait_with_progress`, which polls the
run's diagnostics counters while it draws. The commands themselves are in leadrun.cli.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import requests
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

from leadrun.client import LeadRunClient
from leadrun.views import OUTCOME_LABELS, RunView

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


def console() -> Console:
    """The console the CLI prints to."""
    # Piped output (make demo | tee, CI logs) gets a wide fixed width instead of 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=150)


def error_text(answer: requests.Response) -> str:
    """An HTTP error answer (docs/api.md, "Schedule": the error body) in a few lines."""
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


def _outcomes_text(buckets: Counter[str]) -> str:
    """Terminal receipts by bucket, coloured, for the progress line."""
    parts = []
    for key in (*PROGRESS_ORDER, *sorted(set(buckets) - set(PROGRESS_ORDER))):
        if buckets.get(key):
            colour = _COLOURS.get(key, "white")
            label = OUTCOME_LABELS.get(key, key)
            parts.append(f"[{colour}]{label} {buckets[key]}[/]")
    return "  ".join(parts) or "[dim]waiting for the first receipts[/]"


def waiting_text(count: int, until: str | None) -> str:
    """`4 waiting for Google's limits, resume by 01:23:45Z`, or '' when nothing waits."""
    if not count:
        return ""
    when = f", resume by {until[11:19]}Z" if until and len(until) >= 19 else ""
    return f"{count} waiting for Google's limits{when}"


# Diagnostics count -> progress bucket: terminal receipts by outcome (leads, for `rejected`).
PROGRESS_COUNTS: dict[str, str] = {
    "booked": "booked",
    "noSlot": "no_slot",
    "sent": "sent",
    "drafted": "drafted",
    "foldersCreated": "created",
    "rejected": "rejected",
    "failed": "failed",
    "simulated": "simulated",
    "cancelled": "cancelled",
    "reverted": "reverted",
}


def progress_of(
    funnel: dict[str, Any], expected: int, *, paused_settle: bool = False
) -> tuple[int, int, Counter[str], str]:
    """(receipts, terminal receipts, buckets, waiting text) of one diagnostics answer: every
    receipt not pending is terminal, so the counters alone tell the progress. With
    `paused_settle`, a paused receipt counts as settled: it waits for a resume, not for time."""
    counts = funnel.get("counts") or {}
    pending = int(counts.get("pending", 0))
    if paused_settle:
        pending -= int(counts.get("paused", 0))
    total = max(expected, pending)
    buckets = Counter(
        {PROGRESS_COUNTS[k]: int(v) for k, v in counts.items() if k in PROGRESS_COUNTS}
    )
    waiting = waiting_text(int(counts.get("waiting", 0)), funnel.get("waitingUntil"))
    if counts.get("paused"):
        waiting = "  ".join(part for part in (waiting, f"{counts['paused']} paused") if part)
    return total, total - pending, +buckets, waiting


def wait_with_progress(
    console: Console,
    client: LeadRunClient,
    run_id: str,
    *,
    expected: int,
    timeout_s: float,
    poll_s: float = 0.4,
    paused_settle: bool = False,
) -> bool:
    """Show terminal receipts by outcome until none is pending; False on timeout.

    Each poll is one diagnostics GET, which reads counters: its cost does not grow with the run
    (reading every receipt would cost three reads a lead a poll)."""
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
            answer = client.diagnostics(run_id)
            if answer.status_code == 200:
                total, done, buckets, waiting = progress_of(
                    answer.json(), expected, paused_settle=paused_settle
                )
                outcomes = _outcomes_text(buckets)
                if waiting:
                    outcomes += f"  [magenta]{escape(waiting)}[/]"
                progress.update(task, total=max(total, 1), completed=done, outcomes=outcomes)
                if done >= total:
                    return True
            else:  # shown, and polled again: a passing error must not end the watch
                progress.update(task, outcomes=f"[red]{escape(error_text(answer))}[/]")
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)


def control_lines(answer: dict[str, Any]) -> list[str]:
    """What a command to `CONTROL_URL` did (docs/api.md, "Control"), a few plain lines."""
    lines = [
        f"{answer.get('command')} {answer.get('runId')}: state {answer.get('state')}"
        f" · affected {answer.get('affected', 0)}"
    ]
    in_flight = answer.get("inFlight") or []
    if in_flight:
        # Their delivery had begun its Google calls: it ends, then they make no other call.
        lines.append(f"in flight {len(in_flight)} (each finishes the delivery it is in):")
        lines += [f"  {item.get('leadDocId')} {item.get('action')}" for item in in_flight]
    else:
        lines.append("in flight 0")
    for host, when in sorted((answer.get("eta") or {}).items()):
        lines.append(f"eta {host} {when}")
    return lines


def undo_lines(answer: dict[str, Any]) -> list[str]:
    """What an `undo` reverts (or, previewed, would revert) and what it cannot take back
    (docs/api.md, "Control"), in words; none when nothing was made (a dry run)."""
    counts = answer.get("toRevert") or {}
    events, folders, drafts = (int(counts.get(key) or 0) for key in ("events", "folders", "drafts"))
    sent = int((answer.get("unrecallable") or {}).get("sent") or 0)
    if not (events or folders or drafts or sent):
        return []
    return [
        f"events to cancel: {events} (each lead gets Google's cancellation notice;"
        " the slot is free again)",
        f"folders to trash: {folders} (recoverable from the Drive trash for 30 days)",
        f"drafts to delete: {drafts}",
        f"sent emails that cannot be recalled: {sent} (they stay sent)",
    ]


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
    for key in (*PROGRESS_ORDER, "pending"):
        table.add_column(OUTCOME_LABELS.get(key, key), justify="right")
    for action in ("calendar", "email", "drive"):
        if action not in by_action:
            continue
        counts = by_action[action]
        cells = []
        for key in PROGRESS_ORDER:
            value = counts.get(key, 0)
            cells.append(f"[{_COLOURS.get(key, 'white')}]{value}[/]" if value else "[dim]·[/]")
        cells.append(str(counts.get("pending", 0)) if counts.get("pending") else "[dim]·[/]")
        if action == "calendar" and expanded:
            cells[0] += f" [dim]({expanded} expanded)[/]"
        table.add_row(action, *cells)
    return table


def funnel_table(view: RunView) -> Table:
    """The diagnostics funnel (docs/api.md, "Diagnostics") with a bar per stage."""
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
        ("waiting", c.get("waiting", 0), "magenta"),
    ]
    # Control's cancel and undo: shown once they have ended or taken back something.
    stages += [
        (name, c[key], "dim")
        for name, key in (("cancelled", "cancelled"), ("reverted", "reverted"))
        if c.get(key)
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
    """Diagnostics' reasons in one line: leads per reason (docs/api.md, "Diagnostics")."""
    if not view.reasons:
        return "reasons: none"
    return "reasons (leads): " + ", ".join(f"{k} {v}" for k, v in sorted(view.reasons.items()))


def _link(url: str | None, text: str) -> str:
    """A terminal hyperlink to an http(s) URL; nothing for any other."""
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
        "waiting": "magenta",
        "reverted": "dim",
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
        if row.waiting_until:
            meeting = f"resumes {row.waiting_until[11:19]}Z"
        elif row.meeting_start:
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
