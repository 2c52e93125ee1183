"""Google's behaviour undo relies on (docs/api.md, "Workspace sandbox"), through googleapiclient:
deleted events, trashed files, deleted drafts, ``fields`` masks and whose calendar a user acts on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.sandbox import USER
from tests.sandbox.conftest import Clients

BOB = "bob@example.com"
FOLDER = "application/vnd.google-apps.folder"
WINDOW = {"timeMin": "2026-12-01T00:00:00Z", "timeMax": "2026-12-02T00:00:00Z"}

Limits = Callable[[dict[str, Any]], None]


def _event(event_id: str, start: str = "15:00", end: str = "15:30", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "start": {"dateTime": f"2026-12-01T{start}:00Z"},
        "end": {"dateTime": f"2026-12-01T{end}:00Z"},
        **extra,
    }


def _raw(message_id: str) -> str:
    msg = EmailMessage()
    msg["To"] = "ana@acme.test"
    msg["From"] = f"Hana Host <{USER}>"
    msg["Subject"] = "Our call"
    msg["Message-ID"] = message_id
    msg.set_content("Hi Ana")
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


def _error(err: HttpError) -> dict[str, Any]:
    """Google's error body, checked for its shape."""
    body = dict(json.loads(err.content)["error"])
    assert body["code"] == err.status_code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["status"], str) and body["status"]
    assert len(body["errors"]) == 1 and body["errors"][0]["domain"]
    return body


def _refused(call: Any, status: int, reason: str) -> dict[str, Any]:
    """Execute a request expected to fail with ``status`` and ``reason``; its error body."""
    with pytest.raises(HttpError) as err:
        call.execute()
    assert err.value.status_code == status, err.value.content
    body = _error(err.value)
    assert body["errors"][0]["reason"] == reason, body
    return body


def _busy(calendar: Any, calendar_id: str) -> list[dict[str, str]]:
    answer = calendar.freebusy().query(body={**WINDOW, "items": [{"id": calendar_id}]}).execute()
    return list(answer["calendars"][calendar_id]["busy"])


# ---- events.delete ---------------------------------------------------------------------------


def test_delete_cancels_the_event_and_state_keeps_it_with_its_send_updates(
    calendar: Any, state: Any
) -> None:
    events = calendar.events()
    events.insert(calendarId=USER, body=_event("undo00001", summary="Intro")).execute()
    events.insert(calendarId=USER, body=_event("undo00002", "16:00", "16:30")).execute()
    assert events.delete(calendarId=USER, eventId="undo00001", sendUpdates="all").execute() == ""
    events.delete(calendarId=USER, eventId="undo00002").execute()
    kept = {e["id"]: e for e in state()["events"]}
    assert kept["undo00001"]["status"] == "cancelled"
    assert kept["undo00001"]["summary"] == "Intro"
    assert kept["undo00001"]["sendUpdates"] == "all"
    assert kept["undo00002"]["sendUpdates"] == "none"  # Google's default: nobody is told
    got = events.get(calendarId=USER, eventId="undo00001").execute()
    assert got["status"] == "cancelled"
    assert "sendUpdates" not in got  # bookkeeping of the sandbox, not a field of the event
    assert events.list(calendarId=USER).execute()["items"] == []
    shown = events.list(calendarId=USER, showDeleted=True).execute()["items"]
    assert {e["id"] for e in shown} == {"undo00001", "undo00002"}


def test_a_second_delete_is_410_deleted_and_the_id_stays_taken(calendar: Any, state: Any) -> None:
    events = calendar.events()
    events.insert(calendarId=USER, body=_event("undo00003")).execute()
    events.delete(calendarId=USER, eventId="undo00003", sendUpdates="all").execute()
    body = _refused(events.delete(calendarId=USER, eventId="undo00003"), 410, "deleted")
    assert body["message"] == "Resource has been deleted"
    dup = _refused(events.insert(calendarId=USER, body=_event("undo00003")), 409, "duplicate")
    assert dup["message"] == "The requested identifier already exists."
    assert dup["status"] == "ALREADY_EXISTS"
    _refused(events.delete(calendarId=USER, eventId="never0001"), 404, "notFound")
    (kept,) = state()["events"]
    assert kept["sendUpdates"] == "all"  # the refused second delete changed nothing


def test_a_cancelled_event_is_not_busy(calendar: Any) -> None:
    events = calendar.events()
    events.insert(calendarId=USER, body=_event("undo00004")).execute()
    events.insert(calendarId=USER, body=_event("undo00005", "17:00", "18:00")).execute()
    assert len(_busy(calendar, USER)) == 2
    events.delete(calendarId=USER, eventId="undo00004", sendUpdates="all").execute()
    assert _busy(calendar, USER) == [
        {"start": "2026-12-01T17:00:00Z", "end": "2026-12-01T18:00:00Z"}
    ]


