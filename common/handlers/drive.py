"""Create the lead's Drive folder, tagged so a retry finds it instead of making a second one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common import keys
from common.google_apis import DriveFolders
from common.handlers.delivery import Work, terminal


def folder_name(work: Work) -> str:
    """`Ana Silva (Acme)`: the lead's name and company, else its id."""
    lead = work.lead
    name = lead.name or lead.leadDocId
    return f"{name} ({lead.company})" if lead.company else name


def drive_effect(
    drive_for: Callable[[bool], DriveFolders | None],
) -> Callable[[Work], dict[str, Any]]:
    """The folder effect, given how to get Drive for a run's mode (None in a dry run)."""

    def effect(work: Work) -> dict[str, Any]:
        name = folder_name(work)
        parent = work.settings.drive.parentFolderId
        drive = drive_for(work.dry_run)
        if drive is None:
            return terminal(
                "simulated", "created", external={"name": name, "parentFolderId": parent}
            )
        owner = work.settings.host.senderEmail
        tag = keys.folder_tag(work.delivery.run_id, work.delivery.lead_doc_id)
        # Only a retry looks first: a first attempt that succeeds costs one call.
        folder = drive.find_folder(owner, tag) if work.resumed else None
        if folder is None:
            folder = drive.create_folder(owner, name, parent, tag)
        return terminal(
            "done",
            "created",
            external={
                "folderId": folder.get("id"),
                "webViewLink": folder.get("webViewLink"),
                "name": name,
            },
        )

    return effect
