"""Google's per-user limits (docs/api.md, "Sandbox limits") through the real googleapiclient.

Windows are 1–3 s so each test stays within a few seconds; every figure is per acting user.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.sandbox.conftest import Clients

HOST = "host@example.com"
BOB = "bob@example.com"
FOLDER = "application/vnd.google-apps.folder"
MEET = {"createRequest": {"requestId": "req-1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
RETRY_AFTER = re.compile(r"^User-rate limit exceeded\.  Retry after (\S+)$")

Limits = Callable[[dict[str, Any]], None]


def _raw(message_id: str, to: str = "ana@acme.test") -> str:
    msg = EmailMessage()
    msg["To"] = to
    msg["From"] = f"Hana Host <{HOST}>"
    msg["Subject"] = "Our call"
    msg["Message-ID"] = message_id
    msg.set_content("Hi Ana")
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


def _event(event_id: str, *attendees: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "start": {"dateTime": "2026-12-01T15:00:00Z"},
        "end": {"dateTime": "2026-12-01T15:30:00Z"},
        "attendees": [{"email": a} for a in attendees],
    }


def _error(err: HttpError) -> dict[str, Any]:
    return dict(json.loads(err.content)["error"])


def _retry_after(err: HttpError) -> datetime:
    """The Retry-after time of a Gmail 429, checked against Google's shape."""
    body = _error(err)
    assert err.status_code == 429
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["errors"][0]["reason"] == "rateLimitExceeded"
    assert body["errors"][0]["domain"] == "usageLimits"
    assert body["errors"][0]["message"] == body["message"]
    match = RETRY_AFTER.match(body["message"])
    assert match, body["message"]
    assert match.group(1).endswith("Z")
    return datetime.fromisoformat(match.group(1))


def _list(gmail: Any) -> dict[str, Any]:
    return dict(gmail.users().messages().list(userId="me").execute())


def test_gmail_units_window_answers_429_with_a_retry_after_that_works(
    gmail: Any, limits: Limits, state: Any
) -> None:
    limits({"gmail": {"units": 15, "perSeconds": 2}})  # three lists (5 units each) a window
    first = time.time()
    _list(gmail)
    time.sleep(0.5)
    _list(gmail)
    _list(gmail)
    asked = time.time()
    with pytest.raises(HttpError) as err:
        _list(gmail)
    retry_at = _retry_after(err.value).timestamp()
    assert asked < retry_at <= first + 2.05  # when the first list slides out, not a window later
    with pytest.raises(HttpError):  # refused calls consume nothing, and do not help either
        _list(gmail)
    time.sleep(max(0.0, retry_at - time.time()) + 0.05)
    _list(gmail)
    snapshot = state()
    assert snapshot["calls"] == {"gmail.users.messages.list": 6}
    assert snapshot["throttled"] == {"gmail.users.messages.list": 2}


def test_gmail_units_are_googles_per_method(gmail: Any, limits: Limits) -> None:
    limits({"gmail": {"units": 115, "perSeconds": 3}})
    gmail.users().drafts().create(userId="me", body={"message": {"raw": _raw("<u1@x>")}}).execute()
    gmail.users().messages().send(userId="me", body={"raw": _raw("<u2@x>")}).execute()  # 110
    _list(gmail)  # 115
    with pytest.raises(HttpError) as err:
        _list(gmail)
    _retry_after(err.value)


def test_gmail_concurrency_refuses_calls_beyond_in_flight(
    client: Clients, limits: Limits, sandbox_url: str
) -> None:
    limits({"gmail": {"concurrent": 2}})
    requests.post(f"{sandbox_url}/_sandbox/latency", json={"ms": 800}, timeout=10)
    clients = [client("gmail") for _ in range(4)]  # httplib2 is not thread-safe: one each
    start = threading.Barrier(4)
    codes: list[int] = []

    def call(gmail: Any) -> None:
        start.wait()
        try:
            _list(gmail)
            codes.append(200)
        except HttpError as exc:
            _retry_after(exc)
            codes.append(exc.status_code)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(codes) == [200, 200, 429, 429]
    requests.post(f"{sandbox_url}/_sandbox/latency", json={"ms": 0}, timeout=10)
    _list(clients[0])  # the slots were released
    _list(client("gmail", user=BOB))


