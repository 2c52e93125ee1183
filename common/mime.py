"""Email bodies and RFC 2822 messages, built with the standard library's `email` package (pure).

Header values go through `email.headerregistry`, which RFC 2047-encodes non-ASCII text and refuses
CR/LF, so no field of a lead can add a header or a recipient.
"""

from __future__ import annotations

import base64
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
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
        if "\r" in value or "\n" in value:
            raise ValueError("header values must not contain line breaks")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(sender_name, sender)
    msg["To"] = _address(to_name, to)
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(date)
    msg.set_content(body)
    return msg


def to_raw(msg: EmailMessage) -> str:
    """The base64url form Gmail's `raw` field takes."""
    return base64.urlsafe_b64encode(msg.as_bytes()).decode("ascii")
