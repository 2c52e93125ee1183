"""Google Workspace adapters (Calendar, Gmail, Drive) over the real google-api-python-client.

Services and their collections are built lazily and cached per thread (httplib2 is not
thread-safe); each request is executed with the HTTP client of the user it acts as, kept per
thread and user. On the local stack they point at the Workspace sandbox with credentials that
name the host (`SandboxUserCredentials`), so the sandbox knows the acting user as Google does;
in production they use domain-wide delegation, signing for the host through IAM (no key files).
A dry run gets only `CalendarFreeBusy`: there is no object in a dry run that can write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import google.auth
import google.auth.credentials
import google_auth_httplib2
import httplib2
from google.auth import iam
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from common.config import GOOGLE_MODE_SANDBOX, Settings
from common.errors import PermanentError
from common.slots import Interval

SCOPES: dict[str, tuple[str, ...]] = {
    "calendar.read": ("https://www.googleapis.com/auth/calendar.freebusy",),
    "calendar": (
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
    ),
    "gmail": (
        "https://www.googleapis.com/auth/gmail.compose",
        "https://www.googleapis.com/auth/gmail.readonly",
    ),
    "drive": ("https://www.googleapis.com/auth/drive.file",),
}
_API = {
    "calendar.read": ("calendar", "v3"),
    "calendar": ("calendar", "v3"),
    "gmail": ("gmail", "v1"),
    "drive": ("drive", "v3"),
}
HTTP_TIMEOUT_S = 30
# The Workspace sandbox's stand-in access token names the subject (sandbox/identity.py).
SANDBOX_TOKEN_PREFIX = "sandbox-user:"  # noqa: S105  (names a user; no secret)
FOLDER_MIME = "application/vnd.google-apps.folder"
TAG_KEY = "leadrunKey"


class SandboxUserCredentials(google.auth.credentials.Credentials):
    """Credentials acting as `subject` in the Workspace sandbox: `Bearer sandbox-user:<subject>`.

    They stand where production's delegated service-account credentials stand, so the request path
    (an `AuthorizedHttp` per thread, kind and subject) is the same; the token proves nothing and is
    accepted only by the sandbox.
    """

    def __init__(self, subject: str) -> None:
        super().__init__()
        self.subject = subject
        self.token = SANDBOX_TOKEN_PREFIX + subject

    def refresh(self, request: Any) -> None:
        """Nothing to fetch: the token is made from the subject."""
        self.token = SANDBOX_TOKEN_PREFIX + self.subject


@dataclass(frozen=True)
class Bound:
    """A googleapiclient collection and the HTTP client of the user it acts as."""

    collection: Any
    http: Any

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Build the request and execute it as this user."""
        request = getattr(self.collection, method)(**params)
        return dict(request.execute(http=self.http))


# (kind, subject, collection path such as "users.drafts") -> the collection, as that user
ServiceFactory = Callable[[str, str, str], Bound]


