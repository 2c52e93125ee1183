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


def test_generated_ids_create_once_and_get_by_id(drive: Any, client: Any, state: Any) -> None:
    generated = drive.files().generateIds(count=3, space="drive", type="files").execute()
    assert generated["kind"] == "drive#generatedIds" and generated["space"] == "drive"
    ids = generated["ids"]
    assert len(set(ids)) == 3
    body = {"id": ids[0], "name": "Acme", "mimeType": FOLDER}
    made = drive.files().create(body=body, fields="id,name").execute()
    assert made == {"id": ids[0], "name": "Acme"}
    assert drive.files().get(fileId=ids[0]).execute()["id"] == ids[0]
    with pytest.raises(HttpError) as err:  # a retry of the same create
        drive.files().create(body=body).execute()
    assert err.value.status_code == 409
    with pytest.raises(HttpError) as err:  # an id Drive never handed out
        drive.files().create(body={"id": "1madeUpByTheClient", "name": "x"}).execute()
    assert err.value.status_code == 400
    assert err.value.error_details[0]["reason"] == "fileIdNotUsable"
    other = client("drive", user="bob@example.com")
    with pytest.raises(HttpError) as err:  # handed out to another user
        other.files().create(body={"id": ids[1], "name": "x"}).execute()
    assert err.value.status_code == 400
    assert [f["id"] for f in state()["folders"]] == [ids[0]]
