"""Drive v3 through the real googleapiclient: folders, appProperties queries, 404 parents."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

FOLDER = "application/vnd.google-apps.folder"


def _q_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_folder_create_and_find_by_app_properties(drive: Any, state: Any) -> None:
    tricky = "O'Brien \\ Co"
    parent = drive.files().create(body={"name": "Leads", "mimeType": FOLDER}).execute()
    assert set(parent) == {"kind", "id", "name", "mimeType"}  # Drive's default fields
    folder = (
        drive.files()
        .create(
            body={
                "name": "Acme — Ana Silva",
                "mimeType": FOLDER,
                "parents": [parent["id"]],
                "appProperties": {"leadKey": tricky},
            },
            fields="id, name, mimeType, parents, appProperties, webViewLink",
        )
        .execute()
    )
    assert folder["parents"] == [parent["id"]]
    assert folder["webViewLink"] == f"https://drive.google.com/drive/folders/{folder['id']}"
    drive.files().create(
        body={"name": "Other", "mimeType": FOLDER, "appProperties": {"leadKey": "O"}}
    ).execute()
    q = (
        f"appProperties has {{ key='leadKey' and value={_q_string(tricky)} }} "
        f"and mimeType = '{FOLDER}' and trashed = false and {_q_string(parent['id'])} in parents"
    )
    listed = drive.files().list(q=q, fields="files(id, name, appProperties)").execute()
    assert listed == {
        "files": [
            {"id": folder["id"], "name": "Acme — Ana Silva", "appProperties": {"leadKey": tricky}}
        ]
    }
    by_name = drive.files().list(q="name = 'Other' or name = 'Leads'").execute()
    assert sorted(f["name"] for f in by_name["files"]) == ["Leads", "Other"]
    got = drive.files().get(fileId=folder["id"], fields="id,appProperties").execute()
    assert got == {"id": folder["id"], "appProperties": {"leadKey": tricky}}
    names = sorted(f["name"] for f in state()["folders"])
    assert names == ["Acme — Ana Silva", "Leads", "Other"]


def test_unknown_parent_is_404(drive: Any, state: Any) -> None:
    with pytest.raises(HttpError) as err:
        drive.files().create(body={"name": "x", "mimeType": FOLDER, "parents": ["nope"]}).execute()
    assert err.value.status_code == 404
    assert "File not found: nope." in str(err.value)
    assert state()["folders"] == []
    with pytest.raises(HttpError) as err:
        drive.files().get(fileId="nope").execute()
    assert err.value.status_code == 404


def test_bad_query_is_400(drive: Any) -> None:
    for q in ("name = 'unterminated", "bogusField = 'x'", "appProperties has { key='k' }"):
        with pytest.raises(HttpError) as err:
            drive.files().list(q=q).execute()
        assert err.value.status_code == 400, q