# ---- files.update: the trash -----------------------------------------------------------------


def test_trashed_file_is_found_by_id_and_by_search_unless_it_says_trashed_false(
    drive: Any, state: Any
) -> None:
    files = drive.files()
    tag = "appProperties has { key='leadKey' and value='k1' }"
    body = {"name": "Acme", "mimeType": FOLDER, "appProperties": {"leadKey": "k1"}}
    made = files.create(body=body).execute()
    answer = files.update(fileId=made["id"], body={"trashed": True}).execute()
    assert answer == {"kind": "drive#file", "id": made["id"], "name": "Acme", "mimeType": FOLDER}
    (kept,) = state()["folders"]
    assert kept["trashed"] is True and kept["explicitlyTrashed"] is True
    got = files.get(fileId=made["id"], fields="id,trashed,trashedTime").execute()
    assert got["id"] == made["id"] and got["trashed"] is True and got["trashedTime"]

    def found(q: str | None) -> list[str]:
        listed = files.list(q=q).execute() if q else files.list().execute()
        return [f["id"] for f in listed["files"]]

    assert found(None) == [made["id"]]
    assert found(tag) == [made["id"]]
    assert found(f"{tag} and trashed = true") == [made["id"]]
    assert found(f"{tag} and trashed = false") == []
    assert found("trashed = false") == []
    files.update(fileId=made["id"], body={"trashed": False}).execute()
    assert found(f"{tag} and trashed = false") == [made["id"]]
    assert state()["folders"][0]["trashed"] is False


def test_update_answers_the_fields_asked_and_changes_metadata(drive: Any) -> None:
    files = drive.files()
    made = files.create(body={"name": "Acme", "appProperties": {"a": "1", "b": "2"}}).execute()
    answer = files.update(
        fileId=made["id"],
        body={"name": "Acme (old)", "appProperties": {"a": None, "c": "3"}, "trashed": True},
        fields="id,name,trashed,appProperties",
    ).execute()
    assert answer == {
        "id": made["id"],
        "name": "Acme (old)",
        "trashed": True,
        "appProperties": {"b": "2", "c": "3"},  # a null value clears its key, as Drive does
    }


def test_trashing_a_folder_trashes_what_is_in_it(drive: Any) -> None:
    files = drive.files()
    parent = files.create(body={"name": "Lead", "mimeType": FOLDER}).execute()
    child = files.create(body={"name": "Notes", "parents": [parent["id"]]}).execute()
    files.update(fileId=parent["id"], body={"trashed": True}).execute()
    inner = files.get(fileId=child["id"], fields="trashed,explicitlyTrashed").execute()
    assert inner == {"trashed": True, "explicitlyTrashed": False}
    files.update(fileId=parent["id"], body={"trashed": False}).execute()
    assert files.get(fileId=child["id"], fields="trashed").execute() == {"trashed": False}


def test_update_refusals_are_drives(drive: Any, client: Clients, state: Any) -> None:
    files = drive.files()
    made = files.create(body={"name": "Acme"}).execute()
    body = _refused(files.update(fileId="nope", body={"trashed": True}), 404, "notFound")
    assert body["message"] == "File not found: nope."
    bob = client("drive", user=BOB).files()  # another user's drive does not hold the file
    _refused(bob.update(fileId=made["id"], body={"trashed": True}), 404, "notFound")
    parents = files.update(fileId=made["id"], body={"parents": ["root"]})
    _refused(parents, 403, "fieldNotWritable")
    assert state()["folders"][0]["trashed"] is False


# ---- drafts.delete ---------------------------------------------------------------------------


def test_drafts_delete_removes_the_draft_then_404(gmail: Any, client: Clients, state: Any) -> None:
    drafts = gmail.users().drafts()
    made = drafts.create(userId="me", body={"message": {"raw": _raw("<d1@x>")}}).execute()
    kept = drafts.create(userId="me", body={"message": {"raw": _raw("<d2@x>")}}).execute()
    bob = client("gmail", user=BOB).users().drafts()
    _refused(bob.delete(userId="me", id=made["id"]), 404, "notFound")  # not Bob's draft
    assert drafts.delete(userId="me", id=made["id"]).execute() == ""
    assert [d["id"] for d in state()["drafts"]] == [kept["id"]]
    _refused(drafts.get(userId="me", id=made["id"]), 404, "notFound")
    body = _refused(drafts.delete(userId="me", id=made["id"]), 404, "notFound")
    assert body["message"] == "Requested entity was not found."
    listed = drafts.list(userId="me").execute()["drafts"]
    assert [d["id"] for d in listed] == [kept["id"]]
    found = gmail.users().messages().list(userId="me", q="rfc822msgid:d1@x").execute()
    assert "messages" not in found  # the draft's message went with it