def test_gmail_daily_sends_cap_and_a_failed_send_costs_no_send(
    gmail: Any, limits: Limits, state: Any
) -> None:
    limits({"gmail": {"sends": 2, "sendsPerSeconds": 2}})
    messages = gmail.users().messages()
    with pytest.raises(HttpError) as bad:  # no valid recipient: nothing sent, nothing counted
        messages.send(userId="me", body={"raw": _raw("<s0@x>", to="nobody")}).execute()
    assert bad.value.status_code == 400
    first = time.time()
    messages.send(userId="me", body={"raw": _raw("<s1@x>")}).execute()
    messages.send(userId="me", body={"raw": _raw("<s2@x>")}).execute()
    draft = gmail.users().drafts().create(userId="me", body={"message": {"raw": _raw("<s3@x>")}})
    draft_id = draft.execute()["id"]
    with pytest.raises(HttpError) as err:
        gmail.users().drafts().send(userId="me", body={"id": draft_id}).execute()
    retry_at = _retry_after(err.value).timestamp()
    assert first < retry_at <= first + 2.1
    _list(gmail)  # other calls still work: the cap counts sends
    snapshot = state()
    assert len(snapshot["messages"]) == 2 and len(snapshot["drafts"]) == 1  # the draft stayed
    assert snapshot["throttled"] == {"gmail.users.drafts.send": 1}
    time.sleep(max(0.0, retry_at - time.time()) + 0.05)
    gmail.users().drafts().send(userId="me", body={"id": draft_id}).execute()
    assert len(state()["messages"]) == 3


def test_calendar_request_rate_is_403_rate_limit_exceeded(
    calendar: Any, client: Clients, limits: Limits, state: Any
) -> None:
    limits({"calendar": {"requests": 3, "perSeconds": 1}})
    for _ in range(3):
        calendar.events().list(calendarId=HOST).execute()
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId=HOST, body=_event("rate00001")).execute()
    body = _error(err.value)
    assert err.value.status_code == 403
    assert body["errors"][0] == {
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
        "message": "Rate Limit Exceeded",
    }
    assert state()["events"] == []
    client("calendar", user=BOB).events().list(calendarId=BOB).execute()  # Bob has his own
    time.sleep(1.05)
    calendar.events().insert(calendarId=HOST, body=_event("rate00001")).execute()
    assert state()["throttled"] == {"calendar.events.insert": 1}


def test_external_invites_past_the_cap_lock_every_insert_out(
    calendar: Any, limits: Limits, state: Any
) -> None:
    limits(
        {
            "calendar": {
                "externalInvites": 5,
                "invitesPerSeconds": 60,
                "lockoutSeconds": 1.5,
            }
        }
    )
    events = calendar.events()
    for i in range(5):  # one external guest each; colleagues in the host's domain do not count
        body = _event(f"invite{i:04d}", f"lead{i}@acme.test", "colleague@example.com")
        events.insert(calendarId=HOST, body=body, sendUpdates="all").execute()
    with pytest.raises(HttpError) as err:
        events.insert(calendarId=HOST, body=_event("invite0005", "lead5@acme.test")).execute()
    assert err.value.status_code == 403
    assert _error(err.value)["errors"][0] == {
        "domain": "usageLimits",
        "reason": "quotaExceeded",
        "message": "Calendar usage limits exceeded.",
    }
    locked_at = time.time()
    with pytest.raises(HttpError) as err:  # during the lockout even an internal insert fails
        events.insert(calendarId=HOST, body=_event("internal01", "colleague@example.com")).execute()
    assert _error(err.value)["errors"][0]["reason"] == "quotaExceeded"
    assert len(events.list(calendarId=HOST).execute()["items"]) == 5  # reads still work
    events.get(calendarId=HOST, eventId="invite0000").execute()
    time.sleep(max(0.0, locked_at + 1.5 - time.time()) + 0.05)
    events.insert(calendarId=HOST, body=_event("internal01", "colleague@example.com")).execute()
    with pytest.raises(HttpError) as err:  # the 5 invites are still in the window
        events.insert(calendarId=HOST, body=_event("invite0006", "lead6@acme.test")).execute()
    assert _error(err.value)["errors"][0]["reason"] == "quotaExceeded"
    snapshot = state()
    assert [e["id"] for e in snapshot["events"]] == [
        *(f"invite{i:04d}" for i in range(5)),
        "internal01",
    ]
    assert {e["user"] for e in snapshot["events"]} == {HOST}
    assert snapshot["throttled"] == {"calendar.events.insert": 3}


