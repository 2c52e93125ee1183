"""The Operations page (`GET {DIAGNOSTICS_URL}ops`) in a real browser: Debian's chromium, driven
by Playwright, on the local stack.

Signed in with a uid (the sandbox's token), the page follows a paced run live: its counts are
the diagnostics answer's and move without a reload; Pause holds the run (the sandbox gains nothing
beyond the answer's `inFlight`), Resume lets it settle; the `no_slot` filter shows exactly those
leads; paging lists every lead once. Another user sees a 403 in words and no data. The page loads
nothing from outside the stack: every request to another origin is refused and fails the test.
Screenshots at 375 and 1440 px wide are kept under `.leadrun/` (not committed).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from leadrun.client import LeadRunClient
from tests.integration.test_report_browser import CHROMIUM_ARGS, chromium_path
from tests.support import free_leads, iso, lead, next_weekday, of_run, request, slot, unique

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SHOTS = Path(__file__).resolve().parents[2] / ".leadrun"
FREE, FULL = 50, 10  # leads with a free slot, and leads whose only slot is busy (no_slot)
QUIET_S = 5  # how long after Pause the sandbox is watched for anything more
WAIT_MS = 15_000


def _origin(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Any, stack_env: dict[str, str]) -> Iterator[Callable[..., Any]]:
    """A page of the stack's own origins only: any other request is refused and recorded."""
    allowed = {_origin(stack_env["DIAGNOSTICS_URL"]), _origin(stack_env["CONTROL_URL"])}
    elsewhere: list[str] = []
    contexts: list[Any] = []

    def opened(width: int = 1440) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 1000})
        contexts.append(context)
        page = context.new_page()

        def guard(route: Any, req: Any) -> None:
            if _origin(req.url) in allowed:
                route.continue_()
            else:
                elsewhere.append(req.url)
                route.abort()

        page.route("**/*", guard)
        return page

    yield opened
    for context in contexts:
        context.close()
    assert elsewhere == [], f"the page asked for something outside the stack: {elsewhere}"


def sign_in(page: Any, stack_env: dict[str, str], uid: str, run_id: str | None = None) -> None:
    url = stack_env["DIAGNOSTICS_URL"] + "ops" + (f"?runId={run_id}" if run_id else "")
    page.goto(url)
    page.get_by_test_id("signin-uid").fill(uid)
    page.get_by_test_id("signin-submit").click()
    page.get_by_text(f"Signed in as {uid}").wait_for(timeout=WAIT_MS)


def page_counts(page: Any) -> dict[str, int]:
    found = page.eval_on_selector_all(
        '[data-testid^="count-"]',
        "nodes => nodes.map(n => [n.dataset.testid.slice(6), n.textContent])",
    )
    return {key: int(value) for key, value in found}


def counts_match(page: Any, client: LeadRunClient, run_id: str, timeout_s: float = 8) -> None:
    """The page's `count-*` equal the diagnostics answer (both read again until they do)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown, answer = page_counts(page), client.diagnostics(run_id).json()["counts"]
        if shown == answer or time.monotonic() > deadline:
            assert shown == answer
            return
        time.sleep(0.3)


def until(check: Callable[[], bool], timeout_s: float = WAIT_MS / 1000) -> None:
    """Wait until `check()` holds (polled from here: the page's CSP refuses Playwright's eval)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def text_of(page: Any, test_id: str) -> str:
    return str(page.get_by_test_id(test_id).text_content() or "")


def shown_rows(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        '[data-testid^="lead-row-"]', "rows => rows.map(r => r.dataset.testid.slice(9))"
    )
    return ids


def wait_rows(page: Any, expected: list[str]) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while shown_rows(page) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shown_rows(page) == expected


def made(client: LeadRunClient, run_id: str, host: str) -> dict[str, set[str]]:
    state = client.sandbox.state()
    mine = of_run(state, run_id, host)
    return {
        "calendar": {e["id"] for e in mine["events"]},
        "email": {m["id"] for m in mine["messages"]} | {d["id"] for d in mine["drafts"]},
        "drive": {f["id"] for f in state["folders"] if f.get("user") == host},
    }


