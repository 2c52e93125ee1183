"""Models at the edges: the schedule request and Pub/Sub messages (docs/api.md, "Schedule",
"Topics")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from common.mime import ENCODED_WORD

Action = Literal["calendar", "email", "drive"]
ACTIONS: tuple[Action, ...] = ("calendar", "email", "drive")

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
MAX_BODY_BYTES = 50_000


def not_reserved(value: str) -> str:
    """Refuse Firestore's reserved `__name__` form (as an id or a map key)."""
    # Firestore refuses document ids of the form __x__ ("reserved"): refuse them here, as a 400,
    # rather than as a failed write after validation.
    if len(value) >= 4 and value.startswith("__") and value.endswith("__"):
        raise ValueError("ids of the form __name__ are reserved")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(not_reserved)]

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators never belong in
# a name, a subject or a title: they are how a header gets smuggled into a message.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A body may hold line breaks and tabs, nothing else below 0x20.
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Not IANA zones anyone means: the machine's own zone, and tzdata's placeholder.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, CR, LF, tab, ...)")
    if ENCODED_WORD.search(value):
        # Decoded by every mail parser, an encoded-word could carry the CR/LF refused above.
        raise ValueError("must not contain an RFC 2047 encoded-word (=?...?=)")
    return value


def _body_text(value: str) -> str:
    if _BODY_CONTROL.search(value):
        raise ValueError("must not contain NUL or control characters other than line breaks")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise ValueError(f"must be at most {MAX_BODY_BYTES} bytes of UTF-8")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


def _iana_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


