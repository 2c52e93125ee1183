"""Gmail v1 through the real googleapiclient: send, drafts, ``q`` search, errors."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError

from tests.sandbox import AUTH


def _raw(to: str | None, message_id: str, subject: str = "Our call", body: str = "Hi Ana") -> str:
    msg = EmailMessage()
    if to is not None:
        msg["To"] = to
    msg["From"] = "Hana Host <host@example.com>"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


def test_send_then_find_by_rfc822msgid(gmail: Any, state: Any) -> None:
    sent = (
        gmail.users()
        .messages()
        .send(userId="me", body={"raw": _raw("Ana <ana@acme.test>", "<m1.lead@leadrun>")})
        .execute()
    )
    assert sent["labelIds"] == ["SENT"]
    for q in ("rfc822msgid:<m1.lead@leadrun>", "rfc822msgid:m1.lead@leadrun in:sent"):
        found = gmail.users().messages().list(userId="me", q=q).execute()
        assert found["messages"] == [{"id": sent["id"], "threadId": sent["threadId"]}]
        assert found["resultSizeEstimate"] == 1
    none = gmail.users().messages().list(userId="me", q="rfc822msgid:<other@leadrun>").execute()
    assert "messages" not in none
    assert none["resultSizeEstimate"] == 0
    to = gmail.users().messages().list(userId="me", q="to:ana@acme.test in:sent").execute()
    assert len(to["messages"]) == 1
    assert "messages" not in gmail.users().messages().list(userId="me", q="to:bob@x.test").execute()
    stored = state()["messages"]
    assert [m["id"] for m in stored] == [sent["id"]]
    assert b"Message-ID: <m1.lead@leadrun>" in base64.urlsafe_b64decode(stored[0]["raw"] + "==")
    raw = gmail.users().messages().get(userId="me", id=sent["id"], format="raw").execute()
    assert raw["raw"] == stored[0]["raw"]
    full = gmail.users().messages().get(userId="me", id=sent["id"]).execute()
    headers = {h["name"]: h["value"] for h in full["payload"]["headers"]}
    assert headers["Subject"] == "Our call"
    assert headers["To"] == "Ana <ana@acme.test>"


def test_send_without_valid_to_is_400(gmail: Any, state: Any) -> None:
    for to in (None, "not-an-address"):
        with pytest.raises(HttpError) as err:
            gmail.users().messages().send(userId="me", body={"raw": _raw(to, "<x@y>")}).execute()
        assert err.value.status_code == 400
        assert "Invalid To header" in str(err.value)
    assert state()["messages"] == []


def test_draft_create_send_then_gone(gmail: Any, state: Any) -> None:
    raw = _raw("ana@acme.test", "<d1.lead@leadrun>", subject="Availability?")
    draft = gmail.users().drafts().create(userId="me", body={"message": {"raw": raw}}).execute()
    assert draft["message"]["labelIds"] == ["DRAFT"]
    snapshot = state()
    assert [d["id"] for d in snapshot["drafts"]] == [draft["id"]]
    assert snapshot["drafts"][0]["message"]["raw"]
    assert snapshot["messages"] == []
    listed = gmail.users().drafts().list(userId="me", q="rfc822msgid:d1.lead@leadrun").execute()
    assert [d["id"] for d in listed["drafts"]] == [draft["id"]]
    in_drafts = gmail.users().messages().list(userId="me", q="in:drafts").execute()
    assert [m["id"] for m in in_drafts["messages"]] == [draft["message"]["id"]]
    got = gmail.users().drafts().get(userId="me", id=draft["id"]).execute()
    assert got["message"]["id"] == draft["message"]["id"]

    sent = gmail.users().drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert sent["labelIds"] == ["SENT"]
    snapshot = state()
    assert snapshot["drafts"] == []
    assert [m["id"] for m in snapshot["messages"]] == [sent["id"]]
    found = gmail.users().messages().list(userId="me", q="rfc822msgid:<d1.lead@leadrun>").execute()
    assert found["messages"] == [{"id": sent["id"], "threadId": sent["threadId"]}]
    assert "drafts" not in gmail.users().drafts().list(userId="me").execute()
    with pytest.raises(HttpError) as err:
        gmail.users().drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert err.value.status_code == 404
    with pytest.raises(HttpError) as err:
        gmail.users().drafts().get(userId="me", id=draft["id"]).execute()
    assert err.value.status_code == 404


def test_draft_send_with_bad_to_keeps_the_draft(gmail: Any, state: Any) -> None:
    raw = _raw("nobody", "<d2@leadrun>")
    draft = gmail.users().drafts().create(userId="me", body={"message": {"raw": raw}}).execute()
    with pytest.raises(HttpError) as err:
        gmail.users().drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert err.value.status_code == 400
    assert [d["id"] for d in state()["drafts"]] == [draft["id"]]
    assert state()["messages"] == []


def test_media_upload_path_send(gmail: Any, sandbox_url: str) -> None:
    # googleapiclient sends media uploads to the discovery rootUrl even with api_endpoint set,
    # so adapters must use body={"raw": ...}; the /upload path still works over plain HTTP.
    raw = base64.urlsafe_b64decode(_raw("ana@acme.test", "<up1@leadrun>"))
    answer = requests.post(
        f"{sandbox_url}/upload/gmail/v1/users/me/messages/send?uploadType=media",
        data=raw,
        headers={"Content-Type": "message/rfc822", **AUTH},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    sent = answer.json()
    assert sent["labelIds"] == ["SENT"]
    found = gmail.users().messages().list(userId="me", q="rfc822msgid:up1@leadrun").execute()
    assert found["messages"][0]["id"] == sent["id"]


def test_unknown_message_field_is_400(gmail: Any) -> None:
    with pytest.raises(HttpError) as err:
        gmail.users().messages().send(userId="me", body={"raw": "eA", "rawr": "x"}).execute()
    assert err.value.status_code == 400
    assert "rawr" in str(err.value)
