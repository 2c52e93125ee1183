"""Hostile input to `schedule`: each case is a JSON 4xx naming the field; nothing is written/sent.

Each case builds a request for its own run id, so "nothing written" is a look at that run in
Firestore, and "nothing published" is a look at a pull subscription on every action topic.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from tests.functions.conftest import PublishProbe, Tokens, run_traces
from tests.support import free_leads, lead, next_weekday, request, slot, unique

pytestmark = pytest.mark.integration

Body = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One hostile request: how to spoil a valid body (or the raw bytes), and what must answer."""

    name: str
    spoil: Callable[[Body], Body | bytes]
    field: str
    status: int = 400


def _set(path: str, value: Any) -> Callable[[Body], Body]:
    """Set `a.b[0].c` to `value` (a key that does not exist is added: unknown fields)."""

    def spoil(body: Body) -> Body:
        parts: list[str | int] = []
        for token in path.replace("]", "").replace("[", ".").split("."):
            parts.append(int(token) if token.isdigit() else token)
        target: Any = body
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value
        return body

    return spoil


def _drop(key: str) -> Callable[[Body], Body]:
    def spoil(body: Body) -> Body:
        del body[key]
        return body

    return spoil


def _raw(text: str | bytes) -> Callable[[Body], bytes]:
    def spoil(body: Body) -> bytes:
        data = text if isinstance(text, bytes) else text.encode()
        return data.replace(b"RUN_ID", body["runId"].encode())

    return spoil


def _leads(count: int) -> Callable[[Body], Body]:
    def spoil(body: Body) -> Body:
        body["leads"] = [lead(f"l{i}", []) for i in range(count)]
        return body

    return spoil


def _duplicate_ids(body: Body) -> Body:
    body["leads"][1]["leadDocId"] = body["leads"][0]["leadDocId"]
    return body


def _too_many_slots(body: Body) -> Body:
    start = next_weekday(3)
    body["leads"][0]["candidateSlots"] = [slot(start) for _ in range(51)]
    return body


def _deep(body: Body) -> bytes:
    text = json.dumps(body)
    return text.replace('"Acme"', "[" * 5000 + "]" * 5000, 1).encode()


def _oversized(body: Body) -> bytes:
    body["meeting"]["description"] = "x" * (1024 * 1024)
    return json.dumps(body).encode()


NAIVE = "2026-12-01T15:00:00"
SLOT0 = "leads[0].candidateSlots[0]"

