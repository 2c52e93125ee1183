"""`leadrun` against the local stack, as an operator uses it (docs/api.md, "CLI")."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadrun import cli
from leadrun.client import LeadRunClient
from tests.support import WRITE_METHODS, free_leads, receipt_doc, request, unique

pytestmark = pytest.mark.integration

HEADER = "leadDocId,email,name,company,timeZone,candidateSlots,emailSubject,emailBody\n"


@pytest.fixture
def env_file(stack_env: dict[str, str], tmp_path: Path) -> Path:
    """A stack.env for the session's stack, as `make up` would write it."""
    path = tmp_path / "stack.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in stack_env.items()))
    return path


@pytest.fixture
def operator(stack_env: dict[str, str]) -> LeadRunClient:
    """The CLI's identity (uid `operator`), to compare against what the CLI prints."""
    api = LeadRunClient(stack_env, uid="operator")
    api.sandbox.clear_faults()
    yield api
    api.sandbox.clear_faults()


def leads_csv(tmp_path: Path, rows: list[str], name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def run_args(csv: Path, env_file: Path, run_id: str, host: str, *extra: str) -> list[str]:
    return [
        "run",
        str(csv),
        "--env",
        str(env_file),
        "--run-id",
        run_id,
        "--host-email",
        host,
        "--host-tz",
        "America/New_York",
        "--timeout",
        "120",
        *extra,
    ]


def writes(client: LeadRunClient) -> dict[str, int]:
    calls = client.sandbox.state()["calls"]
    return {method: calls.get(method, 0) for method in WRITE_METHODS}


def counts_without_stages(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k not in ("sourced", "filtered")}


def test_run_settles_and_status_agrees_with_diagnostics(
    tmp_path: Path,
    env_file: Path,
    operator: LeadRunClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_id, host = unique("cli"), f"{unique('host')}@example.com"
    csv = leads_csv(
        tmp_path,
        [
            "a-1,ana@acme.test,Ana Silva,Acme,Europe/Lisbon,+2d10:00/30m,Hi,See you {meetingTime}",
            "a-2,ben@acme.test,Ben,Acme,,+2d10:30/30m; +3d10:30/30m,Hi,Join {meetLink}",
            "a-3,cy@acme.test,Cy,,,+2d11:00/30m,,",
            "a-4,,No Mail,Acme,,+2d11:30/30m,,",
        ],
    )
    assert cli.main(run_args(csv, env_file, run_id, host)) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"run {run_id}" in out and "12/12" in out
    assert "settled" in out

    funnel = operator.diagnostics(run_id).json()
    assert funnel["counts"]["booked"] == 3 and funnel["counts"]["rejected"] == 1
    assert counts_without_stages(funnel["counts"]) == operator.recount(run_id)["counts"]

    assert cli.main(["status", run_id, "--json", "--env", str(env_file)]) == cli.EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == funnel["counts"] and status["reasons"] == funnel["reasons"]
    rows = {row["leadDocId"]: row for row in status["leads"]}
    assert set(rows) == {"a-1", "a-2", "a-3", "a-4"}
    assert rows["a-4"]["status"] == "rejected" and rows["a-4"]["reason"] == "no_email"
    event = next(e for e in operator.sandbox.state()["events"] if e.get("calendarId") == host)
    lead_id = event["extendedProperties"]["private"]["leadrunLeadDocId"]
    assert rows[lead_id]["links"]["event"] == event["htmlLink"]
    assert rows[lead_id]["links"]["meet"] == event["hangoutLink"]
    assert rows[lead_id]["links"]["folder"].startswith("https://drive.google.com/")
    assert rows[lead_id]["receipts"]["calendar"]["status"] == "done"

    assert cli.main(["status", run_id, "--env", str(env_file)]) == cli.EXIT_OK
    table = capsys.readouterr().out
    assert "a-1" in table and "no_email" in table and "diagnostics funnel" in table
    assert "reasons (leads): " in table  # docs/api.md, "Diagnostics": reasons count leads

    # The report counts leads per reason from the receipts: a-4 has three no_email receipts.
    page = tmp_path / "report.html"
    assert cli.main(["report", run_id, "--out", str(page), "--env", str(env_file)]) == 0
    reasons = page.read_text().split('class="card reasons"', 1)[1].split("</section>", 1)[0]
    assert '<tr data-reason="no_email"><td><code>no_email</code></td><td class="n">1</td>' in (
        reasons
    )


def test_dry_run_writes_nothing(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("dry"), f"{unique('host')}@example.com"
    csv = leads_csv(tmp_path, [f"d-{i},d{i}@acme.test,D{i},,,+2d1{i}:00/30m,," for i in range(3)])
    before = writes(operator)
    assert cli.main(run_args(csv, env_file, run_id, host, "--dry-run")) == cli.EXIT_OK
    assert "dry run" in capsys.readouterr().out
    assert writes(operator) == before
    assert operator.diagnostics(run_id).json()["counts"]["simulated"] == 9


def test_bad_rows_are_reported_by_line_and_nothing_is_sent(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("bad"), f"{unique('host')}@example.com"
    csv = leads_csv(
        tmp_path,
        [
            "b-1,b1@acme.test,B1,,,+2d10:00/30m,,",  # line 2: fine
            "b-2,b2@acme.test,B2,,Mars/Olympus,+2d10:30/30m,,",  # line 3
            "b-3,b3@acme.test,B3,,,+2d10:00/whenever,,",  # line 4
            "b-1,b4@acme.test,B4,,,,,",  # line 5
        ],
    )
    before = writes(operator)
    assert cli.main(run_args(csv, env_file, run_id, host)) == cli.EXIT_INPUT
    err = capsys.readouterr().err
    assert "3 problem(s); nothing was sent" in err
    assert "line 3: timeZone:" in err
    assert "line 4: candidateSlots:" in err
    assert "line 5: leadDocId: 'b-1' repeats line 2" in err
    assert operator.store.get_run(run_id) is None
    assert writes(operator) == before


def test_replay_of_a_finished_run_changes_nothing(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("replay"), f"{unique('host')}@example.com"
    csv = leads_csv(tmp_path, [f"r-{i},r{i}@acme.test,R{i},,,+2d1{i}:00/30m,," for i in range(3)])
    assert cli.main(run_args(csv, env_file, run_id, host)) == cli.EXIT_OK
    state = operator.sandbox.state()
    before = writes(operator)
    receipts = operator.receipts(run_id)
    capsys.readouterr()

    assert cli.main(["replay", run_id, "--env", str(env_file)]) == cli.EXIT_OK
    # The control function's answer: nothing was left to publish.
    out = capsys.readouterr().out
    assert f"replay {run_id}: state active · affected 0" in out and "in flight 0" in out
    assert f"eta {host} " in out
    time.sleep(2)
    assert writes(operator) == before
    after = operator.sandbox.state()
    assert len(after["events"]) == len(state["events"])
    assert len(after["folders"]) == len(state["folders"])
    assert operator.receipts(run_id) == receipts


def test_replay_finishes_a_failed_receipt(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("fail"), f"{unique('host')}@example.com"
    csv = leads_csv(tmp_path, ["f-1,f1@acme.test,F1,Acme,,+2d10:00/30m,,"])
    operator.sandbox.fault("drive.files.create", 400, 1.0)
    assert cli.main(run_args(csv, env_file, run_id, host)) == cli.EXIT_FAILED
    assert "1 action(s) failed" in capsys.readouterr().out
    drive = receipt_doc(operator.store, run_id, "f-1", "drive")
    assert drive["status"] == "failed" and drive["reason"] == "permanent_error"
    assert operator.diagnostics(run_id).json()["counts"]["failed"] == 1
    operator.sandbox.clear_faults()

    assert cli.main(["replay", run_id, "--env", str(env_file), "--timeout", "60"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"replay {run_id}: state active · affected 1" in out
    assert "settled: every receipt is terminal" in out
    funnel = operator.wait_settled(run_id, timeout_s=60)
    receipts = operator.receipts(run_id)[0][2]
    assert {a: r["status"] for a, r in receipts.items()} == {
        "calendar": "done",
        "email": "done",
        "drive": "done",
    }
    assert funnel["counts"]["failed"] == 0 and funnel["counts"]["foldersCreated"] == 1
    assert counts_without_stages(funnel["counts"]) == operator.recount(run_id)["counts"]
    assert funnel["reasons"] == operator.recount(run_id)["reasons"]


def test_replay_of_a_failed_booking_sends_the_email_too(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("failcal"), f"{unique('host')}@example.com"
    csv = leads_csv(tmp_path, ["c-1,c1@acme.test,C1,,,+2d10:00/30m,,"])
    operator.sandbox.fault("calendar.events.insert", 400, 1.0)
    assert cli.main(run_args(csv, env_file, run_id, host)) == cli.EXIT_FAILED
    email = receipt_doc(operator.store, run_id, "c-1", "email")
    assert email["status"] == "rejected" and email["reason"] == "calendar_failed"
    operator.sandbox.clear_faults()
    capsys.readouterr()

    assert cli.main(["replay", run_id, "--env", str(env_file), "--timeout", "60"]) == cli.EXIT_OK
    # The calendar and the email that followed it are reopened; only the booking is published.
    assert f"replay {run_id}: state active · affected 1" in capsys.readouterr().out
    funnel = operator.wait_settled(run_id, timeout_s=60)
    assert funnel["counts"]["booked"] == 1 and funnel["counts"]["sent"] == 1
    assert counts_without_stages(funnel["counts"]) == operator.recount(run_id)["counts"]


@contextmanager
def slow_google(client: LeadRunClient, ms: int = 400) -> Iterator[None]:
    """Every sandbox call takes `ms`: a run stays in flight long enough to be steered."""
    url = f"{client.sandbox.url}/_sandbox/latency"
    client.session.post(url, json={"ms": ms}, timeout=30).raise_for_status()
    try:
        yield
    finally:
        client.session.post(url, json={"ms": 0}, timeout=30).raise_for_status()


def start_run(client: LeadRunClient, run_id: str, leads: int = 4) -> str:
    """Schedule a live run as the CLI's uid would; returns its host."""
    host = f"{unique('host')}@example.com"
    answer = client.schedule(request(run_id, free_leads(leads, prefix="s"), host=host))
    assert answer.status_code == 202, answer.text
    return host


def settled_as_receipts(client: LeadRunClient, run_id: str) -> dict[str, int]:
    funnel = client.wait_settled(run_id, timeout_s=120)
    assert counts_without_stages(funnel["counts"]) == client.recount(run_id)["counts"]
    return dict(funnel["counts"])


def test_pause_then_resume_answer_with_the_run_state(
    env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = unique("pause")
    with slow_google(operator):
        host = start_run(operator, run_id)
        capsys.readouterr()
        assert cli.main(["pause", run_id, "--env", str(env_file)]) == cli.EXIT_OK
        out = capsys.readouterr().out
        assert f"pause {run_id}: state paused · affected " in out
        assert "in flight" in out and f"eta {host} " in out
        funnel = operator.diagnostics(run_id).json()
        assert funnel["state"] == "paused" and funnel["counts"]["pending"] > 0
    assert cli.main(["resume", run_id, "--env", str(env_file)]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"resume {run_id}: state active · affected " in out
    counts = settled_as_receipts(operator, run_id)
    # Every action ends as if the run had never been paused.
    assert (counts["booked"], counts["sent"], counts["foldersCreated"]) == (4, 4, 4)
    assert operator.diagnostics(run_id).json()["state"] == "active"


def test_cancel_asks_first_and_an_answer_other_than_yes_sends_nothing(
    env_file: Path,
    operator: LeadRunClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = unique("cancel")
    with slow_google(operator):
        start_run(operator, run_id)
        monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
        assert cli.main(["cancel", run_id, "--env", str(env_file)]) == cli.EXIT_FAILED
        assert "nothing was sent" in capsys.readouterr().err
        funnel = operator.diagnostics(run_id).json()
        assert funnel["state"] == "active" and funnel["counts"]["cancelled"] == 0

        assert cli.main(["cancel", run_id, "--yes", "--env", str(env_file)]) == cli.EXIT_OK
        assert f"cancel {run_id}: state cancelled · affected " in capsys.readouterr().out
        assert operator.diagnostics(run_id).json()["state"] == "cancelled"
    counts = settled_as_receipts(operator, run_id)
    receipts = [r for _, _, rs in operator.receipts(run_id) for r in rs.values()]
    assert {r["status"] for r in receipts} <= {"cancelled", "done", "rejected"}
    assert counts["cancelled"] == sum(r["status"] == "cancelled" for r in receipts)
    # A cancelled run is over: steering it again is refused in words, and so is scheduling it.
    assert cli.main(["resume", run_id, "--env", str(env_file)]) == cli.EXIT_INPUT
    assert "HTTP 409 run_cancelled" in capsys.readouterr().err
    again = operator.schedule(request(run_id, free_leads(1, prefix="late")))
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_cancelled"


def test_steering_a_run_of_another_uid_or_no_run_is_refused_in_words(
    env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = unique("theirs")
    owner = LeadRunClient(operator.env, uid="somebody-else")
    start_run(owner, run_id, leads=1)
    owner.wait_settled(run_id, timeout_s=120)
    capsys.readouterr()
    assert cli.main(["pause", run_id, "--env", str(env_file)]) == cli.EXIT_STACK
    assert "HTTP 403 forbidden" in capsys.readouterr().err
    assert owner.diagnostics(run_id).json()["state"] == "active"
    assert cli.main(["pause", unique("nope"), "--env", str(env_file)]) == cli.EXIT_INPUT
    assert "HTTP 404 not_found" in capsys.readouterr().err
    missing = ["pause", run_id, "--lead", "not-a-lead", "--uid", "somebody-else"]
    assert cli.main([*missing, "--env", str(env_file)]) == cli.EXIT_INPUT
    assert "leadDocIds[0]: not a lead of this run" in capsys.readouterr().err


@pytest.mark.slow
def test_redrive_moves_dead_letters_back(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("dead"), f"{unique('host')}@example.com"
    csv = leads_csv(tmp_path, ["x-1,x1@acme.test,X1,,,+2d10:00/30m,,"])
    # Drive keeps failing transiently: Pub/Sub retries, then dead-letters the message.
    operator.sandbox.fault("drive.files.create", 503, 1.0)
    assert cli.main(run_args(csv, env_file, run_id, host, "--timeout", "240")) == cli.EXIT_FAILED
    drive = receipt_doc(operator.store, run_id, "x-1", "drive")
    assert drive["status"] == "failed" and drive["reason"] == "dead_lettered"
    operator.sandbox.clear_faults()
    capsys.readouterr()

    redriven = 0
    for _ in range(10):  # the dead letter reaches the audit subscription asynchronously
        assert cli.main(["redrive", "--run-id", run_id, "--env", str(env_file)]) == cli.EXIT_OK
        out = capsys.readouterr().out
        redriven += int(out.split("redrove ")[1].split()[0])
        if redriven:
            break
        time.sleep(1)
    assert redriven == 1
    assert f"{run_id} x-1 drive" in out
    funnel = operator.wait_settled(run_id, timeout_s=60)
    assert receipt_doc(operator.store, run_id, "x-1", "drive")["status"] == "done"
    assert funnel["counts"]["failed"] == 0 and funnel["counts"]["foldersCreated"] == 1
    assert counts_without_stages(funnel["counts"]) == operator.recount(run_id)["counts"]
    # Nothing left to redrive for this run.
    assert cli.main(["redrive", "--run-id", run_id, "--env", str(env_file)]) == cli.EXIT_OK
    assert "redrove 0" in capsys.readouterr().out


def test_seek_replays_retained_messages_without_a_second_effect(
    tmp_path: Path, env_file: Path, operator: LeadRunClient, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id, host = unique("seek"), f"{unique('host')}@example.com"
    csv = leads_csv(tmp_path, ["s-1,s1@acme.test,S1,,,+2d10:00/30m,,"])
    start = datetime.now(UTC) - timedelta(seconds=2)
    assert cli.main(run_args(csv, env_file, run_id, host)) == cli.EXIT_OK
    before = writes(operator)
    receipts = operator.receipts(run_id)
    capsys.readouterr()

    moment = start.isoformat().replace("+00:00", "Z")
    assert cli.main(["seek", "lead-drive-create", "--to", moment, "--env", str(env_file)]) == 0
    assert "seeked projects/" in capsys.readouterr().out
    time.sleep(3)  # the redelivered messages find terminal receipts and do nothing
    assert writes(operator) == before
    assert operator.receipts(run_id) == receipts

    assert (
        cli.main(["seek", "lead-drive-create", "--to", "no-such-snapshot", "--env", str(env_file)])
        == cli.EXIT_INPUT
    )
    assert "NotFound" in capsys.readouterr().err
