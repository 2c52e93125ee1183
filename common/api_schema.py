"""The HTTP functions' answers as models: what `docs/openapi.json` is generated from.

Requests have their models beside the code that reads them (`common.models.ScheduleRequest`,
`common.handlers.diagnostics.ClientStages`); these are the answers. Error bodies and the funnel
are built through them, so a field cannot change without the spec changing; the schedule
function's 202 is still built as a dict, and the integration tests check it against the spec.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from common.models import ID_PATTERN, FieldError
from common.runs import RunState

# Stored and answered as text (`stamp`), so that text order is time order: never re-serialized.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
ItemId = Annotated[str, Field(pattern=ID_PATTERN)]  # a runId or a leadDocId
HostEmail = str  # a host's `senderEmail`

ErrorCode = Literal[
    "invalid_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "run_mode_conflict",
    "run_cancelled",
    "payload_too_large",
    "internal",
    "unavailable",
]


class _Answer(BaseModel):
    # An answer carries exactly these fields: the spec says so (additionalProperties false).
    model_config = ConfigDict(extra="forbid")


class ApiError(_Answer):
    """What went wrong, as a machine code and a sentence for people."""

    code: ErrorCode
    message: str
    details: list[FieldError] = Field(
        default_factory=list,
        description="The fields at fault (`leads[3].timeZone`); present on 400 and 413.",
    )


class ErrorBody(_Answer):
    """Every answer that is not a success."""

    error: ApiError


def error_body(
    code: ErrorCode, message: str, details: list[dict[str, str]] | None
) -> dict[str, Any]:
    """The JSON of an error answer (`details` left out when None)."""
    if details is None:
        problem = ApiError(code=code, message=message)
    else:
        fields = [FieldError.model_validate(item) for item in details]
        problem = ApiError(code=code, message=message, details=fields)
    # Unset: `details` is left out rather than answered empty when there is none.
    return ErrorBody(error=problem).model_dump(mode="json", exclude_unset=True)


class AcceptedLead(_Answer):
    """A lead taken on: its actions are (or will be) carried out."""

    leadDocId: ItemId


class RejectedLead(_Answer):
    """A lead refused on its own (the rest of the batch goes on), with rejected receipts."""

    leadDocId: ItemId
    reason: str = Field(description="`no_email`, `invalid_email`, `invalid_slots`, ...")


class ScheduleAccepted(_Answer):
    """202 of the schedule function: what became of each lead, and when the run should end."""

    runId: ItemId
    accepted: list[AcceptedLead]
    rejected: list[RejectedLead]
    eta: dict[HostEmail, Timestamp] = Field(
        description="By host: when its accepted leads of this run are expected to be terminal."
    )
    waitingForDailyCap: dict[HostEmail, int] = Field(
        default_factory=dict,
        description="By host: how many leads wait for its next daily sending window "
        "(present only when some do).",
    )


class Counts(BaseModel):
    """A run's funnel: the lead engine's stages, then receipts by outcome and by status."""

    # Counters are summed from whatever the run's counter shards hold: a count added later
    # is answered before the model names it (an integer all the same).
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, int] = Field(init=False)

    sourced: int
    filtered: int
    accepted: int
    rejected: int
    booked: int
    noSlot: int
    sent: int
    drafted: int
    foldersCreated: int
    simulated: int
    pending: int
    waiting: int = Field(description="Pending receipts held back by Google's limits.")
    paused: int = Field(description="Pending receipts their owner paused.")
    failed: int
    cancelled: int
    reverted: int


class Funnel(_Answer):
    """200 of the diagnostics function: the funnel of a run, read from counters."""

    runId: ItemId
    dryRun: bool
    state: RunState = Field(description="`active` unless paused or cancelled.")
    counts: Counts
    reasons: dict[str, int] = Field(description="Leads per reason code among their receipts.")
    waitingUntil: Timestamp | None = Field(
        description="The latest `waiting.until` of the receipts that wait, or null."
    )
    eta: dict[HostEmail, Timestamp]
    filterReasons: dict[str, int]
    updatedAt: Timestamp | None


class RunQuery(BaseModel):
    """`?runId=R`."""

    runId: ItemId


class ActionRef(_Answer):
    """One action of one lead."""

    leadDocId: ItemId
    action: Literal["calendar", "email", "drive"]


class RevertCounts(_Answer):
    """What an `undo` takes back (docs/api.md, "Control")."""

    events: int = Field(description="Booked events deleted; each lead gets Google's cancellation.")
    folders: int = Field(description="Created folders moved to the trash (recoverable 30 days).")
    drafts: int = Field(description="Drafts deleted (availability requests, held confirmations).")


class Unrecallable(_Answer):
    """What an `undo` cannot take back."""

    sent: int = Field(description="Sent emails: their receipts stay `done`/`sent`.")


class ControlAnswer(_Answer):
    """200 of the control function: what the command did."""

    runId: ItemId
    command: Literal["pause", "resume", "cancel", "replay", "undo"]
    state: RunState = Field(description="The run's state after the command.")
    affected: int = Field(
        description="Receipts whose course the command changed (replay: those published; "
        "undo: those cancelled plus those queued for a revert)."
    )
    inFlight: list[ActionRef] = Field(
        description="Affected actions a delivery was working on when the command took hold: "
        "each finishes that delivery (its Google call may already have been made) and makes "
        "no call after it."
    )
    eta: dict[HostEmail, Timestamp]
    # Present on an `undo` answer only (its preview too); left out of every other command's.
    toRevert: RevertCounts | None = Field(
        default=None,
        description="undo only: what it reverts (a preview: what it would revert). "
        "0 each in a dry run.",
    )
    unrecallable: Unrecallable | None = Field(
        default=None,
        description="undo only: what it cannot take back. 0 in a dry run.",
    )


class PublicReceipt(BaseModel):
    """A receipt as a user reads it (docs/api.md, "Receipts")."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["calendar", "email", "drive"]
    status: Literal["pending", "done", "simulated", "rejected", "failed", "cancelled", "reverted"]
    outcome: str | None
    reason: str | None
    dryRun: bool
    attempts: int
    external: dict[str, Any] | None
    error: dict[str, Any] | None
    waiting: dict[str, Any] | None
    revert: dict[str, Any] | None
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None


class LeadEntry(_Answer):
    """One lead of a `/leads` page with its receipts."""

    leadDocId: ItemId
    email: str | None
    name: str | None
    company: str | None
    timeZone: str | None = Field(default=None, description="The lead's IANA time zone, if given.")
    receipts: dict[str, PublicReceipt]


class LeadsPage(_Answer):
    """200 of `GET {DIAGNOSTICS_URL}leads`: one page of a run's leads, in `leadDocId` order."""

    leads: list[LeadEntry]
    nextPageToken: str | None = Field(description="The next page's token; null on the last.")


class LeadsQuery(BaseModel):
    """`?runId=R&pageSize=&pageToken=&status=&waiting=&paused=&reason=`."""

    runId: ItemId
    pageSize: int = Field(default=50, ge=1, le=200)
    pageToken: str | None = None
    status: (
        Literal["pending", "done", "simulated", "rejected", "failed", "cancelled", "reverted"]
        | None
    ) = None
    waiting: Literal["1", "true"] | None = None
    paused: Literal["1", "true"] | None = None
    reason: str | None = None
