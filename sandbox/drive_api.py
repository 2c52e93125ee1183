"""Drive v3: ``files.create/get/list/update/generateIds`` with a ``q`` search-query parser.

Each acting user (from the request's credentials) has a drive of their own: another user's file
is not found. ``files.create`` takes a body ``id`` handed out to that user by ``generateIds``
(409 if a file already has it, 400 ``fileIdNotUsable`` for any other id). ``files.update`` with
``{"trashed": true}`` moves a file to the trash, as Drive does: it is still found by id, and by
``files.list`` unless the query says ``trashed = false``; a trashed folder's contents are trashed
with it (``explicitlyTrashed`` false on them) and come back when it is restored.

``q`` grammar: ``not``, ``and``, ``or``, parentheses, and the predicates
``name = 'x'``, ``name != 'x'``, ``name contains 'x'``, ``mimeType = 'x'`` (``!=``),
``trashed = true|false``, ``starred = ...``, ``'<id>' in parents``,
``appProperties has { key='k' and value='v' }`` (also ``properties``),
``fullText contains 'x'``, ``createdTime``/``modifiedTime`` compared with ``< <= = != > >=``.
Strings are single- or double-quoted, with ``\\'`` and ``\\\\`` escapes.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import ApiError
from sandbox.state import ApiCall, Handler, SandboxState

FOLDER = "application/vnd.google-apps.folder"
ROOT_ID = "0ASandboxRootFolderUk9PVA"
DEFAULT_FIELDS: dict[str, str] = {
    "drive.files.create": "kind,id,name,mimeType",
    "drive.files.get": "kind,id,name,mimeType",
    "drive.files.update": "kind,id,name,mimeType",
    "drive.files.list": "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)",
    "drive.files.generateIds": "kind,space,ids",
}
_TOKEN = re.compile(r"\s*(?:(!=|<=|>=|=|<|>|\(|\)|\{|\})|([A-Za-z_][A-Za-z0-9_.]*)|('|\"))")

Predicate = Callable[[dict[str, Any]], bool]


def file_not_found(file_id: str) -> ApiError:
    """Drive's 404 for an unknown file id."""
    return ApiError(404, f"File not found: {file_id}.", "notFound", location="fileId")


def invalid_query(detail: str = "") -> ApiError:
    """Drive's 400 for a ``q`` it cannot parse."""
    return ApiError(
        400, "Invalid Value" + (f": {detail}" if detail else ""), "invalid", location="q"
    )


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split a query into ``(kind, value)`` tokens: ``op``, ``word`` or ``str`` (unescaped)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise invalid_query(f"unexpected '{text[pos:].strip()[:10]}'")
        if m.group(1):
            tokens.append(("op", m.group(1)))
            pos = m.end()
        elif m.group(2):
            tokens.append(("word", m.group(2)))
            pos = m.end()
        else:
            quote, pos, chars = m.group(3), m.end(), []
            while True:
                if pos >= len(text):
                    raise invalid_query("unterminated string")
                ch = text[pos]
                if ch == "\\" and pos + 1 < len(text):
                    chars.append(text[pos + 1])
                    pos += 2
                elif ch == quote:
                    pos += 1
                    break
                else:
                    chars.append(ch)
                    pos += 1
            tokens.append(("str", "".join(chars)))
    return tokens


