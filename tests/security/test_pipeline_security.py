"""End to end on the local stack: no header smuggled into an email, a dry run's mode belongs to the
run (not to the message), and CORS as the browser meets it."""

from __future__ import annotations

import base64
import json
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

import pytest
import requests
from google.cloud import pubsub_v1

from common.handlers.intake import plan_intake
from common.models import ScheduleRequest
from leadrun.client import LeadRunClient
from tests.support import decode_raw, lead, next_weekday, of_run, request, slot, unique

pytestmark = pytest.mark.integration

LEAD_NAME = 'Zoë "The Boss" <admin@evil.test>, O\'Brien; Bcc: spy@evil.test'
HOST_NAME = 'Hana "Host", Ltd. <ceo@evil.test>'
SUBJECT = "Réunion \"quoted\" <b>, Bcc: spy@evil.test; 'single' \\ back =? ?= 100%"
BODY = "Hi {meetingTime}\nBcc: spy@evil.test\n\nTo: spy@evil.test\nJoin: {meetLink}"
HEADERS = {"From", "To", "Subject", "Message-ID", "Date"}
MIME_HEADERS = {"MIME-Version", "Content-Type", "Content-Transfer-Encoding"}


def _message_bytes(raw: str) -> bytes:
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def _header_block(raw: str) -> bytes:
    return _message_bytes(raw).split(b"\r\n\r\n", 1)[0]


def _decoded(value: Any) -> str:
    return str(make_header(decode_header(str(value))))


def test_names_and_subjects_cannot_add_a_header_or_a_recipient(client: LeadRunClient) -> None:
    run_id = unique("inject")
    to = f"{unique('zoe')}@acme.test"
    the_lead = lead(
        "zoe",
        [slot(next_weekday(3, hour=16))],
        email=to,
        name=LEAD_NAME,
        company='O\'Reilly & "Sons" \\ <x>',
        emailSubject=SUBJECT,
        emailBody=BODY,
    )
    body = request(run_id, [the_lead])
    body["host"]["name"] = HOST_NAME
    host = body["host"]["senderEmail"]
    answer = client.schedule(body)
    assert answer.status_code == 202, answer.text
    client.wait_settled(run_id, timeout_s=60)

    messages = of_run(client.sandbox.state(), run_id, host)["messages"]
    assert len(messages) == 1
    raw = messages[0]["raw"]
    parsed: EmailMessage = decode_raw(raw)
    assert set(parsed.keys()) - MIME_HEADERS == HEADERS
    for name in HEADERS:
        assert len(parsed.get_all(name) or []) == 1, name
    assert [a.addr_spec for a in parsed["To"].addresses] == [to]
    assert [a.addr_spec for a in parsed["From"].addresses] == [host]
    # Names and subject arrive intact, read by an RFC 2047 decoder that joins adjacent
    # encoded-words (the modern parser of `email` leaves a space where a long name was folded).
    legacy = BytesParser(policy=compat32).parsebytes(_message_bytes(raw))
    for header, name, address in (("To", LEAD_NAME, to), ("From", HOST_NAME, host)):
        pairs = getaddresses([str(legacy[header])])  # still encoded: one pair, or an injection
        assert [(_decoded(n), a) for n, a in pairs] == [(name, address)], header
    assert _decoded(legacy["Subject"]) == SUBJECT
    assert "Bcc: spy@evil.test" in parsed.get_content()  # the body says it; no header does
    block = _header_block(raw)
    assert block.isascii()  # non-ASCII only as RFC 2047 encoded-words
    assert b"\nBcc" not in block and b"\nCc" not in block


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        ("name", "Ana\r\nBcc: spy@evil.test", "leads[0].name"),
        ("emailSubject", "Hi\r\nBcc: spy@evil.test", "leads[0].emailSubject"),
        ("name", "Ana\nTo: spy@evil.test", "leads[0].name"),
        ("emailSubject", "=?utf-8?q?Hi=0D=0ABcc:_spy@evil.test?=", "leads[0].emailSubject"),
        ("name", "=?utf-8?b?QW5hIDxzcHlAZXZpbC50ZXN0Piwgbw==?=", "leads[0].name"),
    ],
)
def test_line_breaks_in_header_fields_are_400_over_http(
    client: LeadRunClient, where: str, value: str, field: str
) -> None:
    run_id = unique("crlf")
    body = request(run_id, [lead("ana", [slot(next_weekday(3))], **{where: value})])
    answer = client.schedule(body)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("application/json")
    assert field in [d["field"] for d in answer.json()["error"]["details"]]
    assert client.store.get_run(run_id) is None


def test_a_message_cannot_turn_a_dry_run_live(
    client: LeadRunClient, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages claiming `dryRun: false` for a dry-run run: the run decides, nothing is written."""
    run_id = unique("dryforge")
    to = f"{unique('forged')}@acme.test"
    body = request(
        run_id,
        [lead("forged", [slot(next_weekday(4, hour=17))], email=to, name="Forged Lead")],
        dryRun=True,
    )
    host = body["host"]["senderEmail"]
    # Record the run and its lead as intake would, but publish nothing: only our messages exist.
    parsed = ScheduleRequest.model_validate(body, strict=False)
    store = client.store
    store.open_run(run_id, "alice", True)
    plan = plan_intake(store, parsed)
    store.write_intake(plan.commits)

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", stack_env["PUBSUB_EMULATOR_HOST"])
    publisher = pubsub_v1.PublisherClient()
    project = stack_env["GOOGLE_CLOUD_PROJECT"]
    for action, topic in (("calendar", "lead-calendar"), ("drive", "lead-drive")):
        data: dict[str, Any] = {
            "runId": run_id,
            "leadDocId": "forged",
            "action": action,
            "dryRun": False,
            "live": True,
        }
        publisher.publish(
            publisher.topic_path(project, topic),
            json.dumps(data).encode(),
            runId=run_id,
            leadDocId="forged",
            action=action,
            dryRun="false",
        ).result(timeout=30)

    client.wait_settled(run_id, timeout_s=60)
    receipts = {action: r for _, _, rs in client.receipts(run_id) for action, r in rs.items()}
    assert {a: (r["status"], r["dryRun"]) for a, r in receipts.items()} == {
        "calendar": ("simulated", True),
        "email": ("simulated", True),
        "drive": ("simulated", True),
    }
    state = client.sandbox.state()
    assert of_run(state, run_id, host) == {"events": [], "messages": [], "drafts": []}
    assert not [e for e in state["events"] if to in json.dumps(e.get("attendees", []))]
    assert not [f for f in state["folders"] if "Forged Lead" in f.get("name", "")]


def test_cors_on_the_deployed_functions(client: LeadRunClient) -> None:
    """The test stack allows https://app.example.com (tests/conftest.py)."""
    for url, method in (
        (client.env["SCHEDULE_URL"], "POST"),
        (client.env["DIAGNOSTICS_URL"], "GET"),
    ):
        ok = requests.options(
            url,
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization,content-type",
            },
            timeout=30,
        )
        assert ok.status_code == 204
        assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert method in ok.headers["Access-Control-Allow-Methods"]
        assert "*" not in "".join(
            v for k, v in ok.headers.items() if k.lower().startswith("access")
        )
        refused = requests.options(
            url,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": method},
            timeout=30,
        )
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