def mixed_request(run_id: str) -> tuple[dict[str, Any], list[str]]:
    """FREE leads that book, FULL whose slot is taken (no_slot, an availability draft)."""
    busy_day = next_weekday(5, hour=9)
    leads = free_leads(FREE)
    full = [f"full-{i:02d}" for i in range(FULL)]
    leads += [
        lead(lead_id, [slot(busy_day + timedelta(minutes=30 * i))])
        for i, lead_id in enumerate(full)
    ]
    body = request(run_id, leads)
    body["fallback"] = {"expandDays": 0, "draftIfNoSlot": True}
    return body, full


def test_the_page_follows_and_steers_a_paced_run(
    client: LeadRunClient, stack_env: dict[str, str], open_page: Callable[..., Any]
) -> None:
    run_id = unique("ops")
    body, full = mixed_request(run_id)
    host = body["host"]["calendarId"]
    busy_day = next_weekday(5, hour=9)
    client.sandbox.busy(host, iso(busy_day), iso(busy_day + timedelta(hours=8)))
    page = open_page(1440)
    sign_in(page, stack_env, "alice")
    assert client.schedule(body).status_code == 202
    page.get_by_test_id("run-id").fill(run_id)
    page.get_by_test_id("run-open").click()
    page.get_by_test_id("count-accepted").wait_for(timeout=WAIT_MS)
    page.evaluate("window.notReloaded = true")

    # Pause while the run is under way: the page says paused, the sandbox holds still.
    with page.expect_response(
        lambda r: r.url.startswith(stack_env["CONTROL_URL"]) and r.request.method == "POST"
    ) as answered:
        page.get_by_role("button", name="Pause", exact=True).click()
    paused = answered.value.json()
    assert answered.value.status == 200 and paused["state"] == "paused", paused
    before = made(client, run_id, host)
    until(lambda: text_of(page, "run-state") == "paused")
    assert "affected" in page.locator("#steer-result").inner_text()
    time.sleep(QUIET_S)
    after = made(client, run_id, host)
    flying = Counter(entry["action"] for entry in paused["inFlight"])
    for kind in before:
        assert len(after[kind] - before[kind]) <= flying[kind], (kind, paused["inFlight"])
    counts_match(page, client, run_id)
    held = page_counts(page)["pending"]
    assert held > 0, "the run ended before the pause: nothing to hold"

    # Resume: the counts move on without a reload (whichever actions the pause held: sends,
    # drafts or folders), and the run settles.
    page.get_by_role("button", name="Resume", exact=True).click()
    until(lambda: int(text_of(page, "count-pending")) < held)
    funnel = client.wait_settled(run_id, timeout_s=60)
    assert (funnel["counts"]["booked"], funnel["counts"]["noSlot"]) == (FREE, FULL)
    counts_match(page, client, run_id)
    assert page.evaluate("window.notReloaded") is True
    until(lambda: text_of(page, "run-state") == "active")

    # Keyboard focus in the leads table stays where it was when a refresh redraws the rows: a
    # lead added to the run (first in id order) changes the page shown.
    link = page.locator("#leads tr[data-lead] a").first
    link.wait_for(timeout=WAIT_MS)
    focused_lead = link.evaluate("a => a.closest('tr').dataset.lead")
    link.focus()
    redraws = "window.redraws = 0; new MutationObserver(() => window.redraws++)"
    page.evaluate(redraws + ".observe(document.getElementById('leads'), {childList: true})")
    # After the busy hours of the busy day: free whatever weekday the test runs on.
    late = lead("aaa-late", [slot(busy_day + timedelta(hours=9))])
    assert client.schedule({**body, "leads": [late]}).status_code == 202
    page.get_by_test_id("lead-row-aaa-late").wait_for(timeout=WAIT_MS)  # waits through Playwright
    assert page.evaluate("window.redraws") > 0
    where = (
        "document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.lead"
    )
    assert page.evaluate(where) == focused_lead
    client.wait_settled(run_id, timeout_s=60)

    # Filter to no_slot: exactly those leads.
    page.get_by_test_id("filter-reason").select_option("no_slot")
    wait_rows(page, full)
    assert "no_slot" in page.get_by_test_id(f"lead-row-{full[0]}").inner_text()
    page.get_by_test_id("filter-reason").select_option("")

    # Every lead once, page by page.
    everyone = sorted([entry["leadDocId"] for entry in body["leads"]] + ["aaa-late"])
    wait_rows(page, everyone[:25])
    seen: list[str] = []
    for number in range(1, 10):
        until(lambda n=number: page.locator("#page-no").text_content() == f"Page {n}")
        rows = shown_rows(page)
        assert rows, "an empty page"
        seen += rows
        following = page.get_by_test_id("next-page")
        if following.is_disabled():
            break
        following.click()
    assert seen == everyone
    booked = page.get_by_test_id(f"lead-row-{everyone[-1]}")
    assert booked.locator('a[data-link="event"]').count() == 1
    assert booked.locator('a[data-link="folder"]').count() == 1
    assert "(Europe/Lisbon)" in booked.inner_text()

    SHOTS.mkdir(exist_ok=True)
    page.get_by_test_id("next-page").focus()
    page.screenshot(path=str(SHOTS / "ops-page-1440.png"), full_page=True)
    narrow = open_page(375)
    sign_in(narrow, stack_env, "alice", run_id)
    narrow.get_by_test_id(f"lead-row-{everyone[0]}").wait_for(timeout=WAIT_MS)
    width = narrow.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, f"the page is {width} px wide at 375"
    narrow.screenshot(path=str(SHOTS / "ops-page-375.png"), full_page=True)


