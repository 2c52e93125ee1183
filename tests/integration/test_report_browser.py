"""`leadrun report` opened in a real browser: Debian's chromium, driven by Playwright.

CI (`.ci/run`) installs chromium first, so this always runs there, and fails there if chromium is
missing (CI is set); on a developer's machine without it the test is skipped with a message that
says plainly that it did not run.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadrun import cli
from leadrun.client import LeadRunClient
from leadrun.leads import parse_slot, today_in
from tests.support import receipt_doc, unique

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium; without it, a failure in CI and elsewhere a plain "did not run"."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail("chromium not installed in CI: .ci/run must install it first")
        pytest.skip("chromium not installed: the browser test did not run")
    return path


def test_report_renders_the_funnel_and_links_in_chromium(
    stack_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    env_file = tmp_path / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in stack_env.items()))
    operator = LeadRunClient(stack_env, uid="operator")
    run_id, host = unique("report"), f"{unique('host')}@example.com"
    zone = ZoneInfo("America/New_York")
    # The last lead's whole fallback window is busy: no slot, an availability draft instead.
    blocked = parse_slot("+8d00:00/+15d00:00", today_in(zone, datetime.now(UTC)), zone)
    operator.sandbox.busy(host, blocked["start"], blocked["end"])
    leads = {
        "host": {"calendarId": host, "senderEmail": host, "timeZone": "America/New_York"},
        "meeting": {"title": "Intro call", "durationMinutes": 30},
        "stages": {"sourced": 9, "filtered": 4, "filterReasons": {"duplicate": 4}},
        "leads": [
            {"leadDocId": "p-1", "email": "p1@acme.test", "name": "Ana <b>Silva</b>",
             "company": "Acme", "candidateSlots": ["+2d10:00/30m"]},
            {"leadDocId": "p-2", "email": "p2@acme.test", "name": "Ben",
             "candidateSlots": ["+2d10:30/30m"]},
            {"leadDocId": "p-3", "email": "p3@acme.test", "name": "Cy",
             "candidateSlots": ["+2d11:00/30m"]},
            {"leadDocId": "p-4", "email": None, "name": "No Mail",
             "candidateSlots": ["+2d11:30/30m"]},
            {"leadDocId": "p-5", "email": "p5@acme.test", "name": "Late",
             "candidateSlots": ["+8d14:00/30m"]},
        ],
    }  # fmt: skip
    leads_file = tmp_path / "leads.json"
    leads_file.write_text(json.dumps(leads))
    argv = ["--env", str(env_file)]
    assert cli.main(["run", str(leads_file), "--run-id", run_id, "--timeout", "120", *argv]) == 0
    report = tmp_path / "report.html"
    assert cli.main(["report", run_id, "--out", str(report), *argv]) == 0
    capsys.readouterr()
    funnel = operator.diagnostics(run_id).json()["counts"]
    assert (funnel["booked"], funnel["noSlot"], funnel["drafted"], funnel["rejected"]) == (
        3,
        1,
        1,
        1,
    )
    calendar = receipt_doc(operator.store, run_id, "p-1", "calendar")["external"]
    folder = receipt_doc(operator.store, run_id, "p-1", "drive")["external"]["webViewLink"]

    fetched: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})

            def record(route, request) -> None:  # type: ignore[no-untyped-def]
                if not request.url.startswith(("file:", "data:", "about:")):
                    fetched.append(request.url)
                    route.abort()
                else:
                    route.continue_()

            page.route("**/*", record)
            page.goto(report.as_uri())
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)

            def count(stage: str) -> int:
                return int(
                    page.locator(f'svg.funnel [data-count-for="{stage}"]').text_content() or ""
                )

            assert page.locator("svg.funnel").is_visible()
            assert page.locator("svg.funnel rect.bar").count() >= 8
            assert {
                stage: count(stage)
                for stage in ("sourced", "filtered", "submitted", "accepted", "rejected",
                              "booked", "noSlot", "sent", "drafted", "foldersCreated")
            } == {
                "sourced": 9, "filtered": 4, "submitted": 5, "accepted": funnel["accepted"],
                "rejected": funnel["rejected"], "booked": funnel["booked"],
                "noSlot": funnel["noSlot"], "sent": funnel["sent"],
                "drafted": funnel["drafted"], "foldersCreated": funnel["foldersCreated"],
            }  # fmt: skip

            row = page.locator('tr[data-lead="p-1"]')
            assert "Ana <b>Silva</b>" in row.inner_text()  # shown as text, not markup
            assert row.locator('a[data-link="event"]').get_attribute("href") == calendar["htmlLink"]
            assert row.locator('a[data-link="meet"]').get_attribute("href") == calendar["meetLink"]
            assert row.locator('a[data-link="folder"]').get_attribute("href") == folder
            late = page.locator('tr[data-lead="p-5"]')
            assert "no_slot" in late.inner_text() and "drafted" in late.inner_text()
            assert page.locator('tr[data-lead="p-4"]').locator("a").count() == 0
            assert "no_email" in page.locator("section.rejections").inner_text()
        finally:
            browser.close()
    assert fetched == [], f"the report fetched external assets: {fetched}"
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
