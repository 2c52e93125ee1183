"""Calendar v3 through the real googleapiclient: freebusy, insert/duplicate/get/list, Meet."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.sandbox import AUTH

HOST = "host@example.com"


def _event(event_id: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "start": {"dateTime": start}, "end": {"dateTime": end}, **extra}


def _reason(err: HttpError) -> str:
    return err.error_details[0]["reason"]


def test_freebusy_merges_events_and_busy_blocks(calendar: Any, sandbox_url: str) -> None:
    calendar.events().insert(
        calendarId=HOST, body=_event("evt00001", "2026-12-01T15:00:00Z", "2026-12-01T15:30:00Z")
    ).execute()
    calendar.events().insert(
        calendarId=HOST,
        body=_event(
            "evt00002", "2026-12-01T18:00:00Z", "2026-12-01T19:00:00Z", transparency="transparent"
        ),
    ).execute()
    calendar.events().insert(
        calendarId=HOST, body=_event("evt00003", "2026-11-30T23:00:00Z", "2026-12-01T01:00:00Z")
    ).execute()
    requests.post(
        f"{sandbox_url}/_sandbox/busy",
        json={"calendarId": HOST, "start": "2026-12-01T15:30:00Z", "end": "2026-12-01T16:00:00Z"},
        timeout=10,
    ).raise_for_status()
    requests.post(
        f"{sandbox_url}/_sandbox/busy",
        json={
            "calendarId": "other@example.com",
            "start": "2026-12-01T09:00:00Z",
            "end": "2026-12-01T10:00:00Z",
        },
        timeout=10,
    ).raise_for_status()
    answer = (
        calendar.freebusy()
        .query(
            body={
                "timeMin": "2026-12-01T00:00:00Z",
                "timeMax": "2026-12-02T00:00:00Z",
                "items": [{"id": HOST}, {"id": "nobody@calendar.invalid"}],
            }
        )
        .execute()
    )
    busy = answer["calendars"][HOST]["busy"]
    # adjacent event + block merged, transparent event ignored, overnight event clipped
    assert busy == [
        {"start": "2026-12-01T00:00:00Z", "end": "2026-12-01T01:00:00Z"},
        {"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T16:00:00Z"},
    ]
    assert "errors" not in answer["calendars"][HOST]
    assert answer["calendars"]["nobody@calendar.invalid"]["errors"] == [
        {"domain": "global", "reason": "notFound"}
    ]


def test_freebusy_end_is_exclusive_and_time_zone_applies(calendar: Any) -> None:
    calendar.events().insert(
        calendarId=HOST, body=_event("evt00001", "2026-12-01T15:00:00Z", "2026-12-01T15:30:00Z")
    ).execute()
    empty = (
        calendar.freebusy()
        .query(
            body={
                "timeMin": "2026-12-01T15:30:00Z",
                "timeMax": "2026-12-01T16:00:00Z",
                "items": [{"id": HOST}],
            }
        )
        .execute()
    )
    assert empty["calendars"][HOST]["busy"] == []
    local = (
        calendar.freebusy()
        .query(
            body={
                "timeMin": "2026-12-01T00:00:00Z",
                "timeMax": "2026-12-02T00:00:00Z",
                "timeZone": "America/New_York",
                "items": [{"id": HOST}],
            }
        )
        .execute()
    )
    assert local["calendars"][HOST]["busy"] == [
        {"start": "2026-12-01T10:00:00-05:00", "end": "2026-12-01T10:30:00-05:00"}
    ]


def test_insert_duplicate_get_and_deleted_id_stays_taken(
    calendar: Any, client: Any, state: Any
) -> None:
    body = _event(
        "lead0001abc",
        "2026-12-01T15:00:00Z",
        "2026-12-01T15:30:00Z",
        summary="Intro call",
        attendees=[{"email": "ana@acme.test"}],
    )
    created = calendar.events().insert(calendarId=HOST, body=body).execute()
    assert created["id"] == "lead0001abc"
    assert created["status"] == "confirmed"
    assert created["htmlLink"].startswith("https://www.google.com/calendar/event?eid=")
    assert created["organizer"]["email"] == HOST
    assert created["attendees"][0]["email"] == "ana@acme.test"
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId=HOST, body=body).execute()
    assert err.value.status_code == 409
    assert _reason(err.value) == "duplicate"
    # the same id on another calendar is fine (its owner inserts it there)
    client("calendar", user="other@example.com").events().insert(
        calendarId="other@example.com", body=body
    ).execute()
    got = calendar.events().get(calendarId=HOST, eventId="lead0001abc").execute()
    assert got["summary"] == "Intro call"
    events = state()["events"]
    assert [(e["calendarId"], e["id"]) for e in events] == [
        (HOST, "lead0001abc"),
        ("other@example.com", "lead0001abc"),
    ]
    calendar.events().delete(calendarId=HOST, eventId="lead0001abc").execute()
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId=HOST, body=body).execute()
    assert err.value.status_code == 409
    with pytest.raises(HttpError) as err:
        calendar.events().get(calendarId=HOST, eventId="missing00").execute()
    assert err.value.status_code == 404
    assert _reason(err.value) == "notFound"


@pytest.mark.parametrize("bad_id", ["abc", "UPPERCASE1", "has-dash-1", "wxyz12345"])
def test_insert_rejects_non_base32hex_ids(calendar: Any, bad_id: str, state: Any) -> None:
    with pytest.raises(HttpError) as err:
        body = _event(bad_id, "2026-12-01T15:00:00Z", "2026-12-01T16:00:00Z")
        calendar.events().insert(calendarId=HOST, body=body).execute()
    assert err.value.status_code == 400
    assert _reason(err.value) == "invalid"
    assert state()["events"] == []


def test_unknown_calendar_is_404(calendar: Any) -> None:
    body = _event("abcde", "2026-12-01T15:00:00Z", "2026-12-01T16:00:00Z")
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId="nobody@calendar.invalid", body=body).execute()
    assert err.value.status_code == 404
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="nobody@calendar.invalid").execute()
    assert err.value.status_code == 404


def test_meet_link_only_with_conference_data_version(calendar: Any) -> None:
    conference = {
        "createRequest": {"requestId": "req-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}
    }
    without = (
        calendar.events()
        .insert(
            calendarId=HOST,
            body=_event(
                "nomeet001",
                "2026-12-01T15:00:00Z",
                "2026-12-01T16:00:00Z",
                conferenceData=conference,
            ),
        )
        .execute()
    )
    assert "hangoutLink" not in without
    assert "conferenceData" not in without
    with_meet = (
        calendar.events()
        .insert(
            calendarId=HOST,
            conferenceDataVersion=1,
            body=_event(
                "meet00001",
                "2026-12-02T15:00:00Z",
                "2026-12-02T16:00:00Z",
                conferenceData=conference,
            ),
        )
        .execute()
    )
    link = with_meet["hangoutLink"]
    assert link.startswith("https://meet.google.com/")
    code = link.rsplit("/", 1)[1]
    assert [len(p) for p in code.split("-")] == [3, 4, 3]
    data = with_meet["conferenceData"]
    assert data["createRequest"]["status"]["statusCode"] == "success"
    assert data["entryPoints"][0]["uri"] == link
    again = (
        calendar.events()
        .insert(
            calendarId=HOST,
            conferenceDataVersion=1,
            body=_event(
                "meet00002",
                "2026-12-03T15:00:00Z",
                "2026-12-03T16:00:00Z",
                conferenceData=conference,
            ),
        )
        .execute()
    )
    assert again["hangoutLink"] == link  # deterministic from requestId


def test_list_filters_by_time_and_text(calendar: Any) -> None:
    calendar.events().insert(
        calendarId=HOST,
        body=_event("aaaaa1", "2026-12-01T15:00:00Z", "2026-12-01T16:00:00Z", summary="Acme intro"),
    ).execute()
    calendar.events().insert(
        calendarId=HOST,
        body=_event("aaaaa2", "2026-12-05T15:00:00Z", "2026-12-05T16:00:00Z", summary="Other"),
    ).execute()
    window = (
        calendar.events()
        .list(calendarId=HOST, timeMin="2026-12-01T00:00:00Z", timeMax="2026-12-02T00:00:00Z")
        .execute()
    )
    assert [e["id"] for e in window["items"]] == ["aaaaa1"]
    text = calendar.events().list(calendarId=HOST, q="other").execute()
    assert [e["id"] for e in text["items"]] == ["aaaaa2"]


def test_unknown_body_field_is_400(calendar: Any, state: Any) -> None:
    body = _event("abcdef1", "2026-12-01T15:00:00Z", "2026-12-01T16:00:00Z")
    body["start"]["dateTimee"] = "typo"
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId=HOST, body=body).execute()
    assert err.value.status_code == 400
    assert "dateTimee" in str(err.value)
    nested = _event("abcdef2", "2026-12-01T15:00:00Z", "2026-12-01T16:00:00Z")
    nested["conferenceData"] = {"createRequest": {"requestId": "x", "bogusKey": 1}}
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId=HOST, conferenceDataVersion=1, body=nested).execute()
    assert err.value.status_code == 400
    assert "bogusKey" in str(err.value)
    assert state()["events"] == []


def test_undeclared_query_parameter_is_400(sandbox_url: str) -> None:
    answer = requests.get(
        f"{sandbox_url}/calendars/{HOST}/events",
        params={"notAParam": "1"},
        headers=AUTH,
        timeout=10,
    )
    assert answer.status_code == 400
    assert "notAParam" in answer.json()["error"]["message"]
    assert requests.get(f"{sandbox_url}/no/such/path", timeout=10).status_code == 404
