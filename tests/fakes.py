"""In-memory fakes of the ports (cosmicpython's FakeRepository): no emulator, no network.

`MemoryDocuments` is the fake of `common.documents.Documents`; `tests/contract` runs the same tests
against it and against Firestore, so its guards cannot drift from Firestore's. The Google fakes
keep what was made and count every call, as the sandbox does; `fail` makes a method raise the
HttpError Google would answer, `after_effect` after doing what it was asked.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httplib2
from googleapiclient.errors import HttpError

from common.documents import ABSENT, SERVER_TIME, Changed, Commit, Stored
from common.models import stamp
from common.slots import Interval


def _get_path(doc: Mapping[str, Any], segments: Sequence[str]) -> Any:
    """The value at a field path (None where there is none), as a Firestore filter sees it."""
    value: Any = doc
    for name in segments:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    return value


def _set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        doc = doc.setdefault(name, {})
    doc[last] = value


class MemoryDocuments:
    """Documents in a dict; versions are a counter; a commit checks every guard, then writes."""

    def __init__(self) -> None:
        self.docs: dict[str, Stored] = {}
        self.counts: dict[str, Counter[str]] = {}
        self.commits = 0
        self.reads: Counter[str] = Counter()  # how often each path was read
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def read(self, paths: Sequence[str]) -> dict[str, Stored | None]:
        """The documents at `paths`."""
        with self._lock:
            self.reads.update(paths)
            return {
                path: Stored(copy.deepcopy(doc.data), doc.version)
                if (doc := self.docs.get(path)) is not None
                else None
                for path in paths
            }

    def commit(self, commits: Sequence[Commit]) -> dict[str, Any]:
        """All or nothing, like a Firestore batch with preconditions."""
        with self._lock:
            for commit in commits:
                for write in commit.writes:
                    found = self.docs.get(write.path)
                    if write.guard is ABSENT and found is not None:
                        raise Changed(f"{write.path} exists")
                    if write.guard not in (None, ABSENT) and (
                        found is None or found.version != write.guard
                    ):
                        raise Changed(f"{write.path} changed")
            self.commits += 1
            now = datetime.now(UTC)
            versions: dict[str, Any] = {}
            for commit in commits:
                for write in commit.writes:
                    self._apply(write.path, write.data, write.guard, write.merge, now)
                    if (doc := self.docs.get(write.path)) is not None:
                        versions[write.path] = doc.version
                if commit.run_id is not None:
                    self.counts.setdefault(commit.run_id, Counter()).update(commit.counts)
            return versions

    def _apply(
        self, path: str, data: Mapping[str, Any] | None, guard: Any, merge: bool, now: datetime
    ) -> None:
        if data is None:
            self.docs.pop(path, None)
            return
        values = {k: now if v is SERVER_TIME else v for k, v in data.items()}
        updating = guard not in (None, ABSENT) or merge
        doc: dict[str, Any] = dict(self.docs[path].data) if updating and path in self.docs else {}
        for key, value in values.items():
            _set_path(doc, key, value)
        self.docs[path] = Stored(copy.deepcopy(doc), next(self._versions))

    def children(self, collection: str) -> list[tuple[str, Stored]]:
        """Every document directly in `collection`."""
        depth = collection.count("/") + 1
        with self._lock:
            return [
                (path.rsplit("/", 1)[1], doc)
                for path, doc in sorted(self.docs.items())
                if path.startswith(collection + "/") and path.count("/") == depth
            ]

    def page(
        self,
        collection: str,
        equal: Mapping[tuple[str, ...], Any],
        after: str | None,
        limit: int,
    ) -> list[tuple[str, Stored]]:
        """Documents of `collection` in id order after `after` whose fields equal `equal`."""
        found = [
            (doc_id, doc)
            for doc_id, doc in self.children(collection)
            if (after is None or doc_id > after)
            and all(_get_path(doc.data, path) == value for path, value in equal.items())
        ]
        return found[:limit]

    def latest(self, collection: str, field_name: str) -> Any:
        """The greatest text value of the field in the collection."""
        values = [doc.data.get(field_name) for _, doc in self.children(collection)]
        return max((v for v in values if isinstance(v, str) and v > ""), default=None)

    def counters(self, run_id: str) -> Counter[str]:
        """A run's counters."""
        with self._lock:
            return Counter(self.counts.get(run_id, Counter()))

    def stale_receipts(
        self, older_than: datetime, limit: int
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Receipts with work left and no time to wait for untouched since `older_than`."""
        with self._lock:
            found = []
            for path, doc in sorted(self.docs.items()):
                parts = path.split("/")
                if (
                    len(parts) == 6 and parts[4] == "receipts" and doc.data.get("watched") is True
                ) and doc.data.get("updatedAt", older_than) < older_than:
                    found.append((parts[1], parts[3], parts[5], dict(doc.data)))
            return found[:limit]

    def due_receipts(
        self, now_stamp: str, after_stamp: str | None = None
    ) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """Waiting receipts now due (and due after `after_stamp`), soonest first."""
        with self._lock:
            found = []
            for path, doc in self.docs.items():
                parts = path.split("/")
                if (
                    len(parts) == 6
                    and parts[4] == "receipts"
                    and _due(doc.data, now_stamp)
                    and (after_stamp is None or doc.data["waiting"]["until"] > after_stamp)
                ):
                    found.append((parts[1], parts[3], parts[5], copy.deepcopy(doc.data)))
            found.sort(key=lambda row: (row[3]["waiting"]["until"], row[:3]))
            return iter(found)

    def next_wait(self, after_stamp: str | None = None) -> str | None:
        """The soonest wait's end (after `after_stamp`)."""
        with self._lock:
            return _next_wait(self.docs, after_stamp)


def _next_wait(docs: Any, after_stamp: str | None) -> str | None:
    found = [
        until
        for path, doc in docs.items()
        if len(parts := path.split("/")) == 6 and parts[4] == "receipts"
        if doc.data.get("sweepable") is True
        and isinstance(until := (doc.data.get("waiting") or {}).get("until"), str)
        and (after_stamp is None or until > after_stamp)
    ]
    return min(found, default=None)


def _due(data: dict[str, Any], now_stamp: str) -> bool:
    until = (data.get("waiting") or {}).get("until")
    return data.get("sweepable") is True and isinstance(until, str) and until <= now_stamp


def rate_limited(until: datetime) -> HttpError:
    """Google's 429 that says when to try again (Gmail's wording; Calendar and Drive use the
    same reason)."""
    message = f"User-rate limit exceeded.  Retry after {stamp(until)}"
    return http_error(429, "rateLimitExceeded", message)


def http_error(status: int, reason: str = "", message: str = "") -> HttpError:
    """The HttpError googleapiclient raises for a Google error answer."""
    body = {
        "error": {
            "code": status,
            "message": message or reason,
            "errors": [{"reason": reason, "message": message}],
        }
    }
    return HttpError(httplib2.Response({"status": status}), json.dumps(body).encode())


@dataclass
class Calls:
    """Calls by method, and failures to inject: method -> [HttpError or exception, ...]."""

    counted: Counter[str] = field(default_factory=Counter)
    # method -> [(error, raised after acting?), ...], in the order the calls meet them
    failures: dict[str, list[tuple[BaseException, bool]]] = field(default_factory=dict)

    def fail(self, method: str, *errors: BaseException, after_effect: bool = False) -> None:
        """The next calls of `method` raise `errors`, in order (after acting if `after_effect`)."""
        self.failures.setdefault(method, []).extend((e, after_effect) for e in errors)

    def enter(self, method: str) -> BaseException | None:
        """Count a call; the failure to raise before acting, if any."""
        self.counted[method] += 1
        queued = self.failures.get(method)
        if queued and not queued[0][1]:
            return queued.pop(0)[0]
        return None

    def leave(self, method: str) -> None:
        """Raise the failure queued for after the effect, if any."""
        queued = self.failures.get(method)
        if queued and queued[0][1]:
            raise queued.pop(0)[0]


class FakeCalendar:
    """Calendar: busy blocks, events by id (409 on a taken id), Meet links."""

    def __init__(self, calls: Calls | None = None) -> None:
        self.calls = calls or Calls()
        self.busy_blocks: dict[str, list[Interval]] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.meet_pending_reads = 0  # reads of a new event that still show Meet `pending`
        self.meet_fails = False
        self._pending: dict[tuple[str, str], int] = {}

    def busy(
        self, subject: str, calendar_id: str, window: Interval, time_zone: str
    ) -> list[Interval]:
        """Busy blocks and events that meet `window`."""
        if (error := self.calls.enter("freebusy.query")) is not None:
            raise error
        taken = list(self.busy_blocks.get(calendar_id, []))
        for (cal, _), event in self.events.items():
            if cal == calendar_id and event["status"] != "cancelled":
                taken.append(
                    Interval(
                        datetime.fromisoformat(event["start"]["dateTime"]),
                        datetime.fromisoformat(event["end"]["dateTime"]),
                    )
                )
        return [b for b in taken if b.start < window.end and window.start < b.end]

    def insert_event(self, subject: str, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Insert with the event's id; 409 if taken."""
        if (error := self.calls.enter("events.insert")) is not None:
            raise error
        key = (calendar_id, event["id"])
        if key in self.events:
            raise http_error(409, "duplicate", "The requested identifier already exists.")
        made = {**event, "status": "confirmed", "htmlLink": f"https://calendar.test/{event['id']}"}
        self.events[key] = made
        self._pending[key] = self.meet_pending_reads
        self.calls.leave("events.insert")
        return self._as_read(key)

    def _as_read(self, key: tuple[str, str]) -> dict[str, Any]:
        """The event as Google shows it now: Meet pending for a while, then its outcome."""
        event = dict(self.events[key])
        create = dict((event.get("conferenceData") or {}).get("createRequest") or {})
        if self._pending.get(key, 0) > 0:
            status = "pending"
        else:
            status = "failure" if self.meet_fails else "success"
        event["conferenceData"] = {"createRequest": {**create, "status": {"statusCode": status}}}
        if status == "success":
            event["hangoutLink"] = f"https://meet.test/{key[1][:10]}"
        return event

    def get_event(self, subject: str, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        """The event, or None."""
        if (error := self.calls.enter("events.get")) is not None:
            raise error
        key = (calendar_id, event_id)
        if key not in self.events:
            return None
        self._pending[key] = max(0, self._pending.get(key, 0) - 1)
        return self._as_read(key)

    def cancel_event(self, subject: str, calendar_id: str, event_id: str) -> bool:
        """Mark it cancelled, as Google keeps a deleted event; False if it was already."""
        if (error := self.calls.enter("events.delete")) is not None:
            raise error
        event = self.events.get((calendar_id, event_id))
        if event is None or event["status"] == "cancelled":
            return False
        event["status"] = "cancelled"
        self.calls.leave("events.delete")
        return True


class FreeBusyOnly:
    """What a dry run gets: busy times of a calendar and nothing else."""

    def __init__(self, calendar: FakeCalendar) -> None:
        self._calendar = calendar

    def busy(
        self, subject: str, calendar_id: str, window: Interval, time_zone: str
    ) -> list[Interval]:
        """Busy times, read through the real calendar fake."""
        return self._calendar.busy(subject, calendar_id, window, time_zone)


class FakeMailer:
    """Gmail drafts and sent mail per sender, found by Message-ID."""

    def __init__(
        self, calls: Calls | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.calls = calls or Calls()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.search_settle = timedelta(seconds=20)
        # Searches miss what was made less than `search_lag` ago (gets by id see it at once).
        self.search_lag = timedelta(0)
        self.drafts: dict[str, tuple[str, str]] = {}  # id -> (sender, raw)
        self.made: dict[str, datetime] = {}  # draft or message id -> when it was made
        self.sent: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def _check(self, method: str) -> None:
        if (error := self.calls.enter(method)) is not None:
            raise error

    def create_draft(self, sender: str, raw: str) -> dict[str, Any]:
        """A new draft."""
        self._check("drafts.create")
        draft_id = f"d{next(self._ids)}"
        self.drafts[draft_id] = (sender, raw)
        self.made[draft_id] = self.clock()
        self.calls.leave("drafts.create")
        return {"id": draft_id}

    def draft_exists(self, sender: str, draft_id: str) -> bool:
        """Whether the draft is there."""
        self._check("drafts.get")
        return draft_id in self.drafts

    def send_draft(self, sender: str, draft_id: str) -> dict[str, Any]:
        """Send and remove the draft; 404 if it is gone."""
        self._check("drafts.send")
        if draft_id not in self.drafts:
            raise http_error(404, "notFound", "Requested entity was not found.")
        owner, raw = self.drafts.pop(draft_id)
        message = {"id": f"m{next(self._ids)}", "threadId": "t1", "sender": owner, "raw": raw}
        self.sent.append(message)
        self.made[message["id"]] = self.clock()
        self.calls.leave("drafts.send")
        return message

    def _has(self, raw: str, message_id: str) -> bool:
        return message_id in base64.urlsafe_b64decode(raw + "==").decode()

    def _indexed(self, item_id: str) -> bool:
        return self.clock() - self.made[item_id] >= self.search_lag

    def find_sent(self, sender: str, message_id: str) -> dict[str, Any] | None:
        """A sent message carrying `message_id`."""
        self._check("messages.list")
        return next(
            (m for m in self.sent if self._indexed(m["id"]) and self._has(m["raw"], message_id)),
            None,
        )

    def find_drafts(self, sender: str, message_id: str) -> list[dict[str, Any]]:
        """The drafts carrying `message_id`."""
        self._check("drafts.list")
        return [
            {"id": draft_id}
            for draft_id, (_, raw) in self.drafts.items()
            if self._indexed(draft_id) and self._has(raw, message_id)
        ]

    def delete_draft(self, sender: str, draft_id: str) -> bool:
        """Remove the draft (one already gone is no error, as the adapter answers)."""
        self._check("drafts.delete")
        gone = self.drafts.pop(draft_id, None) is None
        self.calls.leave("drafts.delete")
        return not gone


class FakeDrive:
    """Drive folders by id; ids handed out by `reserve_id` (files.generateIds)."""

    def __init__(self, calls: Calls | None = None) -> None:
        self.calls = calls or Calls()
        self.folders: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def reserve_id(self, owner: str) -> str:
        """A fresh id."""
        if (error := self.calls.enter("files.generateIds")) is not None:
            raise error
        return f"f{next(self._ids)}"

    def create_folder(
        self, owner: str, name: str, parent: str | None, tag: str, folder_id: str
    ) -> dict[str, Any]:
        """A folder with that id; 409 if the id is taken."""
        if (error := self.calls.enter("files.create")) is not None:
            raise error
        if any(f["id"] == folder_id for f in self.folders):
            raise http_error(409, "duplicate", "A file already exists with the provided ID.")
        folder = {"id": folder_id, "name": name, "tag": tag, "webViewLink": "https://drive.test/f"}
        self.folders.append(folder)
        self.calls.leave("files.create")
        return folder

    def get_folder(self, owner: str, folder_id: str) -> dict[str, Any] | None:
        """The folder with that id."""
        if (error := self.calls.enter("files.get")) is not None:
            raise error
        return next(
            (f for f in self.folders if f["id"] == folder_id and not f.get("trashed")), None
        )

    def trash_folder(self, owner: str, folder_id: str) -> bool:
        """Mark it trashed; False if there is no such folder."""
        if (error := self.calls.enter("files.update")) is not None:
            raise error
        folder = next((f for f in self.folders if f["id"] == folder_id), None)
        if folder is not None:
            folder["trashed"] = True
        self.calls.leave("files.update")
        return folder is not None


class FakeBus:
    """Keeps what was published."""

    def __init__(self) -> None:
        self.published: list[Any] = []
        self.wakes = 0

    def wake(self, timeout_s: float = 30.0) -> None:
        """Count a wake of the sweeper."""
        self.wakes += 1

    def publish(
        self, messages: Iterable[Any], timeout_s: float = 30.0, traceparent: str | None = None
    ) -> int:
        """Record the messages."""
        batch = list(messages)
        self.published.extend(batch)
        return len(batch)


class Interleaved:
    """`docs`, with `between` run once right before the first commit: another writer (a
    delivery, a command) that gets in between a change's read and its commit."""

    def __init__(self, docs: Any, between: Any) -> None:
        self._docs, self.between = docs, between

    def __getattr__(self, name: str) -> Any:
        return getattr(self._docs, name)

    def commit(self, commits: Any) -> Any:
        between, self.between = self.between, None
        if between is not None:
            between()
        return self._docs.commit(commits)