def test_drive_writes_are_403_user_rate_limit_exceeded(
    drive: Any, limits: Limits, state: Any
) -> None:
    limits({"drive": {"writes": 3, "perSeconds": 1}})
    files = drive.files()
    first = time.time()
    for i in range(3):
        files.create(body={"name": f"f{i}", "mimeType": FOLDER}).execute()
    with pytest.raises(HttpError) as err:
        files.create(body={"name": "f3", "mimeType": FOLDER}).execute()
    assert err.value.status_code == 403
    assert _error(err.value)["errors"][0] == {
        "domain": "usageLimits",
        "reason": "userRateLimitExceeded",
        "message": "User Rate Limit Exceeded",
    }
    assert len(files.list().execute()["files"]) == 3  # reads are not writes
    assert len(files.generateIds(count=2).execute()["ids"]) == 2  # nor is generateIds
    time.sleep(max(0.0, first + 1.0 - time.time()) + 0.05)
    files.create(body={"name": "f3", "mimeType": FOLDER}).execute()
    snapshot = state()
    assert len(snapshot["folders"]) == 4
    assert snapshot["throttled"] == {"drive.files.create": 1}


def _meet_event(calendar: Any, event_id: str) -> dict[str, Any]:
    body = {**_event(event_id), "conferenceData": MEET}
    return dict(
        calendar.events().insert(calendarId=HOST, body=body, conferenceDataVersion=1).execute()
    )