# ---- fields masks ----------------------------------------------------------------------------


def test_a_mask_naming_an_unknown_field_is_400_invalid_parameter(
    drive: Any, calendar: Any, gmail: Any, state: Any
) -> None:
    files = drive.files()
    made = files.create(body={"name": "Acme"}).execute()
    body = _refused(files.get(fileId=made["id"], fields="id,nmae"), 400, "invalidParameter")
    assert body["status"] == "INVALID_ARGUMENT"
    assert body["errors"][0]["location"] == "fields"
    assert body["errors"][0]["locationType"] == "parameter"
    assert "nmae" in body["message"]
    _refused(files.list(fields="files(id,bogus)"), 400, "invalidParameter")
    _refused(files.list(fields="nextPageToken,bogus"), 400, "invalidParameter")
    _refused(files.get(fileId=made["id"], fields="name(first)"), 400, "invalidParameter")
    update = files.update(fileId=made["id"], body={"trashed": True}, fields="id,trashd")
    _refused(update, 400, "invalidParameter")
    create = files.create(body={"name": "Other"}, fields="id,webViewLnk")
    _refused(create, 400, "invalidParameter")
    assert [(f["name"], f["trashed"]) for f in state()["folders"]] == [("Acme", False)]
    calendar.events().insert(calendarId=USER, body=_event("mask00001")).execute()
    get = calendar.events().get(calendarId=USER, eventId="mask00001", fields="id,start/dateTme")
    _refused(get, 400, "invalidParameter")
    insert = calendar.events().insert(calendarId=USER, body=_event("mask00002"), fields="idd")
    _refused(insert, 400, "invalidParameter")
    assert [e["id"] for e in state()["events"]] == ["mask00001"]  # a refused mask made nothing
    _refused(gmail.users().drafts().list(userId="me", fields="draft"), 400, "invalidParameter")


def test_masks_naming_fields_the_resource_has_are_answered(drive: Any, calendar: Any) -> None:
    files = drive.files()
    body = {"name": "Acme", "mimeType": FOLDER, "appProperties": {"leadKey": "k"}}
    # the masks common/google_apis.py sends when it creates a lead's folder and reads it back
    made = files.create(body=body, fields="id,name,webViewLink,parents").execute()
    assert set(made) == {"id", "name", "webViewLink", "parents"}
    got = files.get(fileId=made["id"], fields="id,name,webViewLink,trashed").execute()
    assert got["trashed"] is False and set(got) == {"id", "name", "webViewLink", "trashed"}
    by_key = files.get(fileId=made["id"], fields="appProperties/leadKey").execute()
    assert by_key == {"appProperties": {"leadKey": "k"}}  # a map's entries are selectable
    listed = files.list(fields="nextPageToken, files(id, appProperties)").execute()
    assert listed == {"files": [{"id": made["id"], "appProperties": {"leadKey": "k"}}]}
    assert files.get(fileId=made["id"], fields="*").execute()["name"] == "Acme"
    calendar.events().insert(calendarId=USER, body=_event("mask00003")).execute()
    items = calendar.events().list(calendarId=USER, fields="items(id,start/dateTime)").execute()
    assert items == {"items": [{"id": "mask00003", "start": {"dateTime": "2026-12-01T15:00:00Z"}}]}
    busy = calendar.freebusy().query(
        body={**WINDOW, "items": [{"id": USER}]}, fields=f"calendars/{USER}/busy"
    )
    assert busy.execute()["calendars"][USER]["busy"]  # freeBusy answers a map of calendars


# ---- whose calendar --------------------------------------------------------------------------