def _hhmm(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError("must be HH:MM (24-hour)")
    return value


Line = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_control)]
Subject = Annotated[str, StringConstraints(max_length=250), AfterValidator(_no_control)]
Body = Annotated[str, StringConstraints(max_length=MAX_BODY_BYTES), AfterValidator(_body_text)]
Zone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iana_zone)]
HHMM = Annotated[str, AfterValidator(_hhmm)]
# A lead's address is checked per lead (a bad one rejects that lead only): here only bounded.
LeadEmail = Annotated[str, StringConstraints(max_length=320)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Slot(_Strict):
    """A candidate meeting time offered by the lead engine."""

    start: AwareDatetime
    end: AwareDatetime


class Host(_Strict):
    """Whose calendar, mailbox and drive the actions use."""

    calendarId: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    senderEmail: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    timeZone: Zone
    name: Line = ""

    @field_validator("calendarId", "senderEmail")
    @classmethod
    def _plain(cls, value: str) -> str:
        return _no_control(value)

    @field_validator("calendarId")
    @classmethod
    def _calendar(cls, value: str) -> str:
        # `primary`, or an address-shaped id (a user's, or x@group.calendar.google.com).
        if value != "primary" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("must be 'primary' or a calendar address like host@example.com")
        return value

    @field_validator("senderEmail")
    @classmethod
    def _address(cls, value: str) -> str:
        return valid_email(value)


class Meeting(_Strict):
    """What gets booked."""

    title: Subject
    description: Body = ""
    durationMinutes: int = Field(ge=5, le=480)
    # Optional: the defaults keep requests without them as they were.
    bufferBeforeMinutes: int = Field(default=0, ge=0, le=120)
    bufferAfterMinutes: int = Field(default=0, ge=0, le=120)
    minNoticeMinutes: int = Field(default=15, ge=0, le=10_080)


class Fallback(_Strict):
    """How to widen the search when no candidate is free."""

    expandDays: int = Field(default=5, ge=0, le=14)
    workdayStart: HHMM = "09:00"
    workdayEnd: HHMM = "17:00"
    draftIfNoSlot: bool = True

    @model_validator(mode="after")
    def _start_before_end(self) -> Fallback:
        if self.workdayStart >= self.workdayEnd:
            raise FieldProblem(("workdayEnd",), "workdayEnd must be after workdayStart")
        return self

    def workday(self) -> tuple[time, time]:
        """The workday bounds as times."""
        return time.fromisoformat(self.workdayStart), time.fromisoformat(self.workdayEnd)


class DriveSettings(_Strict):
    """Where folders go."""

    parentFolderId: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None


class Lead(_Strict):
    """One lead as the lead engine sends it."""

    leadDocId: Id
    email: LeadEmail | None = None
    name: Line = ""
    company: Line | None = None
    timeZone: Zone | None = None
    candidateSlots: list[Slot] = Field(default_factory=list, max_length=50)
    emailSubject: Subject = ""
    emailBody: Body = ""


class RunSettings(_Strict):
    """The part of a schedule request shared by all its leads."""

    host: Host
    meeting: Meeting
    fallback: Fallback = Fallback()
    drive: DriveSettings = DriveSettings()
    actions: list[Action] = Field(default_factory=lambda: list(ACTIONS), min_length=1, max_length=3)

    @field_validator("actions")
    @classmethod
    def _unique(cls, value: list[Action]) -> list[Action]:
        if len(set(value)) != len(value):
            raise ValueError("actions must not repeat")
        return value


class ScheduleRequest(RunSettings):
    """`POST {SCHEDULE_URL}`: a run's settings and 1..500 leads."""

    runId: Id
    dryRun: bool = False
    leads: list[Lead] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique_leads(self) -> ScheduleRequest:
        seen: set[str] = set()
        for index, lead in enumerate(self.leads):
            if lead.leadDocId in seen:
                raise DuplicateLeadId(index)
            seen.add(lead.leadDocId)
        return self

    def settings(self) -> RunSettings:
        """The shared part, stored with each lead so a replay needs nothing else."""
        return RunSettings(
            host=self.host,
            meeting=self.meeting,
            fallback=self.fallback,
            drive=self.drive,
            actions=self.actions,
        )


class FieldProblem(ValueError):
    """A model-level check that is about one field: `path` is relative to the model checked."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class DuplicateLeadId(FieldProblem):
    """Two leads of one request share an id."""

    def __init__(self, index: int) -> None:
        super().__init__(
            ("leads", index, "leadDocId"), "leadDocId repeats an earlier lead of this request"
        )
        self.index = index


def field_path(loc: tuple[str | int, ...]) -> str:
    """`("leads", 3, "timeZone")` as `leads[3].timeZone`."""
    path = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself" of a dict entry
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


class FieldError(BaseModel):
    """One problem of a rejected request, with the field it is about."""

    field: str
    message: str


def field_errors(error: ValidationError) -> list[FieldError]:
    """Turn a pydantic error into `leads[3].timeZone`-style field paths."""
    details: list[FieldError] = []
    for item in error.errors(include_url=False):
        ctx = item.get("ctx") or {}
        inner = ctx.get("error")
        loc = tuple(item["loc"])
        message = str(item["msg"])
        if isinstance(inner, FieldProblem):
            loc, message = loc + inner.path, str(inner)
        details.append(FieldError(field=field_path(loc) or "body", message=message))
    return details


@lru_cache(maxsize=8192)
def valid_email(value: str) -> str:
    """A syntactically valid address (no DNS check; the RFC 2606 `.test` domain is allowed).

    Pure, and costly next to the rest of planning a request's intake, which intake plans twice when
    it paces (once to count what to reserve): remembered per address."""
    from email_validator import EmailNotValidError, validate_email

    if ENCODED_WORD.search(value):
        raise ValueError("invalid email address: it holds an RFC 2047 encoded-word (=?...?=)")
    try:
        return validate_email(value, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address: {exc}") from exc


class LeadMessage(BaseModel):
    """The data of every lead action message (attributes carry the same ids)."""

    model_config = ConfigDict(extra="ignore")

    runId: Id
    leadDocId: Id
    action: Action
    booking: dict[str, Any] | None = None


Status = Literal["pending", "done", "simulated", "rejected", "failed"]
TERMINAL: frozenset[str] = frozenset({"done", "simulated", "rejected", "failed"})


def zone(name: str | None, fallback: str) -> ZoneInfo:
    """The zone called `name`, else `fallback` (both already validated)."""
    return ZoneInfo(name or fallback)


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as stored in receipts."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a Z: how `waiting.until` and `startAt` are stored,
    so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
