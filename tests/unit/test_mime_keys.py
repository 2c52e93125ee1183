"""Messages built with the standard library: no field can add a header or a recipient."""

import base64
import email
from datetime import UTC, datetime
from email.policy import default

import pytest

from common import keys, mime

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _build(**overrides: str) -> email.message.EmailMessage:
    fields = dict(
        sender="host@example.com",
        sender_name="Hana Host",
        to="ana@acme.test",
        to_name="Ana Silva",
        subject="Our call",
        body="Hi",
        message_id="<a.b@example.com>",
    )
    fields.update(overrides)
    msg = mime.build_message(date=NOW, **fields)
    raw = base64.urlsafe_b64decode(mime.to_raw(msg))
    return email.message_from_bytes(raw, policy=default)  # type: ignore[return-value]


def test_message_round_trips_through_raw() -> None:
    parsed = _build()
    assert parsed["To"] == "Ana Silva <ana@acme.test>"
    assert parsed["Message-ID"] == "<a.b@example.com>"
    assert parsed.get_content().strip() == "Hi"


@pytest.mark.parametrize("field", ["subject", "to_name", "sender_name", "to"])
def test_line_breaks_in_header_fields_are_refused(field: str) -> None:
    with pytest.raises(ValueError):
        _build(**{field: "x\r\nBcc: evil@attacker.test"})


def test_non_ascii_names_are_encoded_not_injected() -> None:
    parsed = _build(to_name='José "Zé" Ñ', subject="Reunião ☕")
    assert parsed["Subject"] == "Reunião ☕"
    assert parsed["To"].addresses[0].display_name == 'José "Zé" Ñ'
    assert parsed.get_all("Bcc") is None


def test_confirmation_fills_placeholders() -> None:
    text = mime.confirmation_text(
        "See you {meetingTime}. Join: {meetLink}", "Tue 1 Dec", "https://m"
    )
    assert text == "See you Tue 1 Dec. Join: https://m"


def test_confirmation_appends_details_without_placeholders() -> None:
    text = mime.confirmation_text("Hello Ana", "Tue 1 Dec", "https://m")
    assert "When: Tue 1 Dec" in text and "Join: https://m" in text


def test_event_id_is_base32hex_and_deterministic() -> None:
    first = keys.event_id("run-1", "lead-1")
    assert first == keys.event_id("run-1", "lead-1")
    assert first != keys.event_id("run-1", "lead-2")
    assert 5 <= len(first) <= 1024 and set(first) <= set("0123456789abcdefghijklmnopqrstuv")


def test_dry_and_live_runs_hold_slots_in_different_scopes() -> None:
    assert keys.calendar_key("h@x", "r", True) != keys.calendar_key("h@x", "r", False)
    assert keys.calendar_key("h@x", "r1", False) == keys.calendar_key("h@x", "r2", False)


def test_message_id_header_uses_sender_domain() -> None:
    assert keys.message_id_header("r", "l", "confirmation", "host@example.com").endswith(
        "@example.com>"
    )
