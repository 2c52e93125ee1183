"""Reading an operator's leads file (CSV or JSON) and run settings into schedule requests.

Everything here is pure: the caller passes `now` (relative slots count from its date in the
host's zone), so the same file always gives the same request on the same day. Problems are
collected, not raised one by one, so an operator sees every bad row (`line N: field: message`)
at once and nothing is sent until the whole file is clean.

Relative slot syntax (so samples never go stale), one slot = `START/END`:

* START: an RFC 3339 datetime with an offset (`2026-12-01T15:00:00Z`), or `+Nd` `HH:MM`:
  N working days (Monday to Friday) after today in the host's time zone, at HH:MM wall-clock
  time there (`+0d` is today itself). Example: `+2d15:00`.
* END: an RFC 3339 datetime, the same relative form (`+3d09:00`), or a duration after START:
  `30m`, `1h`, `1h30m`.

In a CSV cell several slots are separated by `;`: `+2d15:00/30m; +3d10:00/+3d10:45`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from common.models import Lead, RunSettings, ScheduleRequest, field_errors

MAX_LEADS_PER_REQUEST = 500
# Stay well under the schedule endpoint's 1 MiB body limit (docs/api.md, "Schedule": 413 above it).
MAX_REQUEST_BYTES = 900 * 1024

CSV_COLUMNS: tuple[str, ...] = (
    "leadDocId",
    "email",
    "name",
    "company",
    "timeZone",
    "candidateSlots",
    "emailSubject",
    "emailBody",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("leadDocId",)
# Empty cells of these columns mean "not given" (None), not an empty string.
_OPTIONAL_NONE = ("email", "company", "timeZone")
SETTINGS_KEYS: tuple[str, ...] = ("host", "meeting", "fallback", "drive", "actions")
DEFAULT_SETTINGS: dict[str, Any] = {
    "meeting": {"title": "Intro call", "description": "", "durationMinutes": 30},
    "fallback": {
        "expandDays": 5,
        "workdayStart": "09:00",
        "workdayEnd": "17:00",
        "draftIfNoSlot": True,
    },
    "drive": {"parentFolderId": None},
    "actions": ["calendar", "email", "drive"],
}

_RELATIVE = re.compile(r"\+(?P<days>\d{1,2})d(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)")
_DURATION = re.compile(r"(?:(?P<hours>\d{1,3})h)?(?:(?P<minutes>\d{1,4})m)?")


class SlotSyntaxError(ValueError):
    """A candidate slot that is neither RFC 3339 nor the relative syntax."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located by line (CSV), lead index (JSON) or config."""

    where: str  # "line 7", "leads[3]", "config"
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}"


@dataclass
class LeadsFile:
    """A parsed leads file: settings, leads (as JSON-ready dicts) and every problem found."""

    settings: dict[str, Any]
    leads: list[dict[str, Any]]
    locations: list[str]  # where each lead came from ("line 7" / "leads[3]")
    problems: list[Problem] = field(default_factory=list)
    stages: dict[str, Any] | None = None  # optional lead-engine funnel stages to POST
    run_id: str | None = None  # a full request body may name its run
    dry_run: bool | None = None


# -- relative slots ---------------------------------------------------------------------------
def add_working_days(start: date, days: int) -> date:
    """The `days`-th working day (Mon–Fri) after `start`; `start` itself for 0."""
    day = start
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            remaining -= 1
    return day


def _wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`day` at `at` in `zone`, resolved like the slot search does (common.slots): an ambiguous
    time is its first occurrence; a time skipped by DST is the transition, the first instant the
    clock shows that time or later."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap the two folds read the wall time with the offsets on either side of the jump: one
    # instant before it, one after. The jump lies between them.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(zone)


def _parse_point(text: str, today: date, zone: ZoneInfo | None) -> datetime | None:
    """An absolute or relative point in time, or None when `text` is neither."""
    match = _RELATIVE.fullmatch(text)
    if match:
        if zone is None:
            raise SlotSyntaxError(f"{text!r} needs the host's time zone, which is missing")
        day = add_working_days(today, int(match["days"]))
        return _wall_clock(day, time(int(match["hour"]), int(match["minute"])), zone)
    if "T" in text or "t" in text:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if value.tzinfo is None:
            raise SlotSyntaxError(f"{text!r} has no UTC offset (add Z or +hh:mm)")
        return value
    return None


