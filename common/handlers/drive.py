"""Create the lead's Drive folder, tagged so a retry finds it instead of making a second one."""

from __future__ import annotations

from common import keys
from common.handlers.delivery import Outcome, Work, terminal


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
            terminal("simulated", "created", external={"name": name, "parentFolderId": parent})
        )
    owner = work.settings.host.senderEmail
    tag = keys.folder_tag(work.delivery.run_id, work.delivery.lead_doc_id)
    # Only a retry looks first: a first attempt that succeeds costs one call.
    folder = folders.find_folder(owner, tag) if work.resumed else None
    if folder is None:
        folder = folders.create_folder(owner, name, parent, tag)
    external = {
        "folderId": folder.get("id"),
        "webViewLink": folder.get("webViewLink"),
        "name": name,
    }
    return Outcome(terminal("done", "created", external=external))