CASES: list[Case] = [
    # Not JSON, or not an object.
    Case("malformed_json", _raw('{"runId": "RUN_ID", "leads": ['), "body"),
    Case("not_json", _raw("runId=RUN_ID&dryRun=false"), "body"),
    Case("json_array", _raw('["RUN_ID"]'), "body"),
    Case("json_null", _raw("null"), "body"),
    Case("empty_body", _raw(b""), "body"),
    Case("invalid_utf8", _raw(b'{"runId": "RUN_ID", "x": "\xff\xfe"}'), "body"),
    Case("lone_surrogate", _raw('{"runId": "RUN_ID", "x": "\\ud800"}'), "body"),
    Case("raw_nul_in_string", _raw(b'{"runId": "RUN_ID\x00"}'), "body"),
    Case("deep_nesting", _deep, "body"),
    Case("over_1_mib", _oversized, "body", status=413),
    # Wrong types.
    Case("run_id_number", _set("runId", 12345), "runId"),
    Case("dry_run_string", _set("dryRun", "false"), "dryRun"),
    Case("leads_object", _set("leads", {"leadDocId": "x"}), "leads"),
    Case("lead_string", _set("leads[0]", "lead-000"), "leads[0]"),
    Case("duration_string", _set("meeting.durationMinutes", "30"), "meeting.durationMinutes"),
    Case("duration_float", _set("meeting.durationMinutes", 30.5), "meeting.durationMinutes"),
    Case("time_zone_number", _set("leads[1].timeZone", 5), "leads[1].timeZone"),
    Case("email_list", _set("leads[0].email", ["a@b.test", "c@d.test"]), "leads[0].email"),
    Case("slots_string", _set("leads[0].candidateSlots", "tomorrow"), "leads[0].candidateSlots"),
    # Numbers out of range.
    Case("duration_negative", _set("meeting.durationMinutes", -30), "meeting.durationMinutes"),
    Case("duration_too_short", _set("meeting.durationMinutes", 4), "meeting.durationMinutes"),
    Case("duration_too_long", _set("meeting.durationMinutes", 481), "meeting.durationMinutes"),
    Case("duration_huge", _set("meeting.durationMinutes", 10**30), "meeting.durationMinutes"),
    Case("expand_days_15", _set("fallback.expandDays", 15), "fallback.expandDays"),
    Case("expand_days_negative", _set("fallback.expandDays", -1), "fallback.expandDays"),
    Case("workday_not_hhmm", _set("fallback.workdayStart", "9am"), "fallback.workdayStart"),
    Case("workday_25h", _set("fallback.workdayEnd", "25:00"), "fallback.workdayEnd"),
    Case("workday_inverted", _set("fallback.workdayStart", "18:00"), "fallback.workdayEnd"),
    # Arrays and strings past their limits.
    Case("no_leads", _set("leads", []), "leads"),
    Case("leads_501", _leads(501), "leads"),
    Case("slots_51", _too_many_slots, "leads[0].candidateSlots"),
    Case("subject_251", _set("leads[0].emailSubject", "s" * 251), "leads[0].emailSubject"),
    Case("body_over_50kb", _set("leads[0].emailBody", "é" * 25_001), "leads[0].emailBody"),
    Case("lead_name_201", _set("leads[0].name", "n" * 201), "leads[0].name"),
    Case("company_201", _set("leads[0].company", "c" * 201), "leads[0].company"),
    Case("host_name_201", _set("host.name", "h" * 201), "host.name"),
    Case("title_251", _set("meeting.title", "t" * 251), "meeting.title"),
    Case("run_id_129", _set("runId", "r" * 129), "runId"),
    Case("actions_empty", _set("actions", []), "actions"),
    Case("actions_repeat", _set("actions", ["email", "email"]), "actions"),
    Case("actions_unknown", _set("actions", ["sms"]), "actions[0]"),
    # Ids: path-like, quoted, reserved, repeated.
    Case("run_id_path", _set("runId", "../../lead_runs/x"), "runId"),
    Case("run_id_empty", _set("runId", ""), "runId"),
    Case("run_id_reserved", _set("runId", "__name__"), "runId"),
    Case("lead_id_slash", _set("leads[0].leadDocId", "a/b"), "leads[0].leadDocId"),
    Case("lead_id_quote", _set("leads[0].leadDocId", "o'brien"), "leads[0].leadDocId"),
    Case("lead_id_reserved", _set("leads[0].leadDocId", "__x__"), "leads[0].leadDocId"),
    Case("lead_id_unicode", _set("leads[0].leadDocId", "lead-٣"), "leads[0].leadDocId"),
    Case("lead_id_duplicate", _duplicate_ids, "leads[1].leadDocId"),
    Case(
        "folder_id_query",
        _set("drive.parentFolderId", "x' or name contains '"),
        "drive.parentFolderId",
    ),
    # NUL and control characters, CR/LF where a header is made.
    Case("nul_in_name", _set("leads[0].name", "Ana\u0000Silva"), "leads[0].name"),
    Case("lf_in_name", _set("leads[0].name", "Ana\nBcc: x@evil.test"), "leads[0].name"),
    Case(
        "crlf_in_subject",
        _set("leads[0].emailSubject", "Hi\r\nBcc: x@evil.test"),
        "leads[0].emailSubject",
    ),
    Case(
        "line_separator_in_subject",
        _set("leads[0].emailSubject", "Hi\u2028Bcc: x"),
        "leads[0].emailSubject",
    ),
    Case("tab_in_company", _set("leads[0].company", "Acme\tInc"), "leads[0].company"),
    Case("crlf_in_host_name", _set("host.name", "Hana\r\nBcc: x@evil.test"), "host.name"),
    Case("crlf_in_title", _set("meeting.title", "Call\r\nX-Evil: 1"), "meeting.title"),
    Case("nul_in_body", _set("leads[0].emailBody", "hi\u0000there"), "leads[0].emailBody"),
    Case(
        "crlf_in_sender",
        _set("host.senderEmail", "host@example.com\r\nBcc: x@evil.test"),
        "host.senderEmail",
    ),
    Case(
        "encoded_crlf_in_subject",
        _set("leads[0].emailSubject", "=?utf-8?q?Hi=0D=0ABcc:_spy@evil.test?="),
        "leads[0].emailSubject",
    ),
    Case(
        "encoded_address_in_name",
        _set("leads[0].name", "=?utf-8?b?QW5hIDxzcHlAZXZpbC50ZXN0Piwgbw==?="),
        "leads[0].name",
    ),
    Case(
        "encoded_word_in_sender",
        _set("host.senderEmail", "=?utf-8?q?x?=@example.com"),
        "host.senderEmail",
    ),
    Case("crlf_in_calendar", _set("host.calendarId", "h@example.com\nx"), "host.calendarId"),
    # Datetimes and zones.
    Case(
        "naive_start",
        _set(f"{SLOT0}.start", NAIVE),
        f"{SLOT0}.start",
    ),
    Case(
        "words_for_time",
        _set(f"{SLOT0}.end", "tomorrow"),
        f"{SLOT0}.end",
    ),
    Case("unknown_zone", _set("leads[1].timeZone", "Mars/Olympus"), "leads[1].timeZone"),
    Case("path_zone", _set("leads[0].timeZone", "../../etc/passwd"), "leads[0].timeZone"),
    Case("localtime_zone", _set("host.timeZone", "localtime"), "host.timeZone"),
    # Unknown fields, including ones that try to take over a run.
    Case("unknown_top_level", _set("admin", True), "admin"),
    Case("owner_uid", _set("ownerUid", "mallory"), "ownerUid"),
    Case("unknown_in_lead", _set("leads[0].bcc", "x@evil.test"), "leads[0].bcc"),
    Case("unknown_in_host", _set("host.impersonate", "ceo@example.com"), "host.impersonate"),
    Case(
        "unknown_in_slot",
        _set(f"{SLOT0}.tz", "UTC"),
        f"{SLOT0}.tz",
    ),
    # Missing parts and bad addresses.
    Case("no_host", _drop("host"), "host"),
    Case("no_meeting", _drop("meeting"), "meeting"),
    Case("sender_not_address", _set("host.senderEmail", "not-an-address"), "host.senderEmail"),
    Case("calendar_path", _set("host.calendarId", "../calendars/x"), "host.calendarId"),
    # The host allowlist (LEADRUN_WORKSPACE_SUBJECTS): 403, nothing written either.
    Case("host_not_allowed", _set("host.senderEmail", "ceo@victim.test"), "host.senderEmail", 403),
    Case(
        "calendar_not_allowed",
        _set("host.calendarId", "ceo@victim.test"),
        "host.calendarId",
        403,
    ),
]


