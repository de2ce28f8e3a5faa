"""The ops dashboard's flows in headless Chromium: a real uvicorn, a real Celery worker,
PostgreSQL and Redis (conftest.py)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from copying.copies import lifecycle
from dashboard import sessions
from models import ApiKey, CopyStatus, Mode, utcnow
from tests.dashboard.conftest import WAIT_MS, Dashboard, key_for
from tests.dashboard.data import failed_copies, restock, status_of, statuses
from tests.factories import create_copy, make_shop, make_subscription
from tests.worker.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("dashboard")]

GROUP = "SKU … is out of stock (… requested, … left)"


def _no_full_reload(page: Any) -> None:
    """Mark the page: a full reload would lose the mark (see _still_same_page)."""
    page.evaluate("window.__sameDocument = true")


def _still_same_page(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def test_a_failed_copy_is_in_its_group_and_a_retry_completes_it_live(dashboard: Dashboard):
    failed = failed_copies(dashboard.sessions, 1)
    copy_id = failed.copy_ids[0]
    page = dashboard.page
    dashboard.sign_in("/dashboard/failures")
    row = page.locator("tr.group", has_text=GROUP)
    expect(row.locator(".failed-count")).to_have_text("1")
    dashboard.shot("failures")
    row.get_by_role("link", name=GROUP).click()
    page.get_by_role("link", name=copy_id).click()
    expect(page.locator("#copy-status")).to_have_text("failed")
    expect(page.locator("#errors + dl")).to_contain_text("SKU SHORT-TEE is out of stock")
    expect(page.locator(".timeline")).to_contain_text("failed")
    expect(page.locator("section.order", has_text="Source")).to_contain_text("SHORT-TEE")
    dashboard.shot("copy")

    restock(dashboard.sessions, failed.sku_id)
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".notice")).to_contain_text("Retried")
    _no_full_reload(page)
    # The worker runs it; the live region shows it without a reload.
    expect(page.locator("#copy-status")).to_have_text("completed")
    assert _still_same_page(page)
    expect(page.locator(".timeline")).to_contain_text("retried")
    expect(page.locator(".timeline")).to_contain_text("completed")
    assert status_of(dashboard.sessions, copy_id) is CopyStatus.COMPLETED


def test_bulk_retry_of_a_group_of_50_shows_its_progress_across_a_reload(dashboard: Dashboard):
    failed = failed_copies(dashboard.sessions, 50)
    restock(dashboard.sessions, failed.sku_id, 1000)
    page = dashboard.page
    dashboard.sign_in("/dashboard/failures")
    row = page.locator("tr.group", has_text=GROUP)
    expect(row.locator(".failed-count")).to_have_text("50")
    row.get_by_role("link", name="Retry all…").click()
    expect(page.locator("#dry-run-count")).to_contain_text("This will retry 50 copies")
    dashboard.shot("bulk-dry-run")
    # A second tab keeps the same confirmation for later.
    stale = page.context.new_page()
    stale.goto(page.url)

    page.get_by_role("button", name="Confirm: retry 50").click()
    page.wait_for_url(re.compile(r"/dashboard/bulk-jobs/\w+$"))
    # 50 transactions, each announced: on a loaded machine this takes its time.
    expect(page.locator("#job-count")).to_have_text("50 of 50", timeout=3 * WAIT_MS)
    expect(page.locator("#job-status")).to_have_text("Finished")
    expect(page.locator("#job-changed")).to_have_text("50")
    assert page.locator("#job-progress").get_attribute("value") == "50"
    dashboard.shot("bulk-progress")
    page.reload()  # the progress is the job's row, not the page's memory
    expect(page.locator("#job-count")).to_have_text("50 of 50")
    wait_for(
        lambda: statuses(dashboard.sessions, failed.copy_ids) == {"completed": 50},
        30,
        "the 50 retried copies to complete",
    )

    # Confirmed again from the stale tab: none is failed now, and the page says so.
    stale.get_by_role("button", name="Confirm: retry 50").click()
    expect(stale.locator(".notice")).to_have_text("No copies to retry: nothing was changed.")
    stale.close()
    page.goto(dashboard.url + "/dashboard/failures")
    expect(page.locator("tr.group")).to_have_count(0)
    expect(page.locator(".jobs")).to_contain_text("retry of 50")


def test_abort_a_pending_copy_then_a_second_abort_is_refused_as_a_message(
    dashboard: Dashboard,
):
    failed = failed_copies(dashboard.sessions, 1)
    # Not announced (create_copy drops its doorbell) and no beat runs: it stays pending.
    copy_id = create_copy(dashboard.sessions, failed.source_id).id
    page = dashboard.page
    dashboard.sign_in(f"/dashboard/copies/{copy_id}")
    expect(page.locator("#copy-status")).to_have_text("pending")
    stale = page.context.new_page()
    stale.goto(page.url)
    page.get_by_role("button", name="Abort").click()
    expect(page.locator(".notice")).to_have_text("Aborted.")
    expect(page.locator("#copy-status")).to_have_text("aborted")
    assert status_of(dashboard.sessions, copy_id) is CopyStatus.ABORTED
    answer = None

    def seen(response: Any) -> None:
        nonlocal answer
        answer = response.status if "/abort" in response.url else answer

    stale.on("response", seen)
    stale.get_by_role("button", name="Abort").click()
    expect(stale.locator(".notice")).to_contain_text("only pending copies can be aborted")
    assert answer == 409


def test_a_form_without_the_csrf_token_is_refused(dashboard: Dashboard):
    copy_id = failed_copies(dashboard.sessions, 1).copy_ids[0]
    page = dashboard.page
    dashboard.sign_in(f"/dashboard/copies/{copy_id}")
    # The signed-in browser posts with its cookie but without the token, or a wrong one.
    for form in ({}, {"csrf": "not-the-token"}):
        answer = page.request.post(f"{dashboard.url}/dashboard/copies/{copy_id}/retry", form=form)
        assert answer.status == 403
        assert "CSRF" in answer.text()
    # The form in the page, its token removed.
    retry = page.locator("form[action$='/retry']")
    retry.locator("input[name=csrf]").evaluate("input => input.remove()")
    retry.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    assert status_of(dashboard.sessions, copy_id) is CopyStatus.FAILED


def test_the_other_modes_copies_are_invisible(dashboard: Dashboard):
    mine = failed_copies(dashboard.sessions, 1).copy_ids[0]
    theirs = failed_copies(dashboard.sessions, 1, mode=Mode.LIVE, code="LIVE-TEE").copy_ids[0]
    page = dashboard.page
    dashboard.sign_in("/dashboard/copies")
    expect(page.get_by_role("link", name=mine)).to_be_visible()
    expect(page.get_by_role("link", name=theirs)).to_have_count(0)
    page.goto(f"{dashboard.url}/dashboard/copies/{theirs}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto(f"{dashboard.url}/dashboard/failures")
    expect(page.locator("tr.group .failed-count")).to_have_text("1")
    # The live key sees the other one only.
    live = dashboard.page.context.browser.new_context()
    try:
        other = Dashboard(
            dashboard.url,
            live.new_page(),
            key_for(dashboard.sessions, Mode.LIVE),
            dashboard.sessions,
        )
        other.sign_in("/dashboard/copies")
        expect(other.page.get_by_role("link", name=theirs)).to_be_visible()
        expect(other.page.get_by_role("link", name=mine)).to_have_count(0)
        expect(other.page.locator(".mode")).to_have_text("live mode")
    finally:
        live.close()


def test_overview_charts_have_points_and_the_worker_is_seen(dashboard: Dashboard):
    failed_copies(dashboard.sessions, 3)
    page = dashboard.page
    dashboard.sign_in("/dashboard")
    expect(page.locator('.count[data-status="failed"]')).to_have_text("3")
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(2)
    for chart, buckets in zip(charts.all(), (60, 168), strict=True):
        created = chart.locator('polyline[data-series="created"]').get_attribute("points") or ""
        points = [tuple(map(float, p.split(","))) for p in created.split()]
        assert len(points) == buckets
        assert len({y for _, y in points}) == 2, "a peak (the copies just made) over a flat zero"
        assert min(y for _, y in points) < max(y for _, y in points)
    # The worker beats every few seconds; the overview refreshes itself until it shows.
    expect(page.locator("#workers .worker")).to_contain_text("dashboard@")
    dashboard.shot("overview")


def test_keyboard_only_retry(dashboard: Dashboard):
    failed = failed_copies(dashboard.sessions, 1)
    copy_id = failed.copy_ids[0]
    restock(dashboard.sessions, failed.sku_id)
    page = dashboard.page
    dashboard.go(f"/dashboard/copies/{copy_id}")
    for _ in range(10):  # the key's field has the focus, or comes after the skip link
        if page.evaluate("document.activeElement.id") == "api_key":
            break
        page.keyboard.press("Tab")
    page.keyboard.type(dashboard.token)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/dashboard/copies/{copy_id}$"))
    for _ in range(30):
        if page.evaluate("document.activeElement.textContent.trim()") == "Retry":
            break
        page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Retry")
    outline = focused.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline != "none", "the focused button shows its focus"
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_contain_text("Retried")
    expect(page.locator("#copy-status")).to_have_text("completed")


def test_an_expired_session_signs_in_again_and_returns_to_the_page(dashboard: Dashboard):
    with dashboard.sessions.begin() as session:
        key = session.query(ApiKey).one()
        expired = sessions.session_cookie(key, now=utcnow() - sessions.LIFETIME - timedelta(1))
    context = dashboard.page.context
    host = dashboard.url.removeprefix("http://").split(":")[0]
    context.add_cookies(
        [{"name": sessions.COOKIE, "value": expired, "domain": host, "path": sessions.PATH}]
    )
    page = dashboard.page
    dashboard.go("/dashboard/copies?status=failed")
    expect(page.locator(".notice")).to_contain_text("Your session expired")
    dashboard.shot("sign-in")
    page.get_by_label("API key").fill(dashboard.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/dashboard/copies\?status=failed$"))
    cookie = next(c for c in context.cookies() if c["name"] == sessions.COOKIE)
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] != expired
    page.get_by_role("button", name=re.compile("Sign out")).click()
    expect(page.locator(".notice")).to_have_text("Signed out.")
    dashboard.go("/dashboard/copies")
    assert "/dashboard/sign-in" in page.url


def test_unknown_filters_are_noted_and_the_page_fits_a_phone(dashboard: Dashboard):
    copy_id = failed_copies(dashboard.sessions, 1).copy_ids[0]
    page = dashboard.page
    dashboard.sign_in("/dashboard/copies")
    dashboard.shot("copies")
    page.goto(
        f"{dashboard.url}/dashboard/copies?colour=blue&status=nope&error_key=line_items&page=-2"
    )
    note = page.locator(".notice")
    expect(note).to_contain_text("unknown filter 'colour'")
    expect(note).to_contain_text("status='nope'")
    expect(note).to_contain_text("page='-2'")
    expect(page.get_by_role("link", name=copy_id)).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/dashboard",
        "/dashboard/copies",
        f"/dashboard/copies/{copy_id}",
        "/dashboard/failures",
    ):
        page.goto(dashboard.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
        if path.startswith("/dashboard/copies/"):
            dashboard.shot("copy-phone")


def test_subscriptions_list_detail_and_the_apis_triggers(dashboard: Dashboard):
    with dashboard.sessions.begin() as s:
        shop = make_shop(s)
        subscription = make_subscription(s, shop.source, starts_at=utcnow() + timedelta(minutes=30))
        subscription_id = subscription.id
    page = dashboard.page
    dashboard.sign_in("/dashboard")
    expect(page.locator("#renewals-hour")).to_have_text("1")
    page.get_by_role("link", name="Subscriptions").click()
    row = page.locator("tbody tr", has_text=subscription_id)
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("monthly")
    dashboard.shot("subscriptions")
    row.get_by_role("link", name=subscription_id).click()
    planned = page.locator("#subscription-next-run time").get_attribute("datetime")
    page.get_by_role("button", name="Skip").click()  # the next run only
    expect(page.locator(".notice")).to_have_text("Done: skip.")
    assert page.locator("#subscription-next-run time").get_attribute("datetime") != planned
    expect(page.locator("#subscription-status")).to_have_text("active")
    page.get_by_role("button", name="Deactivate").click()
    expect(page.locator(".notice")).to_have_text("Done: deactivate.")
    expect(page.locator("#subscription-status")).to_have_text("inactive")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#subscription-status")).to_have_text("cancelled")
    page.get_by_role("button", name="Activate", exact=True).click()  # the API: 409
    expect(page.locator(".notice")).to_contain_text(f"{subscription_id} is cancelled")
    expect(page.locator("#subscription-status")).to_have_text("cancelled")


def test_abort_all_pending_stops_the_copies_retried_from_a_group(dashboard: Dashboard):
    failed = failed_copies(dashboard.sessions, 3)
    later = utcnow() + timedelta(hours=1)
    for copy_id in failed.copy_ids:  # retried to wait an hour: pending, not announced
        with dashboard.sessions.begin() as s:
            lifecycle.retry(s, copy_id, Mode.TEST, by="test", not_before=later)
    page = dashboard.page
    dashboard.sign_in("/dashboard/failures")
    row = page.locator("tr.group", has_text=GROUP)
    expect(row.locator(".failed-count")).to_have_text("0")
    expect(row.locator(".pending-count")).to_have_text("3")
    row.get_by_role("link", name="Abort all pending…").click()
    expect(page.locator("#dry-run-count")).to_contain_text("This will abort 3 copies")
    page.get_by_role("button", name="Confirm: abort 3").click()
    expect(page.locator("#job-count")).to_have_text("3 of 3", timeout=3 * WAIT_MS)
    expect(page.locator("#job-changed")).to_have_text("3")
    assert statuses(dashboard.sessions, failed.copy_ids) == {"aborted": 3}
