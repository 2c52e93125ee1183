"""The acting user: learnt from the request's credentials; each user's mailbox and drive apart."""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage
from typing import Any

import httplib2
import pytest
import requests
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from common.config import settings_from
from common.google_apis import GmailMailer, ServiceCache
from tests.sandbox import USER
from tests.sandbox.conftest import Clients

BOB = "bob@example.com"
FOLDER = "application/vnd.google-apps.folder"


def _raw(message_id: str, sender: str = USER) -> str:
    msg = EmailMessage()
    msg["To"] = "ana@acme.test"
    msg["From"] = sender
    msg["Subject"] = "Our call"
    msg["Message-ID"] = message_id
    msg.set_content("Hi Ana")
    return base64.urlsafe_b64encode(msg.as_bytes()).decode()


def test_a_call_without_credentials_is_401_but_controls_need_none(
    sandbox_url: str, state: Any
) -> None:
    anonymous = build(
        "gmail",
        "v1",
        static_discovery=True,
        http=httplib2.Http(timeout=10),  # no credentials at all
        client_options={"api_endpoint": sandbox_url},
        cache_discovery=False,
    )
    with pytest.raises(HttpError) as err:
        anonymous.users().messages().list(userId="me").execute()
    assert err.value.status_code == 401
    error = json.loads(err.value.content)["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Request is missing required authentication credential.")
    assert error["errors"][0]["reason"] == "required"
    for path in ("/calendars/x@example.com/events", "/files", "/drive/v3/files"):
        assert requests.get(f"{sandbox_url}{path}", timeout=10).status_code == 401
    forged = requests.get(
        f"{sandbox_url}/files", headers={"Authorization": "Bearer ya29.real-looking"}, timeout=10
    )
    assert forged.status_code == 401
    assert forged.json()["error"]["errors"][0]["reason"] == "authError"
    assert requests.get(f"{sandbox_url}/_sandbox/state", timeout=10).status_code == 200
    assert state()["messages"] == []


def test_each_users_mailbox_and_drive_are_their_own(client: Clients, state: Any) -> None:
    ana_mail, bob_mail = client("gmail"), client("gmail", user=BOB)
    sent = ana_mail.users().messages().send(userId="me", body={"raw": _raw("<i1@x>")}).execute()
    draft = (
        bob_mail.users().drafts().create(userId="me", body={"message": {"raw": _raw("<i2@x>")}})
    ).execute()
    bobs = bob_mail.users().messages().list(userId="me").execute()["messages"]
    assert [m["id"] for m in bobs] == [draft["message"]["id"]]  # his draft's message only
    with pytest.raises(HttpError) as err:
        bob_mail.users().messages().get(userId="me", id=sent["id"]).execute()
    assert err.value.status_code == 404
    with pytest.raises(HttpError) as err:
        ana_mail.users().drafts().get(userId="me", id=draft["id"]).execute()
    assert err.value.status_code == 404
    assert "drafts" not in ana_mail.users().drafts().list(userId="me").execute()
    ana_drive, bob_drive = client("drive"), client("drive", user=BOB)
    folder = ana_drive.files().create(body={"name": "Acme", "mimeType": FOLDER}).execute()
    assert bob_drive.files().list().execute()["files"] == []
    with pytest.raises(HttpError) as err:
        bob_drive.files().get(fileId=folder["id"]).execute()
    assert err.value.status_code == 404
    snapshot = state()
    assert [(m["id"], m["user"]) for m in snapshot["messages"]] == [(sent["id"], USER)]
    assert [(d["id"], d["user"]) for d in snapshot["drafts"]] == [(draft["id"], BOB)]
    assert [(f["id"], f["user"]) for f in snapshot["folders"]] == [(folder["id"], USER)]


def test_gmail_user_id_must_be_me_or_the_acting_user(gmail: Any) -> None:
    gmail.users().messages().list(userId=USER.upper()).execute()
    with pytest.raises(HttpError) as err:
        gmail.users().messages().list(userId=BOB).execute()
    assert err.value.status_code == 403
    assert BOB not in str(err.value) and USER in str(err.value)


def test_the_adapters_act_as_the_host_they_name(sandbox_url: str, state: Any) -> None:
    settings = settings_from(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "LEADRUN_GOOGLE_MODE": "sandbox",
            "WORKSPACE_SANDBOX_URL": sandbox_url,
        }
    )
    mailer = GmailMailer(ServiceCache(settings))
    for host in ("hana@example.com", "omar@example.org"):
        draft = mailer.create_draft(host, _raw(f"<{host}@x>", sender=host))
        assert mailer.draft_exists(host, draft["id"])
    hana_draft = state()["drafts"][0]
    assert not mailer.draft_exists("omar@example.org", hana_draft["id"])  # not Omar's mailbox
    assert [d["user"] for d in state()["drafts"]] == ["hana@example.com", "omar@example.org"]
