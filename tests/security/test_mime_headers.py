"""MIME building (common/mime.py): hostile names and subjects cannot add a header or a recipient."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest

from common.mime import build_message
from common.models import valid_email

SENDER, TO = "host@example.com", "ana@acme.test"
HEADERS = ("From", "To", "Subject", "Message-ID", "Date")
MIME_HEADERS = ("Content-Type", "Content-Transfer-Encoding", "MIME-Version")


def _build(**fields: str) -> bytes:
    values = {"sender_name": "Hana", "to_name": "Ana", "subject": "Our call"} | fields
    msg = build_message(
        sender=SENDER,
        to=TO,
        body="Hi\r\nBcc: spy@evil.test\n",
        message_id="<m-1@leadrun>",
        date=datetime(2026, 12, 1, tzinfo=UTC),
        **values,
    )
    return msg.as_bytes()


@pytest.mark.parametrize(
    "fields",
    [
        {"to_name": "Ana\r\nBcc: spy@evil.test"},
        {"to_name": "Ana\nBcc: spy@evil.test"},
        {"subject": "Hi\r\nBcc: spy@evil.test"},
        {"subject": "Hi\rBcc: spy@evil.test"},
        {"subject": "Hi\u2028Bcc: spy@evil.test"},
        {"sender_name": "Hana\x00"},
        # Encoded-words are decoded when the header is parsed: CR/LF and addresses in disguise.
        {"subject": "=?utf-8?q?Hi=0D=0ABcc:_spy@evil.test?="},
        {"to_name": "=?utf-8?q?Ana=0D=0ABcc:_spy@evil.test?="},
        {"to_name": "=?utf-8?b?QW5hIDxzcHlAZXZpbC50ZXN0Piwgbw==?="},
    ],
)
def test_smuggling_attempts_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="header values"):
        _build(**fields)


@pytest.mark.parametrize(
    "name",
    [
        'Ana "The Boss" Silva',
        "O'Brien, Ana; <spy@evil.test>",
        "Zoë Ñandú 山田 😀",
        "Ana (comment) <spy@evil.test>, Bob <bob@evil.test>",
        "=? not an encoded word",
        "x" * 200,
    ],
)
def test_odd_names_stay_one_display_name_of_one_recipient(name: str) -> None:
    parsed = message_from_bytes(_build(to_name=name, subject=name[:250]), policy=default)
    assert [a.addr_spec for a in parsed["To"].addresses] == [TO]
    assert [a.addr_spec for a in parsed["From"].addresses] == [SENDER]
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert sorted(parsed.keys()) == sorted([*HEADERS, *MIME_HEADERS])
    assert "Bcc: spy@evil.test" in parsed.get_content()


def test_addresses_with_encoded_words_are_not_valid() -> None:
    with pytest.raises(ValueError):
        valid_email("=?utf-8?q?a=0D=0ABcc:_x?=@acme.test")
    assert valid_email("ana+tag@acme.test") == "ana+tag@acme.test"