def test_primary_is_the_acting_users_own_calendar(calendar: Any, state: Any) -> None:
    events = calendar.events()
    made = events.insert(calendarId="primary", body=_event("prim00001")).execute()
    assert made["organizer"] == {"email": USER, "self": True}
    assert [(e["calendarId"], e["user"]) for e in state()["events"]] == [(USER, USER)]
    assert events.get(calendarId=USER, eventId="prim00001").execute()["id"] == "prim00001"
    assert events.get(calendarId=USER.upper(), eventId="prim00001").execute()["id"] == "prim00001"
    _refused(events.insert(calendarId=USER, body=_event("prim00001")), 409, "duplicate")
    assert [e["id"] for e in events.list(calendarId="primary").execute()["items"]] == ["prim00001"]
    assert events.list(calendarId="primary").execute()["summary"] == USER
    assert _busy(calendar, "primary") == _busy(calendar, USER) != []
    events.delete(calendarId="primary", eventId="prim00001", sendUpdates="all").execute()
    _refused(events.delete(calendarId=USER, eventId="prim00001"), 410, "deleted")


def test_another_users_calendar_is_404_not_found(
    calendar: Any, client: Clients, state: Any
) -> None:
    bobs = client("calendar", user=BOB).events()
    bobs.insert(calendarId="primary", body=_event("bob000001")).execute()
    events = calendar.events()
    calls = [
        events.insert(calendarId=BOB, body=_event("host00001")),
        events.get(calendarId=BOB, eventId="bob000001"),
        events.list(calendarId=BOB),
        events.delete(calendarId=BOB, eventId="bob000001", sendUpdates="all"),
    ]
    for call in calls:
        body = _refused(call, 404, "notFound")
        assert body["status"] == "NOT_FOUND" and body["message"] == "Not Found"
    assert [(e["calendarId"], e["id"], e["status"]) for e in state()["events"]] == [
        (BOB, "bob000001", "confirmed")
    ]
    # free/busy stays readable across users of the domain, as Google allows
    assert _busy(calendar, BOB) == [
        {"start": "2026-12-01T15:00:00Z", "end": "2026-12-01T15:30:00Z"}
    ]
    assert _busy(calendar, "primary") == []  # the host's own calendar is not Bob's


def test_busy_blocks_are_named_by_address_and_read_through_primary(
    calendar: Any, sandbox_url: str
) -> None:
    url = f"{sandbox_url}/_sandbox/busy"
    block = {"calendarId": USER, "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"}
    requests.post(url, json=block, timeout=10).raise_for_status()
    assert _busy(calendar, "primary") == [{"start": block["start"], "end": block["end"]}]
    refused = requests.post(url, json={**block, "calendarId": "primary"}, timeout=10)
    assert refused.status_code == 400  # no acting user there to say whose primary


# ---- limits count the new calls ----------------------------------------------------------------


def test_calendar_counts_a_delete_as_a_request(calendar: Any, limits: Limits, state: Any) -> None:
    events = calendar.events()
    events.insert(calendarId=USER, body=_event("limit0001")).execute()
    limits({"calendar": {"requests": 2, "perSeconds": 2}})
    events.delete(calendarId=USER, eventId="limit0001", sendUpdates="all").execute()
    events.get(calendarId=USER, eventId="limit0001").execute()
    body = _refused(events.delete(calendarId=USER, eventId="limit0001"), 403, "rateLimitExceeded")
    assert body["errors"][0] == {
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
        "message": "Rate Limit Exceeded",
    }
    assert state()["throttled"] == {"calendar.events.delete": 1}


def test_drive_counts_an_update_as_a_write(drive: Any, limits: Limits, state: Any) -> None:
    made = drive.files().create(body={"name": "Acme"}).execute()
    limits({"drive": {"writes": 1, "perSeconds": 2}})
    drive.files().get(fileId=made["id"]).execute()  # a read is no write
    drive.files().update(fileId=made["id"], body={"name": "Acme 2"}).execute()
    trash = drive.files().update(fileId=made["id"], body={"trashed": True})
    with pytest.raises(HttpError) as err:
        trash.execute()
    assert err.value.status_code == 403
    assert json.loads(err.value.content)["error"]["errors"][0] == {
        "domain": "usageLimits",
        "reason": "userRateLimitExceeded",
        "message": "User Rate Limit Exceeded",
    }
    assert state()["throttled"] == {"drive.files.update": 1}
    assert state()["folders"][0]["trashed"] is False  # a refused call changes nothing


def test_gmail_charges_ten_units_for_drafts_delete(gmail: Any, limits: Limits) -> None:
    drafts = gmail.users().drafts()
    made = drafts.create(userId="me", body={"message": {"raw": _raw("<u@x>")}}).execute()
    limits({"gmail": {"units": 15, "perSeconds": 3}})
    drafts.delete(userId="me", id=made["id"]).execute()  # 10
    drafts.list(userId="me").execute()  # 15
    with pytest.raises(HttpError) as err:  # at 5 units a delete would have left room
        drafts.list(userId="me").execute()
    assert err.value.status_code == 429
