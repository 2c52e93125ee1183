"""The operator's views of a run: lead rows from receipts, and the HTML report (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from leadrun.report import funnel_stages, render_report
from leadrun.views import build_view, tally

FUNNEL = {
    "runId": "run-1",
    "dryRun": False,
    "counts": {
        "sourced": 10,
        "filtered": 4,
        "accepted": 2,
        "rejected": 1,
        "booked": 1,
        "noSlot": 1,
        "sent": 1,
        "drafted": 1,
        "foldersCreated": 1,
        "simulated": 0,
        "pending": 0,
        "failed": 1,
    },
    "reasons": {"no_email": 3, "no_slot": 1, "permanent_error": 1},
    "filterReasons": {"duplicate": 4},
    "updatedAt": "2026-11-26T15:00:00+00:00",
}


def receipt(action: str, status: str, outcome: str | None = None, **fields: object) -> dict:
    return {"action": action, "status": status, "outcome": outcome, "dryRun": False, **fields}


ROWS = [
    (
        "good",
        {"status": "accepted", "lead": {"name": "<script>alert(1)</script>", "email": "g@a.test"}},
        {
            "calendar": receipt(
                "calendar",
                "done",
                "booked",
                external={
                    "htmlLink": "https://www.google.com/calendar/event?eid=abc",
                    "meetLink": "https://meet.google.com/abc-defg-hij",
                    "start": "2026-11-30T09:00:00-05:00",
                    "expanded": True,
                },
            ),
            "email": receipt("email", "done", "sent"),
            "drive": receipt(
                "drive", "done", "created", external={"webViewLink": "javascript:alert(1)"}
            ),
        },
    ),
    (
        "late",
        {"status": "accepted", "lead": {"name": "Late", "email": "l@a.test"}},
        {
            "calendar": receipt("calendar", "done", "no_slot", reason="no_slot"),
            "email": receipt("email", "done", "drafted"),
            "drive": receipt(
                "drive",
                "failed",
                reason="permanent_error",
                error={"code": "400", "message": "bad parent"},
            ),
        },
    ),
    (
        "nomail",
        {"status": "rejected", "reason": "no_email", "lead": {"name": "N"}},
        {a: receipt(a, "rejected", reason="no_email") for a in ("calendar", "email", "drive")},
    ),
]


def test_rows_summarise_each_lead() -> None:
    view = build_view(FUNNEL, ROWS)
    good, late, nomail = view.leads
    assert good.status == "done" and good.outcome == "booked · sent · created"
    assert good.expanded and good.links.meet == "https://meet.google.com/abc-defg-hij"
    assert late.status == "failed" and late.reason == "no_slot"
    assert nomail.status == "rejected" and nomail.reason == "no_email"
    assert view.lead_reasons() == {"no_email": 1}
    assert view.failures() == [("late", "drive", "permanent_error", "bad parent")]
    assert view.to_json()["counts"] == FUNNEL["counts"]
    assert tally(ROWS) == (9, 9, tally(ROWS)[2])
    assert tally(ROWS)[2]["rejected"] == 3


def test_funnel_stages_follow_the_pipeline() -> None:
    stages = funnel_stages(build_view(FUNNEL, ROWS))
    assert [s.key for s in stages] == [
        "sourced",
        "filtered",
        "submitted",
        "accepted",
        "meetings",
        "emails",
        "folders",
    ]
    assert [(seg.key, seg.value) for seg in stages[4].segments] == [("booked", 1), ("noSlot", 1)]


def test_report_is_self_contained_and_escapes_lead_data() -> None:
    page = render_report(build_view(FUNNEL, ROWS), datetime(2026, 11, 26, tzinfo=UTC))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "javascript:" not in page  # an unsafe stored link is not rendered as a link
    assert 'href="https://meet.google.com/abc-defg-hij"' in page
    assert "<svg" in page and 'data-count-for="booked"' in page
    # Nothing to fetch: no external stylesheets, scripts, images or fonts.
    for marker in ("<link", "<script", "<img", "@import", "url("):
        assert marker not in page
