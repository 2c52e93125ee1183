"""The operator's input: relative slot syntax, CSV/JSON leads files, request batching (pure)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadrun import cli
from leadrun.leads import (
    SlotSyntaxError,
    add_working_days,
    build_requests,
    parse_slot,
    parse_slots,
    read_csv,
    read_json,
    read_leads_file,
    settings_from_flags,
)

NY = ZoneInfo("America/New_York")
THURSDAY = date(2026, 11, 26)
# 15:00 UTC on that Thursday: 10:00 in New York, so "today" is the same date there.
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
HOST = {
    "calendarId": "hana@example.com",
    "senderEmail": "hana@example.com",
    "timeZone": "America/New_York",
    "name": "Hana",
}
HEADER = "leadDocId,email,name,company,timeZone,candidateSlots,emailSubject,emailBody\n"


def settings(**extra: object) -> dict:
    from leadrun.leads import merge_settings

    return merge_settings({"host": HOST, **extra})


# -- relative slots ---------------------------------------------------------------------------
def test_working_days_skip_the_weekend() -> None:
    assert add_working_days(THURSDAY, 0) == THURSDAY
    assert add_working_days(THURSDAY, 1) == date(2026, 11, 27)  # Friday
    assert add_working_days(THURSDAY, 2) == date(2026, 11, 30)  # Monday
    assert add_working_days(date(2026, 11, 28), 1) == date(2026, 11, 30)  # Saturday -> Monday


def test_relative_start_with_a_duration() -> None:
    assert parse_slot("+2d15:00/30m", THURSDAY, NY) == {
        "start": "2026-11-30T15:00:00-05:00",
        "end": "2026-11-30T15:30:00-05:00",
    }


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("+1d09:00/1h", "2026-11-27T10:00:00-05:00"),
        ("+1d09:00/1h30m", "2026-11-27T10:30:00-05:00"),
        ("+1d09:00/+1d09:45", "2026-11-27T09:45:00-05:00"),
        ("+1d09:00/2026-11-27T15:00:00Z", "2026-11-27T15:00:00Z"),
        (" +1d09:00 / 45m ", "2026-11-27T09:45:00-05:00"),
    ],
)
def test_end_forms(text: str, end: str) -> None:
    assert parse_slot(text, THURSDAY, NY)["end"] == end


def test_absolute_slots_pass_through_whatever_today_is() -> None:
    slot = parse_slot("2026-12-01T15:00:00Z/2026-12-01T15:30:00Z", date(2030, 1, 1), NY)
    assert slot == {"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T15:30:00Z"}
    assert parse_slot("2026-12-01T15:00:00+01:00/30m", THURSDAY, None)["end"] == (
        "2026-12-01T15:30:00+01:00"
    )


def test_a_wall_time_skipped_by_dst_starts_when_the_clock_jumps() -> None:
    # 2027-03-14 is the US spring-forward Sunday: 02:30 does not exist in New York.
    slot = parse_slot("+0d02:30/30m", date(2027, 3, 14), NY)
    assert slot["start"] == "2027-03-14T03:00:00-04:00"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("+2d15:00", "START/END"),
        ("tomorrow/30m", "neither RFC 3339"),
        ("+2d25:00/30m", "neither RFC 3339"),
        ("+2d15:00/soon", "not RFC 3339"),
        ("+2d15:00/+2d14:00", "ends before it starts"),
        ("2026-12-01T15:00:00/30m", "no UTC offset"),
        ("+2d15:00/0m", "ends before it starts"),
    ],
)
def test_bad_slots_say_why(text: str, says: str) -> None:
    with pytest.raises(SlotSyntaxError, match=says):
        parse_slot(text, THURSDAY, NY)


def test_relative_slots_need_the_host_zone() -> None:
    with pytest.raises(SlotSyntaxError, match="host's time zone"):
        parse_slot("+2d15:00/30m", THURSDAY, None)


def test_a_cell_holds_several_slots() -> None:
    slots = parse_slots("+2d15:00/30m; ;+3d10:00/+3d10:45;", THURSDAY, NY)
    assert [s["start"] for s in slots] == ["2026-11-30T15:00:00-05:00", "2026-12-01T10:00:00-05:00"]
    assert parse_slots("  ", THURSDAY, NY) == []


# -- CSV ----------------------------------------------------------------------------------------
def test_csv_rows_become_leads() -> None:
    text = (
        HEADER
        + "a-1,ana@acme.test,Ana,Acme,Europe/Lisbon,+2d15:00/30m,Hi,Body {meetLink}\n"
        + "a-2,,Ben,,,,,\n"
    )
    parsed = read_csv(text, settings(), NOW)
    assert parsed.problems == []
    assert parsed.locations == ["line 2", "line 3"]
    first, second = parsed.leads
    assert first["candidateSlots"] == [
        {"start": "2026-11-30T15:00:00-05:00", "end": "2026-11-30T15:30:00-05:00"}
    ]
    # An empty email is "no email": the schedule endpoint rejects that lead with no_email.
    assert second["email"] is None and second["company"] is None and second["timeZone"] is None
    assert second["candidateSlots"] == []


def test_every_bad_row_is_reported_with_its_line() -> None:
    text = (
        HEADER
        + "ok-1,a@acme.test,A,Acme,Europe/Lisbon,+2d15:00/30m,S,B\n"  # line 2
        + "bad zone,a@acme.test,A,Acme,Mars/Olympus,+2d15:00/30m,S,B\n"  # line 3: id + zone
        + 'ok-2,a@acme.test,A,Acme,,+2d16:00/30m,S,"two\nlines"\n'  # lines 4-5
        + "ok-3,a@acme.test,A,Acme,,+2d15:00/later,S,B\n"  # line 6
        + "ok-1,a@acme.test,A,Acme,,,S,B\n"  # line 7: repeats line 2
        + "ok-4,a@acme.test\n"  # line 8: too few cells
    )
    problems = [str(p) for p in read_csv(text, settings(), NOW).problems]
    assert any(p.startswith("line 3: leadDocId:") for p in problems)
    assert any(p.startswith("line 3: timeZone:") and "Mars/Olympus" in p for p in problems)
    assert any(p.startswith("line 6: candidateSlots:") and "later" in p for p in problems)
    assert "line 7: leadDocId: 'ok-1' repeats line 2" in problems
    assert any(p.startswith("line 8: row:") for p in problems)
    assert not any(p.startswith(("line 2", "line 4", "line 5")) for p in problems)


def test_unknown_or_missing_columns_stop_the_file() -> None:
    parsed = read_csv("leadDocId,emial\nx,a@b.test\n", settings(), NOW)
    assert [str(p) for p in parsed.problems] == [
        "line 1: emial: unknown column (known: " + ", ".join(cli_columns()) + ")"
    ]
    parsed = read_csv("email\na@b.test\n", settings(), NOW)
    assert str(parsed.problems[0]) == "line 1: leadDocId: required column missing"


def cli_columns() -> tuple[str, ...]:
    from leadrun.leads import CSV_COLUMNS

    return CSV_COLUMNS


def test_settings_problems_name_the_field() -> None:
    parsed = read_csv(HEADER, settings(fallback={"workdayStart": "9am"}), NOW)
    assert any(str(p).startswith("config: fallback.workdayStart:") for p in parsed.problems)
    from leadrun.leads import merge_settings

    parsed = read_csv(HEADER, merge_settings(), NOW)
    assert str(parsed.problems[0]).startswith("config: host: no host")


# -- JSON -------------------------------------------------------------------------------------
def test_json_request_body_and_relative_string_slots() -> None:
    body = {
        "runId": "r-1",
        "dryRun": True,
        "host": HOST,
        "meeting": {"title": "Intro", "durationMinutes": 45},
        "leads": [
            {"leadDocId": "x", "email": "x@a.test", "candidateSlots": ["+1d10:00/45m"]},
            {
                "leadDocId": "y",
                "email": "y@a.test",
                "candidateSlots": [
                    {"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T15:30:00Z"}
                ],
            },
        ],
    }
    parsed = read_json(json.dumps(body), NOW, None, {"meeting": {"title": "Override"}})
    assert parsed.problems == []
    assert parsed.run_id == "r-1" and parsed.dry_run is True
    assert parsed.settings["meeting"] == {
        "title": "Override",
        "description": "",
        "durationMinutes": 45,
    }
    assert parsed.leads[0]["candidateSlots"][0]["start"] == "2026-11-27T10:00:00-05:00"
    assert parsed.locations == ["leads[0]", "leads[1]"]


def test_json_problems_name_the_lead_index() -> None:
    body = {"host": HOST, "leads": [{"leadDocId": "x", "timeZone": "Nowhere"}, "nope"]}
    problems = [str(p) for p in read_json(json.dumps(body), NOW).problems]
    assert any(p.startswith("leads[0]: timeZone:") for p in problems)
    assert "leads[1]: lead: must be an object" in problems


def test_flags_override_the_config_which_overrides_the_file(tmp_path: Path) -> None:
    leads = tmp_path / "leads.json"
    leads.write_text(json.dumps({"host": HOST, "leads": [{"leadDocId": "x"}]}))
    flags = settings_from_flags(
        host_email="other@example.com", workday="08:00-12:00", no_draft=True, actions="calendar"
    )
    parsed = read_leads_file(
        leads, NOW, config={"meeting": {"title": "From config"}}, overrides=flags
    )
    assert parsed.problems == []
    assert parsed.settings["host"]["calendarId"] == "other@example.com"
    assert parsed.settings["host"]["timeZone"] == "America/New_York"  # kept from the file
    assert parsed.settings["meeting"]["title"] == "From config"
    assert parsed.settings["fallback"]["workdayStart"] == "08:00"
    assert parsed.settings["fallback"]["draftIfNoSlot"] is False
    assert parsed.settings["actions"] == ["calendar"]


def test_the_sample_file_is_clean() -> None:
    config = json.loads((REPO / "samples" / "run-config.json").read_text())
    parsed = read_leads_file(REPO / "samples" / "leads.csv", NOW, implicit_config=config)
    assert parsed.problems == []
    assert len(parsed.leads) == 25
    assert sum(1 for lead in parsed.leads if not lead["email"]) == 2
    assert parsed.stages and parsed.stages["sourced"] == 40


# -- batching ---------------------------------------------------------------------------------
def test_requests_hold_at_most_500_leads_in_file_order() -> None:
    leads = [{"leadDocId": f"l-{i}", "email": f"l{i}@a.test"} for i in range(1201)]
    bodies = build_requests("r", False, settings(), leads)
    assert [len(b["leads"]) for b in bodies] == [500, 500, 201]
    assert [lead["leadDocId"] for b in bodies for lead in b["leads"]] == [
        lead["leadDocId"] for lead in leads
    ]
    assert all(b["runId"] == "r" and b["host"] == HOST for b in bodies)


def test_requests_stay_under_the_body_limit() -> None:
    leads = [{"leadDocId": f"l-{i}", "emailBody": "x" * 40_000} for i in range(60)]
    bodies = build_requests("r", False, settings(), leads)
    assert len(bodies) > 1
    assert all(len(json.dumps(b).encode()) < 1024 * 1024 for b in bodies)


# -- the command line, before anything is sent ------------------------------------------------
def test_bad_rows_exit_2_before_any_stack_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(HEADER + "ok,a@b.test,,,,+2d15:00/30m,,\nbad!,a@b.test,,,,+2d15:00/30m,,\n")
    monkeypatch.delenv("SCHEDULE_URL", raising=False)
    argv = ["run", str(leads), "--host-email", "h@example.com", "--host-tz", "America/New_York"]
    # No --env and no stack: validation alone decides.
    assert cli.main([*argv, "--env", str(tmp_path / "missing.env")]) == cli.EXIT_INPUT
    err = capsys.readouterr().err
    assert "1 problem(s); nothing was sent" in err
    assert "line 3: leadDocId:" in err


def test_flags_give_exactly_the_settings_they_name() -> None:
    assert settings_from_flags() == {}
    assert settings_from_flags(host_tz="Europe/Lisbon", duration=45) == {
        "host": {"timeZone": "Europe/Lisbon"},
        "meeting": {"durationMinutes": 45},
    }
    assert settings_from_flags(
        host_email="h@example.com",
        host_tz="UTC",
        host_name="Hana",
        title="Intro",
        duration=30,
        expand_days=3,
        workday="09:00 - 17:00",
        no_draft=True,
        actions="calendar, drive,",
        parent_folder="folder-1",
    ) == {
        "host": {
            "calendarId": "h@example.com",
            "senderEmail": "h@example.com",
            "timeZone": "UTC",
            "name": "Hana",
        },
        "meeting": {"title": "Intro", "durationMinutes": 30},
        "fallback": {
            "expandDays": 3,
            "workdayStart": "09:00",
            "workdayEnd": "17:00",
            "draftIfNoSlot": False,
        },
        "actions": ["calendar", "drive"],
        "drive": {"parentFolderId": "folder-1"},
    }
