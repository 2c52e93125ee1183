"""Create the lead's Drive folder with an id recorded first, so a retry finds it by that id."""

from __future__ import annotations

from typing import Any

from googleapiclient.errors import HttpError

from common import keys
from common.errors import PermanentError
from common.handlers.delivery import Outcome, Work
from common.ports import Drive
from common.receipts import Ending, Status


def folder_name(work: Work) -> str:
    """`Ana Silva (Acme)`: the lead's name and company, else its id."""
    lead = work.lead
    name = lead.name or lead.leadDocId
    return f"{name} ({lead.company})" if lead.company else name


def drive(work: Work) -> Outcome:
    """The folder effect (in a dry run, what would be made)."""
    name = folder_name(work)
    parent = work.settings.drive.parentFolderId
    folders = work.tools.drive
    if folders is None:
        return Outcome(
            Ending(Status.SIMULATED, "created", external={"name": name, "parentFolderId": parent})
        )
    owner = work.settings.host.senderEmail
    d = work.delivery
    tag = keys.folder_tag(d.run_id, d.lead_doc_id)
    folder_id = work.claim.receipt.checkpoint.get("folderId")
    folder = folders.get_folder(owner, folder_id) if folder_id else None
    if folder is None:
        if folder_id is None:
            # Reserved and recorded before the create: a retry finds the folder by this id.
            folder_id = folders.reserve_id(owner)
            work.receipts.checkpoint(d.run_id, d.lead_doc_id, "drive", {"folderId": folder_id})
        # After the checkpoint: Drive counts writes a second, and a commit's latency would move
        # the create (a few tens of milliseconds early is a refusal in a full window).
        work.turn()
        folder = _create(folders, owner, name, parent, tag, folder_id)
    external = {
        "folderId": folder.get("id"),
        "webViewLink": folder.get("webViewLink"),
        "name": name,
    }
    return Outcome(Ending(Status.DONE, "created", external=external))


def _create(
    folders: Drive, owner: str, name: str, parent: str | None, tag: str, folder_id: str
) -> dict[str, Any]:
    """Create the folder; a 409 means an earlier try made it: read that one."""
    try:
        return folders.create_folder(owner, name, parent, tag, folder_id)
    except HttpError as error:
        if int(error.resp.status) != 409:
            raise
        found = folders.get_folder(owner, folder_id)
        if found is None:
            raise PermanentError(
                "folder_gone", "this lead's folder was deleted from Drive"
            ) from error
        return found
