"""Email bodies and RFC 2822 messages, built with the standard library's `email` package (pure).

Header values go through `email.headerregistry`, which RFC 2047-encodes non-ASCII text; values with
line breaks or encoded-words of their own are refused first, and every message is read back before
it leaves, so no field of a lead can add a header or a recipient.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime

PLACEHOLDER_TIME = "{meetingTime}"
PLACEHOLDER_LINK = "{meetLink}"


def fill_body(template: str, meeting_time: str, meet_link: str) -> str:
    """Replace the two placeholders the lead engine may use; nothing else is interpreted."""
    return template.replace(PLACEHOLDER_TIME, meeting_time).replace(PLACEHOLDER_LINK, meet_link)


def confirmation_text(body: str, meeting_time: str, meet_link: str) -> str:
    """The confirmation body; without placeholders in the template, the details are appended."""
    filled = fill_body(body, meeting_time, meet_link)
    if PLACEHOLDER_TIME not in body and PLACEHOLDER_LINK not in body:
        details = (
            f"When: {meeting_time}\nJoin: {meet_link}" if meet_link else f"When: {meeting_time}"
        )
        filled = f"{filled.rstrip()}\n\n{details}\n" if filled.strip() else details + "\n"
    return filled


def availability_text(lead_name: str, host_name: str, title: str) -> str:
    """The body of the draft that asks a lead for times when no slot was free."""
    greeting = f"Hi {lead_name}," if lead_name else "Hi,"
    sign = f"\n\nBest,\n{host_name}" if host_name else ""
    return (
        f"{greeting}\n\nI couldn't find a free time for our {title} among the times we had. "
        "Could you reply with two or three times that work for you over the next couple of weeks?"
        f"{sign}\n"
    )


def _address(display: str, email: str) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=display, username=local, domain=domain)


# An RFC 2047 encoded-word in a header *value* is decoded when `email` parses the value: a text
# like "=?utf-8?q?Hi=0D=0ABcc:_x@evil.test?=" would come back with a raw CR/LF (a new header), and
# an encoded display name can hold a second address. Such text is refused, never passed through.
ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?.*?\?=", re.DOTALL)  # =?charset?B|Q?text?=
_HEADERS = ("From", "To", "Subject", "Message-ID", "Date")


def header_text_problem(value: str) -> str | None:
    """Why `value` may not go into a header (line breaks, NUL, encoded-words), or None."""
    if "\r" in value or "\n" in value or "\x00" in value or len(value.splitlines()) > 1:
        return "header values must not contain line breaks or NUL"
    if ENCODED_WORD.search(value):
        return "header values must not contain RFC 2047 encoded-words (=?...?=)"
    return None


def build_message(
    *,
    sender: str,
    sender_name: str,
    to: str,
    to_name: str,
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """A plain-text message; raises ValueError if any header value would break the header block."""
    for value in (sender, sender_name, to, to_name, subject, message_id):
        problem = header_text_problem(value)
        if problem:
            raise ValueError(problem)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(sender_name, sender)
    msg["To"] = _address(to_name, to)
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(date)
    msg.set_content(body)
    _check_envelope(msg, sender, to)
    return msg


def _check_envelope(msg: EmailMessage, sender: str, to: str) -> None:
    """Read the message back as a receiver would: one sender, one recipient, no extra header."""
    parsed = message_from_bytes(msg.as_bytes(), policy=default)
    names = [name.lower() for name in parsed]
    for name in _HEADERS:
        if names.count(name.lower()) != 1:
            raise ValueError(f"the message must have exactly one {name} header")
    if any(n in names for n in ("cc", "bcc", "reply-to", "sender", "resent-to")):
        raise ValueError("the message must not carry other recipients")
    for name, address in (("From", sender), ("To", to)):
        found = [a.addr_spec.lower() for a in parsed[name].addresses]
        if found != [address.lower()]:
            raise ValueError(f"{name} must be exactly {address}")


def to_raw(msg: EmailMessage) -> str:
    """The base64url form Gmail's `raw` field takes."""
    return base64.urlsafe_b64encode(msg.as_bytes()).decode("ascii")