def _valid_body() -> Body:
    return request(unique("hostile"), free_leads(2, days_ahead=4), dryRun=True)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_is_refused_and_changes_nothing(
    case: Case,
    schedule_fn: FlaskClient,
    tokens: Tokens,
    db: firestore.Client,
    probe: PublishProbe,
) -> None:
    body = _valid_body()
    run_id = body["runId"]
    spoiled = case.spoil(copy.deepcopy(body))
    data = spoiled if isinstance(spoiled, bytes) else json.dumps(spoiled).encode()
    # The id of the run this request would touch, if it had one it could name.
    touched = spoiled.get("runId", run_id) if isinstance(spoiled, dict) else run_id

    answer = schedule_fn.post(
        "/", data=data, headers={**tokens.bearer(), "Content-Type": "application/json"}
    )

    assert answer.status_code == case.status, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "application/json"
    error = answer.get_json()["error"]
    assert (
        error["code"]
        == {400: "invalid_request", 403: "forbidden", 413: "payload_too_large"}[case.status]
    )
    assert error["message"]
    fields = [detail["field"] for detail in error["details"]]
    assert case.field in fields, fields
    if isinstance(touched, str) and touched:
        if re.fullmatch(r"[A-Za-z0-9_-]{1,128}", touched) and not touched.startswith("__"):
            assert run_traces(db, touched) == []
        assert probe.published_for(touched) == []
    assert run_traces(db, run_id) == []
    assert probe.published_for(run_id) == []