def _parse_duration(text: str) -> timedelta | None:
    match = _DURATION.fullmatch(text)
    if not match or not (match["hours"] or match["minutes"]):
        return None
    return timedelta(hours=int(match["hours"] or 0), minutes=int(match["minutes"] or 0))


def parse_slot(text: str, today: date, zone: ZoneInfo | None) -> dict[str, str]:
    """One `START/END` slot as `{"start", "end"}` RFC 3339 strings (see the module doc)."""
    raw = text.strip()
    start_text, sep, end_text = raw.partition("/")
    if not sep or not start_text.strip() or not end_text.strip():
        raise SlotSyntaxError(f"{raw!r} is not START/END (e.g. +2d15:00/30m)")
    start = _parse_point(start_text.strip(), today, zone)
    if start is None:
        raise SlotSyntaxError(
            f"start {start_text.strip()!r} is neither RFC 3339 nor +Nd HH:MM (e.g. +2d15:00)"
        )
    end_text = end_text.strip()
    duration = _parse_duration(end_text)
    end = start + duration if duration is not None else _parse_point(end_text, today, zone)
    if end is None:
        raise SlotSyntaxError(
            f"end {end_text!r} is not RFC 3339, +Nd HH:MM or a duration (30m, 1h, 1h30m)"
        )
    if end <= start:
        raise SlotSyntaxError(f"{raw!r} ends before it starts")
    return {"start": _rfc3339(start), "end": _rfc3339(end)}


def parse_slots(cell: str, today: date, zone: ZoneInfo | None) -> list[dict[str, str]]:
    """A CSV cell of `;`-separated slots (empty: no candidates)."""
    return [parse_slot(part, today, zone) for part in cell.split(";") if part.strip()]


