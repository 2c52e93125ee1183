"""`leadrun pause|resume|cancel|replay`: the arguments, the confirmation a cancel asks for, and
what is printed of the control function's answer (a stand-in client: nothing is started)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests

from leadrun import cli


def response(status: int, body: dict[str, Any]) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = json.dumps(body).encode()
    return answer


ANSWER = {
    "runId": "run-1",
    "command": "pause",
    "state": "paused",
    "affected": 3,
    "inFlight": [{"leadDocId": "lead-7", "action": "calendar"}],
    "eta": {"hana@example.com": "2026-11-26T15:30:00Z"},
}


class Client:
    """What cmd_control needs of LeadRunClient: the env and `control`."""

    def __init__(self, answer: requests.Response) -> None:
        self.env = {"CONTROL_URL": "http://control.test/"}
        self.answer = answer
        self.sent: list[tuple[str, str, list[str] | None]] = []

    def control(
        self, run_id: str, command: str, lead_ids: list[str] | None, preview: bool = False
    ) -> Any:
        assert not preview  # only undo previews
        self.sent.append((run_id, command, lead_ids))
        return self.answer


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Client:
    client = Client(response(200, ANSWER))
    monkeypatch.setattr(cli, "_client", lambda args: client)
    return client


@pytest.mark.parametrize("command", cli.STEER_COMMANDS)
def test_each_command_takes_a_run_leads_and_yes(command: str) -> None:
    args = cli.build_parser().parse_args([command, "run-1", "--lead", "a", "--lead", "b", "--yes"])
    assert (args.command, args.run_id, args.lead, args.yes) == (command, "run-1", ["a", "b"], True)
    assert args.handler is cli.cmd_control
    plain = cli.build_parser().parse_args([command, "run-1"])
    assert plain.lead == [] and plain.yes is False


def test_only_replay_follows_progress() -> None:
    replay = cli.build_parser().parse_args(["replay", "run-1", "--no-wait"])
    assert replay.no_wait is True and replay.timeout == 600.0
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["pause", "run-1", "--no-wait"])


@pytest.mark.parametrize("argv", [["pause"], ["cancel", "--yes"], ["resume", "a", "b"]])
def test_a_run_id_and_only_one_is_required(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2


@pytest.mark.parametrize("line", ["n\n", "\n", "", "no\n", "yess\n", "maybe\n"])
def test_cancel_sends_nothing_unless_confirmed(
    line: str,
    stand_in: Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(line))
    assert cli.main(["cancel", "run-1"]) == cli.EXIT_FAILED
    assert stand_in.sent == []
    err = capsys.readouterr().err
    assert "cancel the whole run run-1? " in err and "[y/N]" in err
    assert "nothing was sent" in err


@pytest.mark.parametrize("line", ["y\n", "YES\n", " yes \n"])
def test_cancel_goes_once_confirmed(
    line: str, stand_in: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(line))
    assert cli.main(["cancel", "run-1", "--lead", "lead-7"]) == cli.EXIT_OK
    assert stand_in.sent == [("run-1", "cancel", ["lead-7"])]


def test_yes_skips_the_question_and_other_commands_never_ask(
    stand_in: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))  # would refuse if it were read
    assert cli.main(["cancel", "run-1", "--yes"]) == cli.EXIT_OK
    assert cli.main(["pause", "run-1"]) == cli.EXIT_OK
    assert cli.main(["resume", "run-1", "--lead", "x"]) == cli.EXIT_OK
    assert cli.main(["replay", "run-1", "--no-wait"]) == cli.EXIT_OK
    assert stand_in.sent == [
        ("run-1", "cancel", None),
        ("run-1", "pause", None),
        ("run-1", "resume", ["x"]),
        ("run-1", "replay", None),
    ]
    assert "[y/N]" not in capsys.readouterr().err


def test_the_answer_is_printed(stand_in: Client, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pause", "run-1"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "pause run-1: state paused · affected 3" in out
    assert "in flight 1" in out and "lead-7 calendar" in out
    assert "eta hana@example.com 2026-11-26T15:30:00Z" in out


# What the control function may refuse, and the exit code each gives (docs/api.md, "CLI").
REFUSALS = [
    (400, "invalid_request", cli.EXIT_INPUT),
    (404, "not_found", cli.EXIT_INPUT),
    (409, "run_cancelled", cli.EXIT_INPUT),
    (401, "unauthenticated", cli.EXIT_STACK),
    (403, "forbidden", cli.EXIT_STACK),
    (500, "internal", cli.EXIT_STACK),
]


@pytest.mark.parametrize(("status", "code", "exit_code"), REFUSALS)
def test_a_refusal_is_told_in_words_with_a_failing_exit(
    status: int,
    code: str,
    exit_code: int,
    stand_in: Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"error": {"code": code, "message": "no", "details": [{"field": "f", "message": "m"}]}}
    stand_in.answer = response(status, body)
    assert cli.main(["resume", "run-1"]) == exit_code
    captured = capsys.readouterr()
    assert f"HTTP {status} {code}: no" in captured.err and "f: m" in captured.err
    assert "state" not in captured.out


def test_no_control_url_is_said_before_anything_is_sent(
    stand_in: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.env = {}
    assert cli.main(["pause", "run-1"]) == cli.EXIT_STACK
    assert "CONTROL_URL" in capsys.readouterr().err and stand_in.sent == []
