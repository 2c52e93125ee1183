"""The operator's views of a run: lead rows from receipts, and the HTML report (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from leadrun.report import funnel_stages, render_report
from leadrun.terminal import reasons_line
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
    # Leads per reason (docs/api.md, "Diagnostics"): "nomail" below has three no_email receipts,
    # one lead.
    "reasons": {"no_email": 1, "no_slot": 1, "permanent_error": 1},
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


def test_reasons_count_leads_not_receipts() -> None:
    """A lead rejected for no_email with three actions counts once (docs/api.md, "Diagnostics")."""
    view = build_view(FUNNEL, ROWS)
    assert view.reason_leads() == {"no_email": 1, "no_slot": 1, "permanent_error": 1}
    by_status = view.reasons_by_status()
    assert by_status["rejected"] == {"no_email": 1}
    assert by_status["failed"] == {"permanent_error": 1}
    assert by_status["other"] == {"no_slot": 1}
    assert reasons_line(view) == "reasons (leads): no_email 1, no_slot 1, permanent_error 1"

    page = render_report(view, datetime(2026, 11, 26, tzinfo=UTC))
    reasons = page.split('class="card reasons"', 1)[1].split("</section>", 1)[0]
    assert '<th class="n">leads</th>' in reasons
    assert (
        '<tr data-reason="no_email"><td><code>no_email</code></td><td class="n">1</td></tr>'
        in reasons
    )


def test_a_reason_counts_once_per_lead_across_statuses() -> None:
    """Two receipts of one lead with the same reason, one failed and one done: still one lead."""
    rows = [
        (
            "meet",
            {"status": "accepted", "lead": {"name": "M", "email": "m@a.test"}},
            {
                "calendar": receipt("calendar", "failed", reason="meet_failed"),
                "email": receipt("email", "done", "drafted", reason="meet_failed"),
            },
        )
    ]
    view = build_view({**FUNNEL, "reasons": {"meet_failed": 1}}, rows)
    assert view.reason_leads() == {"meet_failed": 1}
    assert view.reasons_by_status()["failed"] == {"meet_failed": 1}
    assert view.reasons_by_status()["other"] == {"meet_failed": 1}


def test_a_waiting_lead_shows_when_it_resumes_and_is_not_settled() -> None:
    until = "2026-12-02T01:30:00.000Z"
    waiting = {"reason": "rate_limit", "api": "gmail", "until": until}
    rows = [
        (
            "slow",
            {"status": "accepted", "lead": {"name": "Slow"}},
            {
                "calendar": receipt("calendar", "done", "booked"),
                "email": receipt("email", "pending", waiting=waiting),
            },
        )
    ]
    funnel = {**FUNNEL, "counts": {**FUNNEL["counts"], "pending": 1, "waiting": 1}}
    view = build_view({**funnel, "waitingUntil": until}, rows)
    (row,) = view.leads
    assert (row.status, row.reason, row.waiting_until) == ("waiting", "gmail rate_limit", until)
    total, done, buckets = tally(rows)
    assert (total, done, buckets["waiting"]) == (2, 1, 1)  # a waiting receipt is not settled
    html = render_report(view)
    assert "1 waiting for Google's limits, resume by 2026-12-02 01:30 +0000" in html
    assert "gmail rate_limit · resumes 2026-12-02 01:30 +0000" in html
    assert view.to_json()["waitingUntil"] == until