class QueryParser:
    """Recursive-descent parser turning a Drive ``q`` into a predicate on file resources."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def parse(self) -> Predicate:
        """The whole query as one predicate (empty query: everything)."""
        if not self.tokens:
            return lambda f: True
        pred = self._or()
        if self.pos != len(self.tokens):
            raise invalid_query(f"unexpected '{self.tokens[self.pos][1]}'")
        return pred

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, kind: str | None = None, value: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1].lower() != value):
            raise invalid_query(f"expected {value or kind}")
        self.pos += 1
        return tok[1]

    def _is(self, value: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] in ("word", "op") and tok[1].lower() == value

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._is("or"):
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda f: any(p(f) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._is("and"):
            self.pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else lambda f: all(p(f) for p in parts)

    def _unary(self) -> Predicate:
        if self._is("not"):
            self.pos += 1
            inner = self._unary()
            return lambda f: not inner(f)
        if self._is("("):
            self.pos += 1
            inner = self._or()
            self._take("op", ")")
            return inner
        return self._predicate()

    def _predicate(self) -> Predicate:
        tok = self._peek()
        if tok is not None and tok[0] == "str":
            value = self._take("str")
            self._take("word", "in")
            field = self._take("word")
            if field not in ("parents", "owners", "writers", "readers"):
                raise invalid_query(f"'in' is not supported for {field}")
            wanted = ROOT_ID if field == "parents" and value == "root" else value
            return lambda f: wanted in (f.get(field) or [])
        field = self._take("word")
        if self._is("has"):
            self.pos += 1
            if field not in ("appProperties", "properties"):
                raise invalid_query(f"'has' is not supported for {field}")
            self._take("op", "{")
            self._take("word", "key")
            self._take("op", "=")
            key = self._take("str")
            self._take("word", "and")
            self._take("word", "value")
            self._take("op", "=")
            val = self._take("str")
            self._take("op", "}")
            return lambda f: (f.get(field) or {}).get(key) == val
        if self._is("contains"):
            self.pos += 1
            needle = self._take("str").lower()
            if field == "fullText":
                return lambda f: needle in f"{f.get('name', '')} {f.get('description', '')}".lower()
            if field != "name":
                raise invalid_query(f"'contains' is not supported for {field}")
            return lambda f: needle in str(f.get("name", "")).lower()
        op = self._take("op")
        tok = self._peek()
        if tok is None:
            raise invalid_query("missing value")
        self.pos += 1
        operand: Any = tok[1]
        if tok[0] == "word":
            if tok[1].lower() not in ("true", "false"):
                raise invalid_query(f"bad value {tok[1]}")
            operand = tok[1].lower() == "true"
        return _compare(field, op, operand)


def _compare(field: str, op: str, value: Any) -> Predicate:
    allowed = {
        "name": ("=", "!="),
        "mimeType": ("=", "!="),
        "trashed": ("=", "!="),
        "starred": ("=", "!="),
        "createdTime": ("=", "!=", "<", "<=", ">", ">="),
        "modifiedTime": ("=", "!=", "<", "<=", ">", ">="),
    }
    if op not in allowed.get(field, ()):
        raise invalid_query(f"'{field} {op}' is not supported")
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    compare = ops[op]
    if field in ("createdTime", "modifiedTime"):
        when = _parse_time(str(value))
        return lambda f: compare(_parse_time(f[field]), when)
    default: Any = False if field in ("trashed", "starred") else ""
    return lambda f: compare(f.get(field, default), value)


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid_query(f"bad time {value}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sort_key(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda f: str(f.get(name, ""))


def _root() -> dict[str, Any]:
    return {
        "kind": "drive#file",
        "id": ROOT_ID,
        "name": "My Drive",
        "mimeType": FOLDER,
        "parents": [],
        "trashed": False,
        "webViewLink": f"https://drive.google.com/drive/folders/{ROOT_ID}",
    }


def _new_id() -> str:
    return "1" + secrets.token_urlsafe(24)[:32]


def _chosen_id(state: SandboxState, call: ApiCall, wanted: Any) -> str:
    """The id a create asked for: one ``generateIds`` gave this user, not taken yet."""
    if not isinstance(wanted, str) or not wanted:
        raise ApiError(400, "The provided file ID is not usable.", "fileIdNotUsable", location="id")
    if any(wanted in space.files for space in state.drives.values()):
        raise ApiError(409, "A file already exists with the provided ID.", "duplicate")
    if wanted not in state.drive(call.user).generated:
        raise ApiError(400, "The provided file ID is not usable.", "fileIdNotUsable", location="id")
    return wanted


def files_generate_ids(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``drive.files.generateIds``: ids only this user may create files with."""
    count = int(call.query.get("count", 10))
    space = str(call.query.get("space") or "drive")
    kind = str(call.query.get("type") or "files")
    if space not in ("drive", "appDataFolder") or kind not in ("files", "shortcuts"):
        raise ApiError(400, "Invalid Value", "invalid", location="space")
    ids = [_new_id() for _ in range(count)]
    with state.lock:
        state.drive(call.user).generated.update(ids)
    return {"kind": "drive#generatedIds", "space": space, "ids": ids}