def test_another_user_sees_a_403_in_words_and_no_data(
    client: LeadRunClient, stack_env: dict[str, str], open_page: Callable[..., Any]
) -> None:
    run_id = unique("ops-own")
    assert client.schedule(request(run_id, free_leads(2))).status_code == 202
    page = open_page(1440)
    sign_in(page, stack_env, "mallory", run_id)
    error = page.get_by_test_id("error")
    error.wait_for(timeout=WAIT_MS)
    assert "belongs to another user" in error.inner_text()
    assert page.locator('[data-testid^="count-"]').count() == 0
    assert page.locator('[data-testid^="lead-row-"]').count() == 0
    assert page.get_by_test_id("run-state").is_hidden()

    page.get_by_test_id("run-id").fill("no-such-run-here")
    page.get_by_test_id("run-open").click()
    until(lambda: "no run called" in text_of(page, "error"))


def test_undo_shows_its_preview_then_reverts_what_the_run_made(
    client: LeadRunClient, stack_env: dict[str, str], open_page: Callable[..., Any]
) -> None:
    run_id, leads = unique("ops-undo"), 4
    assert client.schedule(request(run_id, free_leads(leads))).status_code == 202
    client.wait_settled(run_id, timeout_s=60)
    preview = client.session.post(
        stack_env["CONTROL_URL"],
        json={"runId": run_id, "command": "undo", "preview": True},
        headers=client.auth(),
        timeout=60,
    )
    assert preview.status_code == 200, preview.text
    page = open_page(1440)
    sign_in(page, stack_env, "alice", run_id)
    page.get_by_test_id("count-booked").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Undo run", exact=True).click()
    confirm = page.get_by_test_id("confirm")
    confirm.wait_for(timeout=WAIT_MS)
    asked = page.locator("#confirm-text").inner_text()
    assert f"{leads} meetings will be cancelled" in asked and f"{leads} folders" in asked
    assert f"{leads} sent emails cannot be recalled" in asked
    assert client.diagnostics(run_id).json()["counts"]["reverted"] == 0  # only a preview so far
    confirm.click()
    until(lambda: text_of(page, "count-reverted") == str(2 * leads), timeout_s=30)
    counts_match(page, client, run_id)
    assert "Undo started" in page.locator("#steer-result").inner_text()
