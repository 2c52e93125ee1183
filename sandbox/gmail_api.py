"""Gmail v1: ``messages.send/list/get`` and ``drafts.create/get/list/send``.

Each acting user (from the request's credentials) has a mailbox of their own; ``userId`` is ``me``
or that user's address (another address: 403, as Google refuses it). ``q`` supports
``rfc822msgid:ID``, ``in:sent|drafts|inbox|anywhere``, ``is:draft``, ``label:L``, ``to:``,
``from:``, ``cc:``, ``bcc:``, ``subject:`` (substring, case-insensitive), ``-term`` negation and
free words (substring of the decoded message); terms separated by spaces are ANDed.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import re
import secrets
import time
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from typing import Any

from sandbox.errors import ApiError
from sandbox.state import ApiCall, Handler, Mailbox, SandboxState

ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]+$")
TOKEN = re.compile(r'-?[A-Za-z0-9_]+:"[^"]*"|-?"[^"]*"|\S+')


@dataclass
class MessageMeta:
    """What the sandbox parsed out of one message, for queries and ``format=full``."""

    parsed: Message
    message_id: str
    subject: str
    sender: str
    to: str
    cc: str
    bcc: str
    text: str
    snippet: str
    valid_recipients: bool


def gmail_not_found() -> ApiError:
    """Gmail's 404."""
    return ApiError(404, "Requested entity was not found.", "notFound")


def _mailbox(state: SandboxState, call: ApiCall) -> Mailbox:
    """The acting user's mailbox; ``userId`` must be ``me`` or that user."""
    user_id = call.params.get("userId", "me")
    if user_id != "me" and user_id.lower() != call.user:
        raise ApiError(403, f"Delegation denied for {call.user}", "forbidden")
    return state.mailbox(call.user)


def _searchable(state: SandboxState, call: ApiCall, resource: dict[str, Any]) -> bool:
    """Whether a list sees a message: a search (``q``) misses one made under
    ``searchLagSeconds`` ago, as Gmail's index lags."""
    lag = state.limits.search_lag_s
    if not lag or not call.query.get("q"):
        return True
    return int(resource["internalDate"]) / 1000.0 <= time.time() - lag


def invalid_argument(message: str) -> ApiError:
    """Gmail's 400 ``invalidArgument``."""
    return ApiError(400, message, "invalidArgument")


def decode_raw(raw: Any) -> bytes:
    """Decode a base64url (padding optional) ``raw`` field."""
    if not isinstance(raw, str) or not raw:
        raise invalid_argument(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
        )
    text = raw.strip().replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise invalid_argument("Invalid value for ByteString: " + raw[:40]) from None


def encode_raw(data: bytes) -> str:
    """base64url without padding, as Gmail answers ``raw``."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _header(msg: Message, name: str) -> str:
    values = msg.get_all(name) or []
    out = []
    for value in values:
        try:
            out.append(str(make_header(decode_header(str(value)))))
        except (ValueError, LookupError, UnicodeDecodeError):
            out.append(str(value))
    return ", ".join(out)


def normalize_msgid(value: str) -> str:
    """A Message-ID without angle brackets or surrounding space, lower-cased."""
    return value.strip().strip("<>").strip().lower()


def _body_text(msg: Message) -> str:
    parts = msg.walk() if msg.is_multipart() else iter([msg])
    for part in parts:
        if part.get_content_maintype() == "text" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    return payload.decode(charset, errors="replace")
                except LookupError:
                    return payload.decode("utf-8", errors="replace")
    return ""


def parse_message(data: bytes) -> MessageMeta:
    """Parse RFC 2822 bytes with the stdlib ``email`` package."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    to, cc, bcc = (_header(msg, h) for h in ("To", "Cc", "Bcc"))
    to_addrs = [a for _, a in getaddresses(msg.get_all("To") or [])]
    others = [a for _, a in getaddresses((msg.get_all("Cc") or []) + (msg.get_all("Bcc") or []))]
    if msg.get_all("To"):
        valid = bool(to_addrs) and all(ADDRESS.match(a) for a in to_addrs)
    else:
        valid = any(ADDRESS.match(a) for a in others)
    body = _body_text(msg)
    subject = _header(msg, "Subject")
    return MessageMeta(
        parsed=msg,
        message_id=normalize_msgid(_header(msg, "Message-ID")),
        subject=subject,
        sender=_header(msg, "From"),
        to=to,
        cc=cc,
        bcc=bcc,
        text=" ".join([subject, to, cc, _header(msg, "From"), body]).lower(),
        snippet=" ".join(body.split())[:200],
        valid_recipients=valid,
    )