class ServiceCache:
    """Builds googleapiclient services and their collections on first use, then keeps them, one
    per thread (httplib2 is not thread-safe), kind and collection; the impersonated user is the
    HTTP client a request is executed with, kept per thread, kind and user.

    `discovery.build` costs 15–35 ms of CPU, and each `service.files()` or `users().drafts()`
    call 2.6 ms (googleapiclient builds every method of the collection, docstrings included),
    against 0.3 ms for the HTTP call itself. Building them once per thread rather than per thread
    and host keeps a run with many hosts from paying that for every host.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()

    def __call__(self, kind: str, subject: str, path: str) -> Bound:
        return Bound(self._collection(kind, path), self._http(kind, subject))

    def _collection(self, kind: str, path: str) -> Any:
        cache: dict[tuple[str, str], Any] = self._local.__dict__.setdefault("collections", {})
        found = cache.get((kind, path))
        if found is None:
            service = cache.get((kind, ""))
            if service is None:
                service = cache[(kind, "")] = self._build(kind)
            found = service
            for name in filter(None, path.split(".")):
                found = getattr(found, name)()
            cache[(kind, path)] = found
        return found

    def _http(self, kind: str, subject: str) -> Any:
        cache: dict[tuple[str, str], Any] = self._local.__dict__.setdefault("https", {})
        found = cache.get((kind, subject))
        if found is None:
            if len(cache) > 256:
                cache.clear()
            credentials: google.auth.credentials.Credentials
            if self.settings.google_mode == GOOGLE_MODE_SANDBOX:
                credentials = SandboxUserCredentials(subject)
            else:
                credentials = self._delegated(kind, subject)
            found = google_auth_httplib2.AuthorizedHttp(
                credentials, http=httplib2.Http(timeout=HTTP_TIMEOUT_S)
            )
            cache[(kind, subject)] = found
        return found

    def _build(self, kind: str) -> Any:
        api, version = _API[kind]
        options: dict[str, Any] = {}
        if self.settings.google_mode == GOOGLE_MODE_SANDBOX:
            options = {"api_endpoint": self.settings.sandbox_url}
        # Requests are executed with the user's HTTP client (`Bound.call`), never with this one.
        return discovery.build(
            api,
            version,
            http=httplib2.Http(timeout=HTTP_TIMEOUT_S),
            static_discovery=True,
            client_options=options or None,
            cache_discovery=False,
        )

    def _delegated(self, kind: str, subject: str) -> service_account.Credentials:
        """Credentials acting as `subject`, signed by the function's service account via IAM."""
        source, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        sa_email = self.settings.delegation_sa
        if not sa_email:
            raise RuntimeError("LEADRUN_DELEGATION_SA must name the signing service account")
        signer = iam.Signer(Request(), source, sa_email)
        return service_account.Credentials(
            signer,
            sa_email,
            "https://oauth2.googleapis.com/token",
            scopes=list(SCOPES[kind]),
            subject=subject,
        )


def _status(error: HttpError) -> int:
    return int(error.resp.status)


class CalendarFreeBusy:
    """Reads busy times; the only calendar access a dry run has."""

    def __init__(self, services: ServiceFactory, kind: str = "calendar.read") -> None:
        self._services = services
        self._kind = kind

    def busy(
        self, subject: str, calendar_id: str, window: Interval, time_zone: str
    ) -> list[Interval]:
        """Busy intervals of one calendar inside `window` (start inclusive, end exclusive)."""
        body = {
            "timeMin": window.start.isoformat(),
            "timeMax": window.end.isoformat(),
            "timeZone": time_zone,
            "items": [{"id": calendar_id}],
        }
        answer = self._services(self._kind, subject, "freebusy").call("query", body=body)
        calendar = (answer.get("calendars") or {}).get(calendar_id) or {}
        errors = calendar.get("errors") or []
        if errors:
            reason = errors[0].get("reason", "error")
            raise PermanentError(
                f"calendar_{reason}", f"freeBusy cannot read {calendar_id}: {reason}"
            )
        return [
            Interval(datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]))
            for b in calendar.get("busy") or []
        ]