def files_create(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``drive.files.create`` (metadata only); unknown parent → 404 ``File not found: X.``."""
    body: dict[str, Any] = dict(call.body or {})
    parents = [ROOT_ID if p == "root" else p for p in body.get("parents") or ["root"]]
    if len(parents) > 1:
        raise ApiError(403, "Increasing the number of parents is not allowed.", "cannotAddParent")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    mime = body.get("mimeType") or "application/octet-stream"
    with state.lock:
        space = state.drive(call.user)
        file_id = _chosen_id(state, call, body["id"]) if "id" in body else _new_id()
        for parent in parents:
            if parent != ROOT_ID and parent not in space.files:
                raise file_not_found(parent)
        link = (
            f"https://drive.google.com/drive/folders/{file_id}"
            if mime == FOLDER
            else f"https://drive.google.com/file/d/{file_id}/view?usp=drivesdk"
        )
        resource: dict[str, Any] = {
            "kind": "drive#file",
            **body,
            "id": file_id,
            "name": body.get("name") or "Untitled",
            "mimeType": mime,
            "parents": parents,
            "trashed": bool(body.get("trashed", False)),
            "starred": bool(body.get("starred", False)),
            "createdTime": stamp,
            "modifiedTime": stamp,
            "webViewLink": link,
            "ownedByMe": True,
            "version": str(state.next_sequence()),
        }
        if "appProperties" in body:
            resource["appProperties"] = {
                k: v for k, v in (body.get("appProperties") or {}).items() if v is not None
            }
        space.files[file_id] = resource
        space.made[file_id] = time.time()
        return dict(resource)


def files_get(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``drive.files.get``; ``root`` answers the My Drive folder."""
    file_id = call.params["fileId"]
    if file_id in ("root", ROOT_ID):
        return _root()
    with state.lock:
        resource = state.drive(call.user).files.get(file_id)
        if resource is None:
            raise file_not_found(file_id)
        return dict(resource)


# What ``files.update`` may change in a file's metadata; any other field Drive refuses to write.
_WRITABLE = frozenset(
    {"name", "description", "mimeType", "starred", "trashed", "appProperties", "properties"}
)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _not_writable(name: str) -> ApiError:
    if name == "parents":
        message = (
            "The parents field is not directly writable in update requests. "
            "Use the addParents and removeParents parameters instead."
        )
    else:
        message = f"The resource body includes fields which are not directly writable. ({name})"
    return ApiError(403, message, "fieldNotWritable")


def _set_trashed(files: dict[str, dict[str, Any]], file_id: str, on: bool, user: str) -> None:
    """Trash or restore a file and, as Drive does, what lies inside it (called under the lock);
    an item trashed on its own (``explicitlyTrashed``) keeps its own state."""
    stamp = _stamp()
    _trash(files[file_id], on, on, user, stamp)
    below = [file_id]
    while below:
        parent = below.pop()
        for child_id, child in files.items():
            if parent in (child.get("parents") or []) and not child.get("explicitlyTrashed"):
                _trash(child, on, False, user, stamp)
                below.append(child_id)


def _trash(resource: dict[str, Any], on: bool, explicit: bool, user: str, stamp: str) -> None:
    resource["trashed"] = on
    resource["explicitlyTrashed"] = explicit
    if on:
        resource["trashedTime"] = stamp
        resource["trashingUser"] = {"kind": "drive#user", "me": True, "emailAddress": user}
    else:
        resource.pop("trashedTime", None)
        resource.pop("trashingUser", None)


def files_update(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``drive.files.update`` (metadata): rename, appProperties (``null`` clears a key), trash."""
    file_id = call.params["fileId"]
    body: dict[str, Any] = dict(call.body or {})
    for name in body:
        if name not in _WRITABLE:
            raise _not_writable(name)
    with state.lock:
        files = state.drive(call.user).files
        resource = files.get(file_id)
        if resource is None:
            raise file_not_found(file_id)
        for name in ("appProperties", "properties"):
            if name in body:
                merged = {**(resource.get(name) or {}), **(body.pop(name) or {})}
                resource[name] = {k: v for k, v in merged.items() if v is not None}
        trashed = body.pop("trashed", None)
        resource.update({k: v for k, v in body.items() if v is not None})
        if trashed is not None and bool(trashed) != bool(resource.get("trashed")):
            _set_trashed(files, file_id, bool(trashed), call.user)
        resource["modifiedTime"] = _stamp()
        return dict(resource)


def files_list(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``drive.files.list`` with ``q``, ``orderBy``, ``pageSize``/``pageToken``."""
    predicate = QueryParser(call.query.get("q") or "").parse()
    # A search (``q``) misses files made under ``searchLagSeconds`` ago: Drive's index lags.
    lag = state.limits.search_lag_s if call.query.get("q") else 0.0
    with state.lock:
        space = state.drive(call.user)
        seen_before = time.time() - lag
        found = [
            dict(f)
            for file_id, f in space.files.items()
            if (not lag or space.made[file_id] <= seen_before) and predicate(f)
        ]
    for key in reversed([k.strip() for k in str(call.query.get("orderBy") or "").split(",") if k]):
        name, _, direction = key.partition(" ")
        found.sort(key=_sort_key(name), reverse=direction.lower() == "desc")
    token = str(call.query.get("pageToken") or "0")
    offset = int(token) if token.isdigit() else 0
    size = int(call.query.get("pageSize") or 100)
    answer: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": found[offset : offset + size],
    }
    if offset + size < len(found):
        answer["nextPageToken"] = str(offset + size)
    return answer


HANDLERS: dict[str, Handler] = {
    "drive.files.create": files_create,
    "drive.files.get": files_get,
    "drive.files.list": files_list,
    "drive.files.update": files_update,
    "drive.files.generateIds": files_generate_ids,
}