def _payload(msg: Message, part_id: str, only: set[str] | None = None) -> dict[str, Any]:
    headers = [
        {"name": k, "value": _header(msg, k)}
        for k in dict.fromkeys(msg.keys())
        if only is None or k.lower() in only
    ]
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": msg.get_content_type(),
        "filename": msg.get_filename() or "",
        "headers": headers,
    }
    if only is not None:
        return out
    if msg.is_multipart():
        subs = msg.get_payload()
        assert isinstance(subs, list)
        out["body"] = {"size": 0}
        out["parts"] = [
            _payload(sub, f"{part_id}.{i}" if part_id else str(i)) for i, sub in enumerate(subs)
        ]
    else:
        data = msg.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        out["body"] = {"size": len(data), "data": encode_raw(data)}
    return out


def store_message(
    state: SandboxState,
    box: Mailbox,
    data: bytes,
    meta: MessageMeta,
    label: str,
    thread_id: str | None = None,
) -> dict[str, Any]:
    """Store a message (``SENT`` or ``DRAFT``) in ``box``; answer ``{id, threadId, labelIds}``."""
    with state.lock:
        seq = state.next_sequence()
        message_id = f"{int(time.time() * 1000) & 0xFFFFFFFFFFF:011x}{seq & 0xFFFFF:05x}"
        if not meta.message_id and label == "SENT":
            header = f"Message-ID: <{message_id}.sandbox@mail.gmail.com>\r\n".encode()
            data = header + data
            meta = parse_message(data)
        if thread_id is None:
            thread_id = message_id
            reply_to = normalize_msgid(_header(meta.parsed, "In-Reply-To"))
            for other_id, other in box.meta.items():
                if reply_to and other.message_id == reply_to:
                    thread_id = box.messages[other_id]["threadId"]
                    break
        resource = {
            "id": message_id,
            "threadId": thread_id,
            "labelIds": [label],
            "snippet": meta.snippet,
            "sizeEstimate": len(data),
            "historyId": str(seq),
            "internalDate": str(int(time.time() * 1000)),
            "raw": encode_raw(data),
        }
        box.messages[message_id] = resource
        box.meta[message_id] = meta
        return {"id": message_id, "threadId": thread_id, "labelIds": [label]}


def format_message(
    state: SandboxState,
    box: Mailbox,
    message_id: str,
    fmt: str,
    metadata_headers: list[str] | None = None,
) -> dict[str, Any]:
    """A message of ``box`` in ``format`` minimal/full/raw/metadata."""
    with state.lock:
        resource = box.messages.get(message_id)
        if resource is None:
            raise gmail_not_found()
        meta: MessageMeta = box.meta[message_id]
        out = {k: v for k, v in resource.items() if k != "raw"}
    if fmt == "raw":
        out["raw"] = resource["raw"]
    elif fmt == "metadata":
        only = {h.lower() for h in metadata_headers} if metadata_headers else None
        payload = _payload(meta.parsed, "", only if only is not None else set())
        if only is None:
            payload["headers"] = _payload(meta.parsed, "")["headers"]
        out["payload"] = payload
    elif fmt == "full":
        out["payload"] = _payload(meta.parsed, "")
    return out


def _term(term: str, meta: MessageMeta, labels: list[str]) -> bool:
    if ":" in term and not term.startswith('"'):
        op, _, value = term.partition(":")
        op, value = op.lower(), value.strip('"').lower()
        if op == "rfc822msgid":
            return meta.message_id == normalize_msgid(value)
        if op in ("in", "label", "is"):
            wanted = {"drafts": "DRAFT", "draft": "DRAFT", "sent": "SENT"}.get(value, value.upper())
            return value == "anywhere" or wanted in labels
        fields = {
            "to": f"{meta.to} {meta.cc} {meta.bcc}",
            "from": meta.sender,
            "cc": meta.cc,
            "bcc": meta.bcc,
            "subject": meta.subject,
        }
        if op in fields:
            return value in fields[op].lower()
    return term.strip('"').lower() in meta.text


def matches(query: str, meta: MessageMeta, labels: list[str]) -> bool:
    """Whether a message matches a Gmail search ``query`` (terms ANDed)."""
    for term in TOKEN.findall(query or ""):
        if term in ("AND", "OR"):
            continue
        negate = term.startswith("-") and len(term) > 1
        if _term(term[1:] if negate else term, meta, labels) == negate:
            return False
    return True


def _page(items: list[Any], query: dict[str, Any], key: str) -> dict[str, Any]:
    token = str(query.get("pageToken") or "0")
    offset = int(token) if token.isdigit() else 0
    size = int(query.get("maxResults") or 100)
    out: dict[str, Any] = {}
    if items[offset : offset + size]:
        out[key] = items[offset : offset + size]
    if offset + size < len(items):
        out["nextPageToken"] = str(offset + size)
    out["resultSizeEstimate"] = len(items)
    return out