def _rfc3339(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# -- settings ---------------------------------------------------------------------------------
def merge_settings(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults, then each layer: later layers win; nested objects merge key by key."""
    return copy.deepcopy(_given(DEFAULT_SETTINGS, *layers))


def example_request(run_id: str, host: str, leads: list[dict[str, Any]]) -> dict[str, Any]:
    """A live request with the default settings and `host` as calendar and sender."""
    return {
        "runId": run_id,
        "dryRun": False,
        "host": {
            "calendarId": host,
            "senderEmail": host,
            "timeZone": "America/New_York",
            "name": "Hana Host",
        },
        **merge_settings(),
        "leads": leads,
    }


def settings_problems(settings: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with the run settings, as `config: host.timeZone: ...` problems."""
    if "host" not in settings:
        return [Problem("config", "host", "no host: give --host-email and --host-tz or --config")]
    try:
        RunSettings.model_validate_json(json.dumps(settings))
    except ValidationError as exc:
        return [Problem("config", d.field, d.message) for d in field_errors(exc)]
    return []


def host_zone(settings: Mapping[str, Any]) -> ZoneInfo | None:
    """The host's zone, which relative slots are read in (None when missing or unknown)."""
    name = (settings.get("host") or {}).get("timeZone")
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# -- leads ------------------------------------------------------------------------------------
def _position(problem: Problem) -> tuple[int, int]:
    """Sort key: config problems first, then by line or lead index."""
    digits = "".join(ch for ch in problem.where if ch.isdigit())
    return (0, 0) if not digits else (1, int(digits))


def _validate_leads(parsed: LeadsFile) -> None:
    """Each lead against the schedule endpoint's own model, and ids unique across the file."""
    first_seen: dict[str, str] = {}
    for lead, where in zip(parsed.leads, parsed.locations, strict=True):
        try:
            Lead.model_validate_json(json.dumps(lead))
        except ValidationError as exc:
            for detail in field_errors(exc):
                parsed.problems.append(Problem(where, detail.field, detail.message))
            continue
        lead_id = lead["leadDocId"]
        if lead_id in first_seen:
            parsed.problems.append(
                Problem(where, "leadDocId", f"{lead_id!r} repeats {first_seen[lead_id]}")
            )
        else:
            first_seen[lead_id] = where
    parsed.problems.sort(key=_position)  # stable: a row's own problems keep their order


def today_in(zone: ZoneInfo | None, now: datetime) -> date:
    """The date relative slots count from: today in the host's zone."""
    return now.astimezone(zone).date() if zone is not None else now.date()


def read_csv(
    text: str, settings: dict[str, Any], now: datetime, *, first_line: int = 1
) -> LeadsFile:
    """A CSV of leads (header row first); `settings` are already merged."""
    parsed = LeadsFile(settings=settings, leads=[], locations=[])
    parsed.problems.extend(settings_problems(settings))
    zone = host_zone(settings)
    today = today_in(zone, now)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        parsed.problems.append(Problem(f"line {first_line}", "header", "the file is empty"))
        return parsed
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    for name in unknown:
        parsed.problems.append(
            Problem(f"line {first_line}", name, f"unknown column (known: {', '.join(CSV_COLUMNS)})")
        )
    for name in missing:
        parsed.problems.append(Problem(f"line {first_line}", name, "required column missing"))
    if unknown or missing:
        return parsed
    previous_end = reader.line_num
    for cells in reader:
        where = f"line {first_line + previous_end}"  # a quoted cell may span lines: the first
        previous_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            parsed.problems.append(
                Problem(where, "row", f"has {len(cells)} cells, the header has {len(header)}")
            )
            continue
        row = dict(zip(header, cells, strict=True))
        lead: dict[str, Any] = {}
        for name, value in row.items():
            if name == "candidateSlots":
                continue
            value = value.strip() if name != "emailBody" else value
            lead[name] = None if name in _OPTIONAL_NONE and not value.strip() else value
        try:
            lead["candidateSlots"] = parse_slots(row.get("candidateSlots", ""), today, zone)
        except SlotSyntaxError as exc:
            parsed.problems.append(Problem(where, "candidateSlots", str(exc)))
            continue
        parsed.leads.append(lead)
        parsed.locations.append(where)
    _validate_leads(parsed)
    return parsed


def read_json(
    text: str,
    now: datetime,
    low: Mapping[str, Any] | None = None,
    high: Mapping[str, Any] | None = None,
) -> LeadsFile:
    """A JSON file: a full schedule request body, or `{"leads": [...]}` plus settings.

    The file's own settings sit between `low` (e.g. a config next to the file) and `high`
    (an explicit --config and the flags).
    """
    try:
        body = json.loads(text)
    except ValueError as exc:
        settings = merge_settings(low, high)
        return LeadsFile(settings, [], [], [Problem("file", "json", f"not JSON: {exc}")])
    if isinstance(body, list):
        body = {"leads": body}
    if not isinstance(body, dict) or not isinstance(body.get("leads"), list):
        settings = merge_settings(low, high)
        return LeadsFile(settings, [], [], [Problem("file", "leads", "expected a list of leads")])
    settings = merge_settings(low, body, high)
    parsed = LeadsFile(settings=settings, leads=[], locations=[])
    parsed.problems.extend(settings_problems(settings))
    parsed.stages = body.get("stages") if isinstance(body.get("stages"), dict) else None
    parsed.run_id = body.get("runId") if isinstance(body.get("runId"), str) else None
    parsed.dry_run = body.get("dryRun") if isinstance(body.get("dryRun"), bool) else None
    zone = host_zone(settings)
    today = today_in(zone, now)
    for index, item in enumerate(body["leads"]):
        where = f"leads[{index}]"
        if not isinstance(item, dict):
            parsed.problems.append(Problem(where, "lead", "must be an object"))
            continue
        lead = dict(item)
        slots = lead.get("candidateSlots")
        if isinstance(slots, list):
            try:
                lead["candidateSlots"] = [_json_slot(s, today, zone) for s in slots]
            except SlotSyntaxError as exc:
                parsed.problems.append(Problem(where, "candidateSlots", str(exc)))
                continue
        parsed.leads.append(lead)
        parsed.locations.append(where)
    _validate_leads(parsed)
    return parsed


def _json_slot(value: Any, today: date, zone: ZoneInfo | None) -> Any:
    """A JSON slot: an object (docs/api.md, "Schedule") or a `START/END` string (slot syntax)."""
    if not isinstance(value, str):
        return value
    return parse_slot(value, today, zone)


def read_leads_file(
    path: Path,
    now: datetime,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    implicit_config: Mapping[str, Any] | None = None,
) -> LeadsFile:
    """Read `path` (`.json`, else CSV).

    Settings precedence: defaults < implicit_config (next to the file) < the JSON file's own <
    config (--config) < overrides (flags).
    """
    text = path.read_text(encoding="utf-8-sig")
    # Only the keys actually given may override the file's own settings (no defaults here).
    high = _given(config, overrides)
    if path.suffix.lower() == ".json":
        parsed = read_json(text, now, implicit_config, high)
    else:
        settings = merge_settings(implicit_config, high)
        parsed = read_csv(text, settings, now)
    stages = (config or {}).get("stages") or (implicit_config or {}).get("stages")
    if parsed.stages is None and isinstance(stages, dict):
        parsed.stages = dict(stages)
    return parsed


def _given(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings keys the layers give, merged (no defaults filled in)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in SETTINGS_KEYS:
                continue
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


# -- requests ---------------------------------------------------------------------------------
def build_requests(
    run_id: str, dry_run: bool, settings: Mapping[str, Any], leads: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Schedule request bodies of at most 500 leads and well under 1 MiB each, in file order."""
    base = {"runId": run_id, "dryRun": dry_run, **{k: settings[k] for k in SETTINGS_KEYS}}
    overhead = len(json.dumps({**base, "leads": []}).encode())
    bodies: list[dict[str, Any]] = []
    chunk: list[Mapping[str, Any]] = []
    size = overhead
    for lead in leads:
        lead_size = len(json.dumps(lead).encode()) + 2
        if chunk and (len(chunk) >= MAX_LEADS_PER_REQUEST or size + lead_size > MAX_REQUEST_BYTES):
            bodies.append({**base, "leads": list(chunk)})
            chunk, size = [], overhead
        chunk.append(lead)
        size += lead_size
    if chunk:
        bodies.append({**base, "leads": list(chunk)})
    return bodies


def request_problems(body: Mapping[str, Any]) -> list[Problem]:
    """A last check of a whole request against the endpoint's model (e.g. the run id)."""
    try:
        ScheduleRequest.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        return [Problem("request", d.field, d.message) for d in field_errors(exc)]
    return []


def settings_from_flags(
    *,
    host_email: str | None = None,
    host_tz: str | None = None,
    host_name: str | None = None,
    title: str | None = None,
    duration: int | None = None,
    expand_days: int | None = None,
    workday: str | None = None,
    no_draft: bool = False,
    actions: str | None = None,
    parent_folder: str | None = None,
) -> dict[str, Any]:
    """The settings the command-line flags give (only those given)."""
    start, _, end = (workday or "").partition("-")
    host = _present(
        calendarId=host_email or None,
        senderEmail=host_email or None,
        timeZone=host_tz or None,
        name=host_name,
    )
    fallback = _present(
        expandDays=expand_days,
        workdayStart=start.strip() if workday else None,
        workdayEnd=end.strip() if workday else None,
        draftIfNoSlot=False if no_draft else None,
    )
    return _present(
        host=host or None,
        meeting=_present(title=title, durationMinutes=duration) or None,
        fallback=fallback or None,
        actions=[a.strip() for a in actions.split(",") if a.strip()] if actions else None,
        drive={"parentFolderId": parent_folder} if parent_folder else None,
    )


def _present(**fields: Any) -> dict[str, Any]:
    """`fields` without the ones not given (None)."""
    return {key: value for key, value in fields.items() if value is not None}
