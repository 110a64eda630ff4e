"""The dashboard in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright),
with JavaScript off: served by a real HTTP server (werkzeug in a thread) over a database seeded
through the real flow. Logs in, checks every count against the database, finds a failed number
and opens its timeline, both from the problem list and from the search box. Screenshots go to
``tests/artifacts/`` (gitignored)."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, select
from werkzeug.serving import make_server

from models.tables import Link, LinkEvent
from tests.webhooks.web.conftest import TOKEN, app_engine, make_web_app, seed

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="apt-get install -y chromium")


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[str, Flask]]:
    app = make_web_app(db_url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(10)
        app_engine(app).dispose()


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[object]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": 1280, "height": 900}
        )
        tab = context.new_page()
        tab.set_default_timeout(10_000)
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def _db_counts(engine: sa.Engine) -> Counter[tuple[str, str, str]]:
    with Session(engine) as s:
        return Counter((lk.provider, lk.campaign_id, lk.state) for lk in s.exec(select(Link)))


def test_log_in_check_counts_and_open_a_failed_numbers_timeline(
    served: tuple[str, Flask], page: object, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    url, app = served
    engine = app_engine(app)
    seeded = seed(engine)
    ARTIFACTS.mkdir(exist_ok=True)
    tag = request.node.callspec.id

    # Not logged in: the login form. A wrong token is refused.
    page.goto(f"{url}/")
    assert page.url.startswith(f"{url}/login")
    page.fill("#token", "wrong")
    page.click("button:has-text('Log in')")
    expect(page.locator("#login-error")).to_have_text("Wrong token.")
    page.fill("#token", TOKEN)
    page.click("button:has-text('Log in')")
    assert page.url == f"{url}/"

    # Every count on the page is the database's (and what the seeding meant).
    db = _db_counts(engine)
    expected = Counter(
        {(p, c, s): n for (p, c), states in seeded.expected.items() for s, n in states.items()}
    )
    assert db == expected
    shown: Counter[tuple[str, str, str]] = Counter()
    rows = page.locator("#state-counts tbody tr")
    assert rows.count() == len(seeded.expected) + 1  # one per campaign + the total row
    for i in range(rows.count()):
        row = rows.nth(i)
        provider = row.get_attribute("data-provider") or ""
        campaign = row.get_attribute("data-campaign") or ""
        cells = row.locator("td[data-state]")
        values = {
            cells.nth(j).get_attribute("data-state"): int(cells.nth(j).inner_text())
            for j in range(cells.count())
        }
        if not provider:  # the "All" row
            for state, n in values.items():
                want = sum(v for (_, _, s), v in db.items() if s == state)
                assert n == (sum(db.values()) if state == "total" else want), state
            continue
        assert values.pop("total") == sum(
            v for (p, c, _), v in db.items() if (p, c) == (provider, campaign)
        )
        for state, n in values.items():
            if n:
                shown[(provider, campaign, str(state))] = n
    assert shown == db

    # Failed, stuck and drifted lists, with reasons.
    failed_rows = page.locator("#problems-failed tbody tr")
    assert (
        failed_rows.count()
        == len(seeded.failed)
        == sum(v for (_, _, s), v in db.items() if s == "FAILED")
    )
    for number, reason in seeded.failed.items():
        expect(page.locator("#problems-failed tbody tr", has_text=number)).to_contain_text(reason)
    assert page.locator("#problems-stuck tbody tr").count() == len(seeded.stuck)
    assert page.locator("#problems-drifted tbody tr").count() == len(seeded.drifted)
    expect(page.locator("#problems")).to_have_text(
        f"Needs attention: {len(seeded.failed) + len(seeded.stuck) + len(seeded.drifted)}"
    )
    assert page.locator("#transitions-chart rect").count() >= 1
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{tag}.png"), full_page=True)

    # Open a failed number's timeline from the list.
    number, reason = next(iter(seeded.failed.items()))
    page.click(f"#problems-failed a:has-text('{number}')")
    expect(page.locator("h1")).to_have_text(f"Timeline of {number}")
    with Session(engine) as s:
        audit = s.exec(
            select(LinkEvent).where(LinkEvent.number == number).order_by(LinkEvent.id)  # type: ignore[arg-type]
        ).all()
    history = page.locator("table.history tbody tr")
    assert history.count() == len(audit) >= 2
    expect(history.last).to_contain_text("FAILED")
    expect(history.last).to_contain_text(reason)
    expect(page.locator("section.timeline h2")).to_contain_text("FAILED")
    page.screenshot(path=str(ARTIFACTS / f"dashboard-timeline-{tag}.png"), full_page=True)

    # The search box takes the number as people type it.
    plivo_failed = next(n for n in seeded.failed if n.startswith("+1415"))
    typed = re.sub(r"^\+1(\d{3})(\d{3})(\d{4})$", r"(\1) \2-\3", plivo_failed)
    page.fill("#search-number", typed)
    page.click("button:has-text('Show timeline')")
    expect(page.locator("h1")).to_have_text(f"Timeline of {plivo_failed}")
    expect(page.locator("#current-state-plivo")).to_have_text("FAILED")

    # Log out (a POST form with the CSRF token): back to the login form.
    page.click("button:has-text('Log out')")
    assert page.url.startswith(f"{url}/login")
    page.goto(f"{url}/")
    assert page.url.startswith(f"{url}/login")