def messages_send(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.messages.send``."""
    body: dict[str, Any] = call.body or {}
    data = decode_raw(body.get("raw"))
    meta = parse_message(data)
    if not meta.valid_recipients:
        raise invalid_argument("Invalid To header")
    return store_message(state, _mailbox(state, call), data, meta, "SENT", body.get("threadId"))


def messages_list(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.messages.list`` with ``q`` and ``labelIds``."""
    labels_wanted = call.query.get("labelIds") or []
    found = []
    with state.lock:
        box = _mailbox(state, call)
        for message_id in reversed(box.messages):
            resource = box.messages[message_id]
            labels = resource["labelIds"]
            if not all(label in labels for label in labels_wanted):
                continue
            if not _searchable(state, call, resource):
                continue
            if matches(call.query.get("q", ""), box.meta[message_id], labels):
                found.append({"id": message_id, "threadId": resource["threadId"]})
    return _page(found, call.query, "messages")


def messages_get(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.messages.get`` (format minimal/full/raw/metadata)."""
    return format_message(
        state,
        _mailbox(state, call),
        call.params["id"],
        call.query.get("format", "full"),
        call.query.get("metadataHeaders"),
    )


def _draft_message(body: dict[str, Any]) -> tuple[bytes, MessageMeta]:
    message = body.get("message")
    if not isinstance(message, dict):
        raise invalid_argument("Missing draft message")
    data = decode_raw(message.get("raw"))
    return data, parse_message(data)


def drafts_create(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.drafts.create``: ``{id, message: {id, threadId, labelIds: [DRAFT]}}``."""
    body: dict[str, Any] = call.body or {}
    data, meta = _draft_message(body)
    thread = (body.get("message") or {}).get("threadId")
    with state.lock:
        box = _mailbox(state, call)
        stored = store_message(state, box, data, meta, "DRAFT", thread)
        draft_id = f"r{secrets.randbelow(9 * 10**18) + 10**18}"
        box.drafts[draft_id] = stored["id"]
    return {"id": draft_id, "message": stored}


def drafts_get(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.drafts.get``."""
    with state.lock:
        box = _mailbox(state, call)
        message_id = box.drafts.get(call.params["id"])
        if message_id is None:
            raise gmail_not_found()
        message = format_message(state, box, message_id, call.query.get("format", "full"))
    return {"id": call.params["id"], "message": message}


def drafts_list(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.drafts.list`` with ``q``."""
    found = []
    with state.lock:
        box = _mailbox(state, call)
        for draft_id in reversed(box.drafts):
            message_id = box.drafts[draft_id]
            resource = box.messages[message_id]
            meta = box.meta[message_id]
            if not _searchable(state, call, resource):
                continue
            if matches(call.query.get("q", ""), meta, resource["labelIds"]):
                message = {"id": message_id, "threadId": resource["threadId"]}
                found.append({"id": draft_id, "message": message})
    return _page(found, call.query, "drafts")


def drafts_send(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.drafts.send``: the draft is removed and a ``SENT`` message answered."""
    body: dict[str, Any] = call.body or {}
    draft_id = body.get("id")
    box = _mailbox(state, call)
    if not draft_id:
        data, meta = _draft_message(body)
        if not meta.valid_recipients:
            raise invalid_argument("Invalid To header")
        return store_message(state, box, data, meta, "SENT")
    with state.lock:
        message_id = box.drafts.get(str(draft_id))
        if message_id is None:
            raise gmail_not_found()
        if isinstance(body.get("message"), dict) and body["message"].get("raw"):
            data, meta = _draft_message(body)
        else:
            data = decode_raw(box.messages[message_id]["raw"])
            meta = box.meta[message_id]
        if not meta.valid_recipients:
            raise invalid_argument("Invalid To header")
        thread_id = box.messages[message_id]["threadId"]
        del box.drafts[str(draft_id)]
        del box.messages[message_id]
        del box.meta[message_id]
        return store_message(state, box, data, meta, "SENT", thread_id)


def drafts_delete(state: SandboxState, call: ApiCall) -> dict[str, Any]:
    """``gmail.users.drafts.delete``."""
    with state.lock:
        box = _mailbox(state, call)
        message_id = box.drafts.pop(call.params["id"], None)
        if message_id is None:
            raise gmail_not_found()
        box.messages.pop(message_id, None)
        box.meta.pop(message_id, None)
    return {}


HANDLERS: dict[str, Handler] = {
    "gmail.users.messages.send": messages_send,
    "gmail.users.messages.list": messages_list,
    "gmail.users.messages.get": messages_get,
    "gmail.users.drafts.create": drafts_create,
    "gmail.users.drafts.get": drafts_get,
    "gmail.users.drafts.list": drafts_list,
    "gmail.users.drafts.send": drafts_send,
    "gmail.users.drafts.delete": drafts_delete,
}