def test_the_checks_can_see_a_request_that_got_through(
    schedule_fn: FlaskClient, tokens: Tokens, db: firestore.Client, probe: PublishProbe
) -> None:
    """The same checks on a valid request find its run and its messages (so they can fail)."""
    body = _valid_body()
    answer = schedule_fn.post("/", json=body, headers=tokens.bearer())
    assert answer.status_code == 202, answer.get_json()
    assert run_traces(db, body["runId"])
    published = probe.published_for(body["runId"])
    # (book may already have published the lead-notify follow-up: the stack is live)
    assert {"lead-calendar", "lead-drive"} <= {m["topic"] for m in published}
    assert {m["attributes"]["leadDocId"] for m in published} == {"lead-000", "lead-001"}


def test_a_lead_level_problem_rejects_that_lead_only(
    schedule_fn: FlaskClient, tokens: Tokens, probe: PublishProbe
) -> None:
    body = _valid_body()
    body["leads"][1]["email"] = "not an address\r\nBcc: x@evil.test"
    body["leads"].append(lead("lead-002", [], email="=?utf-8?q?a=0D=0ABcc:_x?=@acme.test"))
    answer = schedule_fn.post("/", json=body, headers=tokens.bearer())
    assert answer.status_code == 202
    assert answer.get_json()["rejected"] == [
        {"leadDocId": "lead-001", "reason": "invalid_email"},
        {"leadDocId": "lead-002", "reason": "invalid_email"},
    ]
    assert probe.published_for(body["runId"], "lead-002") == []
    assert probe.published_for(body["runId"], "lead-001") == []
    assert probe.published_for(body["runId"], "lead-000")


def test_diagnostics_refuses_hostile_input(diagnostics_fn: FlaskClient, tokens: Tokens) -> None:
    cases: list[tuple[str, dict[str, Any] | None, str]] = [
        ("?runId=../x", None, "runId"),
        ("?runId=__name__", None, "runId"),
        ("?runId=abc%0A", None, "runId"),
        ("", None, "runId"),
        ("", {"runId": "r1", "sourced": -1, "filtered": 0}, "sourced"),
        ("", {"runId": "r1", "sourced": "1", "filtered": 0}, "sourced"),
        ("", {"runId": "r1", "sourced": 1, "filtered": 0, "extra": 1}, "extra"),
        (
            "",
            {"runId": "r1", "sourced": 1, "filtered": 0, "filterReasons": {"__x__": 1}},
            "filterReasons.__x__",
        ),
    ]
    for query, body, field in cases:
        if body is None:
            answer = diagnostics_fn.get(f"/{query}", headers=tokens.bearer())
        else:
            answer = diagnostics_fn.post("/", json=body, headers=tokens.bearer())
        assert answer.status_code == 400, (query, body, answer.get_data(as_text=True))
        details = answer.get_json()["error"]["details"]
        assert field in [d["field"] for d in details], (query, body, details)