class GoogleCalendar(CalendarFreeBusy):
    """Reads busy times and books events (live runs only)."""

    def __init__(self, services: ServiceFactory) -> None:
        super().__init__(services, kind="calendar")

    def insert_event(self, subject: str, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Insert with the event's own id and a Meet request; 409 means it already exists."""
        events = self._services("calendar", subject, "events")
        return events.call(
            "insert",
            calendarId=calendar_id,
            body=event,
            conferenceDataVersion=1,
            sendUpdates="all",
        )

    def get_event(self, subject: str, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        """The event, or None if there is none with that id."""
        events = self._services("calendar", subject, "events")
        try:
            return events.call("get", calendarId=calendar_id, eventId=event_id)
        except HttpError as error:
            if _status(error) in (404, 410):
                return None
            raise

    def cancel_event(self, subject: str, calendar_id: str, event_id: str) -> bool:
        """Delete the event, Google telling its attendees (`sendUpdates=all`); False when it
        was gone already (410 once deleted, 404)."""
        events = self._services("calendar", subject, "events")
        try:
            events.call("delete", calendarId=calendar_id, eventId=event_id, sendUpdates="all")
        except HttpError as error:
            if _status(error) in (404, 410):
                return False
            raise
        return True


def _first(items: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return items[0] if items else None


class GmailMailer:
    """Creates and sends drafts, and finds what an earlier attempt did, by Message-ID."""

    def __init__(
        self, services: ServiceFactory, search_settle: timedelta = timedelta(minutes=10)
    ) -> None:
        self._services = services
        # Gmail's search is an index: seconds, sometimes minutes behind.
        self.search_settle = search_settle

    def _drafts(self, sender: str) -> Bound:
        return self._services("gmail", sender, "users.drafts")

    def create_draft(self, sender: str, raw: str) -> dict[str, Any]:
        """A new draft holding `raw`."""
        body = {"message": {"raw": raw}}
        return self._drafts(sender).call("create", userId="me", body=body)

    def draft_exists(self, sender: str, draft_id: str) -> bool:
        """Whether the draft is still there (gone after a send)."""
        try:
            self._drafts(sender).call("get", userId="me", id=draft_id, format="minimal")
            return True
        except HttpError as error:
            if _status(error) == 404:
                return False
            raise

    def send_draft(self, sender: str, draft_id: str) -> dict[str, Any]:
        """Send a draft; the answer is the sent message."""
        return self._drafts(sender).call("send", userId="me", body={"id": draft_id})

    def find_sent(self, sender: str, message_id: str) -> dict[str, Any] | None:
        """A sent message with this Message-ID header, or None."""
        q = f"rfc822msgid:{message_id.strip('<>')} in:sent"
        answer = self._services("gmail", sender, "users.messages").call("list", userId="me", q=q)
        return _first(answer.get("messages"))

    def find_drafts(self, sender: str, message_id: str) -> list[dict[str, Any]]:
        """The drafts whose message has this Message-ID header (a few at most: one page)."""
        q = f"rfc822msgid:{message_id.strip('<>')}"
        answer = self._drafts(sender).call("list", userId="me", q=q)
        return list(answer.get("drafts") or [])

    def delete_draft(self, sender: str, draft_id: str) -> bool:
        """Delete a draft for good; False when it was gone already (no error)."""
        try:
            self._drafts(sender).call("delete", userId="me", id=draft_id)
        except HttpError as error:
            if _status(error) != 404:
                raise
            return False
        return True


class DriveFolders:
    """Creates tagged folders with ids reserved beforehand, and reads them back by id.

    An id comes from `files.generateIds` (reserved in blocks per owner, so a lead costs one
    call: `files.create`); the effect checkpoints it before creating, so a retry looks the
    folder up by id, which is consistent, instead of searching, which can lag.
    """

    ID_BLOCK = 100

    def __init__(self, services: ServiceFactory) -> None:
        self._services = services
        self._ids: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def reserve_id(self, owner: str) -> str:
        """An id to create a file with, never handed out twice by this process."""
        with self._lock:
            pool = self._ids.setdefault(owner, [])
            if not pool:
                files = self._services("drive", owner, "files")
                answer = files.call("generateIds", count=self.ID_BLOCK, space="drive", type="files")
                pool.extend(answer.get("ids") or [])
            if not pool:
                raise RuntimeError("files.generateIds returned no ids")
            return pool.pop()

    def create_folder(
        self, owner: str, name: str, parent: str | None, tag: str, folder_id: str
    ) -> dict[str, Any]:
        """The folder `folder_id`, carrying `tag` in its appProperties (409 if it exists)."""
        body: dict[str, Any] = {
            "id": folder_id,
            "name": name,
            "mimeType": FOLDER_MIME,
            "appProperties": {TAG_KEY: tag},
        }
        if parent:
            body["parents"] = [parent]
        files = self._services("drive", owner, "files")
        return files.call("create", body=body, fields="id,name,webViewLink,parents")

    def get_folder(self, owner: str, folder_id: str) -> dict[str, Any] | None:
        """The folder with this id, or None (also when it was trashed)."""
        files = self._services("drive", owner, "files")
        try:
            found = files.call("get", fileId=folder_id, fields="id,name,webViewLink,trashed")
        except HttpError as error:
            if _status(error) == 404:
                return None
            raise
        return None if found.get("trashed") else found

    def trash_folder(self, owner: str, folder_id: str) -> bool:
        """Move the folder to the trash (recoverable for 30 days); False when it is gone."""
        files = self._services("drive", owner, "files")
        try:
            files.call("update", fileId=folder_id, body={"trashed": True}, fields="id,trashed")
        except HttpError as error:
            if _status(error) == 404:
                return False
            raise
        return True