def test_meet_stays_pending_then_succeeds(calendar: Any, limits: Limits, state: Any) -> None:
    limits({"meetPendingSeconds": 1})
    made = _meet_event(calendar, "meet00001")
    assert made["conferenceData"]["createRequest"]["status"] == {"statusCode": "pending"}
    assert "hangoutLink" not in made and "entryPoints" not in made["conferenceData"]
    early = calendar.events().get(calendarId=HOST, eventId="meet00001").execute()
    assert early["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending"
    assert "hangoutLink" not in early and "hangoutLink" not in state()["events"][0]
    time.sleep(1.05)
    late = calendar.events().get(calendarId=HOST, eventId="meet00001").execute()
    assert late["conferenceData"]["createRequest"]["status"]["statusCode"] == "success"
    assert late["hangoutLink"].startswith("https://meet.google.com/")
    assert late["conferenceData"]["entryPoints"][0]["uri"] == late["hangoutLink"]
    listed = calendar.events().list(calendarId=HOST).execute()["items"]
    assert listed[0]["hangoutLink"] == late["hangoutLink"]
    assert state()["events"][0]["hangoutLink"] == late["hangoutLink"]


def test_meet_fails_when_asked(calendar: Any, limits: Limits) -> None:
    limits({"meetFails": True})
    at_once = _meet_event(calendar, "fail00001")
    assert at_once["conferenceData"]["createRequest"]["status"] == {"statusCode": "failure"}
    assert "hangoutLink" not in at_once
    limits({"meetFails": True, "meetPendingSeconds": 0.5})
    pending = _meet_event(calendar, "fail00002")
    assert pending["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending"
    time.sleep(0.55)
    settled = calendar.events().get(calendarId=HOST, eventId="fail00002").execute()
    assert settled["conferenceData"]["createRequest"]["status"]["statusCode"] == "failure"
    assert "hangoutLink" not in settled and "entryPoints" not in settled["conferenceData"]


def test_gmail_search_lags_while_get_by_id_sees_at_once(gmail: Any, limits: Limits) -> None:
    limits({"searchLagSeconds": 1})
    sent = gmail.users().messages().send(userId="me", body={"raw": _raw("<lag1@x>")}).execute()
    draft = (
        gmail.users().drafts().create(userId="me", body={"message": {"raw": _raw("<lag2@x>")}})
    ).execute()
    made = time.time()
    messages, drafts = gmail.users().messages(), gmail.users().drafts()
    assert "messages" not in messages.list(userId="me", q="rfc822msgid:lag1@x").execute()
    assert "drafts" not in drafts.list(userId="me", q="rfc822msgid:lag2@x").execute()
    assert messages.get(userId="me", id=sent["id"], format="minimal").execute()["id"] == sent["id"]
    assert drafts.get(userId="me", id=draft["id"]).execute()["id"] == draft["id"]
    time.sleep(max(0.0, made + 1.0 - time.time()) + 0.05)
    found = messages.list(userId="me", q="rfc822msgid:lag1@x").execute()["messages"]
    assert [m["id"] for m in found] == [sent["id"]]
    listed = drafts.list(userId="me", q="rfc822msgid:lag2@x").execute()["drafts"]
    assert [d["id"] for d in listed] == [draft["id"]]


def test_drive_search_lags_while_get_by_id_sees_at_once(drive: Any, limits: Limits) -> None:
    limits({"searchLagSeconds": 1})
    q = "appProperties has { key='leadKey' and value='k1' }"
    body = {"name": "Acme", "mimeType": FOLDER, "appProperties": {"leadKey": "k1"}}
    made = drive.files().create(body=body).execute()
    created = time.time()
    assert drive.files().list(q=q).execute()["files"] == []
    assert drive.files().get(fileId=made["id"]).execute()["id"] == made["id"]
    time.sleep(max(0.0, created + 1.0 - time.time()) + 0.05)
    assert [f["id"] for f in drive.files().list(q=q).execute()["files"]] == [made["id"]]


def test_one_users_throttling_leaves_another_alone(
    client: Clients, limits: Limits, state: Any
) -> None:
    limits({"gmail": {"units": 10, "perSeconds": 3}, "drive": {"writes": 1, "perSeconds": 3}})
    ana_mail, bob_mail = client("gmail"), client("gmail", user=BOB)
    ana_drive, bob_drive = client("drive"), client("drive", user=BOB)
    _list(ana_mail)
    _list(ana_mail)
    ana_drive.files().create(body={"name": "ana's"}).execute()
    with pytest.raises(HttpError):
        _list(ana_mail)
    with pytest.raises(HttpError):
        ana_drive.files().create(body={"name": "ana's too"}).execute()
    _list(bob_mail)
    _list(bob_mail)
    bob_drive.files().create(body={"name": "bob's"}).execute()
    assert state()["throttled"] == {"gmail.users.messages.list": 1, "drive.files.create": 1}


def test_limits_are_validated_and_a_bad_document_changes_nothing(
    sandbox_url: str, gmail: Any, limits: Limits
) -> None:
    url = f"{sandbox_url}/_sandbox/limits"
    good = {"gmail": {"units": 5, "perSeconds": 2}, "searchLagSeconds": 0}
    limits(good)
    bad: list[tuple[Any, str]] = [
        ({"gmail": {"units": "15000"}}, "gmail.units"),
        ({"gmail": {"unit": 15000}}, "gmail.unit"),
        ({"calendar": {"requests": True}}, "calendar.requests"),
        ({"drive": {"writes": -1}}, "drive.writes"),
        ({"drive": {"writes": 3, "perSeconds": 0}}, "drive.perSeconds"),
        ({"sheets": {}}, "sheets"),
        ({"gmail": 15000}, "gmail"),
        ({"meetPendingSeconds": "soon"}, "meetPendingSeconds"),
        ({"meetFails": 1}, "meetFails"),
        ([1, 2], "object"),
    ]
    for document, named in bad:
        answer = requests.post(url, json=document, timeout=10)
        assert answer.status_code == 400, document
        assert named in answer.json()["error"]["message"], answer.text
    assert requests.get(url, timeout=10).json() == good
    _list(gmail)
    with pytest.raises(HttpError):  # still the good limits
        _list(gmail)


def test_delete_and_reset_remove_limits(sandbox_url: str, gmail: Any, limits: Limits) -> None:
    url = f"{sandbox_url}/_sandbox/limits"
    limits({"gmail": {"units": 5, "perSeconds": 60}})
    _list(gmail)
    with pytest.raises(HttpError):
        _list(gmail)
    assert requests.delete(url, timeout=10).status_code == 200
    assert requests.get(url, timeout=10).json() == {}
    for _ in range(5):
        _list(gmail)
    limits({"gmail": {"units": 5, "perSeconds": 60}})
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()
    assert requests.get(url, timeout=10).json() == {}
    for _ in range(5):
        _list(gmail)
