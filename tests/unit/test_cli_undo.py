"""`leadrun undo`: the preview goes first, the question, then the undo itself, and what is
printed of the control function's answers (a stand-in client: nothing is started)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from rich.console import Console

from leadrun import cli, terminal
from leadrun.client import LeadRunClient
from leadrun.views import build_view
from tests.unit.test_cli_steer import REFUSALS, response

COUNTS = {"toRevert": {"events": 3, "folders": 2, "drafts": 1}, "unrecallable": {"sent": 4}}
PREVIEW = {
    "runId": "run-1",
    "command": "undo",
    "state": "active",
    "affected": 8,
    "inFlight": [],
    "eta": {},
    **COUNTS,
}
UNDONE = {
    **PREVIEW,
    "state": "cancelled",
    "affected": 7,
    "inFlight": [{"leadDocId": "lead-7", "action": "drive"}],
    "eta": {"hana@example.com": "2026-11-26T15:30:00Z"},
}
ZEROS = {"toRevert": {"events": 0, "folders": 0, "drafts": 0}, "unrecallable": {"sent": 0}}

Sent = tuple[str, str, list[str] | None, bool]


class Client:
    """What cmd_undo needs of LeadRunClient: the env and `control` (its preview flag kept)."""

    def __init__(self, preview: requests.Response, undo: requests.Response) -> None:
        self.env = {"CONTROL_URL": "http://control.test/"}
        self.answers = {True: preview, False: undo}
        self.sent: list[Sent] = []

    def control(
        self, run_id: str, command: str, lead_ids: list[str] | None, preview: bool = False
    ) -> Any:
        self.sent.append((run_id, command, lead_ids, preview))
        return self.answers[preview]


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Client:
    client = Client(response(200, PREVIEW), response(200, UNDONE))
    monkeypatch.setattr(cli, "_client", lambda args: client)
    return client


def test_undo_takes_a_run_leads_preview_and_yes() -> None:
    args = cli.build_parser().parse_args(
        ["undo", "run-1", "--lead", "a", "--lead", "b", "--preview", "--yes"]
    )
    assert (args.run_id, args.lead, args.preview, args.yes) == ("run-1", ["a", "b"], True, True)
    assert args.handler is cli.cmd_undo
    plain = cli.build_parser().parse_args(["undo", "run-1"])
    assert (plain.lead, plain.preview, plain.yes) == ([], False, False)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["undo"])


def test_preview_sends_only_the_preview_and_names_the_counts(
    stand_in: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # would confirm if it were read
    assert cli.main(["undo", "run-1", "--lead", "lead-7", "--preview"]) == cli.EXIT_OK
    assert stand_in.sent == [("run-1", "undo", ["lead-7"], True)]
    captured = capsys.readouterr()
    assert "(preview: nothing was changed)" in captured.out
    assert "events to cancel: 3" in captured.out and "cancellation notice" in captured.out
    assert "folders to trash: 2" in captured.out and "30 days" in captured.out
    assert "drafts to delete: 1" in captured.out
    assert "sent emails that cannot be recalled: 4" in captured.out
    assert "affected 8" in captured.out
    assert "[y/N]" not in captured.err


@pytest.mark.parametrize("line", ["n\n", "\n", "", "no\n", "yess\n"])
def test_declining_sends_no_undo(
    line: str,
    stand_in: Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(line))
    assert cli.main(["undo", "run-1"]) == cli.EXIT_FAILED
    assert stand_in.sent == [("run-1", "undo", None, True)]
    captured = capsys.readouterr()
    assert "events to cancel: 3" in captured.out  # the preview came before the question
    assert "undo the whole run run-1? " in captured.err and "[y/N]" in captured.err
    assert "not undone" in captured.err
    assert "state cancelled" not in captured.out


@pytest.mark.parametrize(("argv", "stdin"), [(["--yes"], "n\n"), ([], "yes\n")])
def test_the_undo_goes_after_its_preview_once_confirmed(
    argv: list[str],
    stdin: str,
    stand_in: Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert cli.main(["undo", "run-1", "--lead", "a", "--lead", "b", *argv]) == cli.EXIT_OK
    assert stand_in.sent == [
        ("run-1", "undo", ["a", "b"], True),
        ("run-1", "undo", ["a", "b"], False),
    ]
    captured = capsys.readouterr()
    assert ("[y/N]" in captured.err) == (argv == [])
    done = captured.out.split("(preview: nothing was changed)")[1]
    assert "undo run-1: state cancelled · affected 7" in done
    assert "in flight 1" in done and "lead-7 drive" in done
    assert "what undo takes back" in done
    assert done.count("events to cancel: 3") == 2  # the preview's, then the undo's
    assert done.count("sent emails that cannot be recalled: 4") == 2
    assert "eta hana@example.com 2026-11-26T15:30:00Z" in done
    assert "leadrun status run-1" in done


def test_a_dry_run_has_nothing_to_undo(
    stand_in: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.answers = {
        True: response(200, {**PREVIEW, **ZEROS, "affected": 0}),
        False: response(200, {**UNDONE, **ZEROS, "affected": 0, "inFlight": []}),
    }
    assert cli.main(["undo", "dry-1", "--preview"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "nothing was made: nothing to undo" in out
    assert "events to cancel" not in out and "affected" not in out
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert cli.main(["undo", "dry-1"]) == cli.EXIT_OK
    assert capsys.readouterr().out.count("nothing was made: nothing to undo") == 2


@pytest.mark.parametrize(("status", "code", "exit_code"), REFUSALS)
@pytest.mark.parametrize("refused", [True, False], ids=["preview", "undo"])
def test_a_refusal_is_told_in_words_with_the_control_exit_codes(
    status: int,
    code: str,
    exit_code: int,
    refused: bool,
    stand_in: Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"error": {"code": code, "message": "no", "details": [{"field": "f", "message": "m"}]}}
    stand_in.answers[refused] = response(status, body)
    assert cli.main(["undo", "run-1", "--yes"]) == exit_code
    captured = capsys.readouterr()
    assert f"HTTP {status} {code}: no" in captured.err and "f: m" in captured.err
    assert "state cancelled" not in captured.out
    assert len(stand_in.sent) == (1 if refused else 2)


def test_an_unreachable_stack_or_no_control_url_is_said_in_words(
    stand_in: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise requests.ConnectionError("refused")

    monkeypatch.setattr(stand_in, "control", unreachable)
    assert cli.main(["undo", "run-1", "--yes"]) == cli.EXIT_STACK
    assert "control unreachable: refused" in capsys.readouterr().err
    stand_in.env = {}
    assert cli.main(["undo", "run-1", "--yes"]) == cli.EXIT_STACK
    assert "CONTROL_URL" in capsys.readouterr().err


def test_a_preview_without_the_undo_counts_is_not_taken_for_nothing_to_undo(
    stand_in: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = {k: v for k, v in PREVIEW.items() if k not in COUNTS}
    stand_in.answers[True] = response(200, bare)
    assert cli.main(["undo", "run-1", "--yes"]) == cli.EXIT_STACK
    assert stand_in.sent == [("run-1", "undo", None, True)]
    err = capsys.readouterr().err
    assert "does not say what undo would revert" in err and "nothing to undo" not in err


def test_the_client_asks_for_a_preview_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    client = LeadRunClient({"CONTROL_URL": "http://control.test/"}, id_token="token")
    bodies: list[dict[str, Any]] = []

    def post(url: str, json: dict[str, Any], **kwargs: Any) -> requests.Response:
        bodies.append(json)
        return response(200, PREVIEW)

    monkeypatch.setattr(client.session, "post", post)
    client.control("run-1", "undo", ["lead-7"], preview=True)
    client.control("run-1", "undo")
    assert bodies == [
        {"runId": "run-1", "command": "undo", "leadDocIds": ["lead-7"], "preview": True},
        {"runId": "run-1", "command": "undo"},
    ]


def test_status_shows_the_reverts_queued_and_made() -> None:
    def receipt(action: str, status: str, outcome: str | None, revert: Any) -> dict[str, Any]:
        return {"action": action, "status": status, "outcome": outcome, "revert": revert}

    made = {"at": "2026-11-26T15:01:00Z", "effect": "event_cancelled"}
    rows = [
        (
            "lead-1",
            {"status": "accepted", "lead": {"email": "a@acme.test"}},
            {
                "calendar": receipt("calendar", "reverted", "booked", made),
                "email": receipt("email", "done", "sent", None),
                "drive": receipt("drive", "done", "created", {"at": None, "effect": None}),
            },
        ),
        (
            "lead-2",
            {"status": "accepted", "lead": {"email": "b@acme.test"}},
            {"calendar": receipt("calendar", "cancelled", None, None)},
        ),
    ]
    funnel = {"runId": "run-1", "dryRun": False, "counts": {"reverted": 1, "cancelled": 1}}
    view = build_view(funnel, rows)
    first, second = view.leads
    assert first.status == "reverted"
    assert first.outcome == "booked (reverted) · sent · created (reverting)"
    assert second.outcome == "cancelled"
    console = Console(record=True, width=150)
    console.print(terminal.funnel_table(view))
    funnel_text = console.export_text()
    assert "reverted" in funnel_text and "cancelled" in funnel_text
