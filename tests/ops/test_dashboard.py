"""The ops dashboard in a real browser: Debian's chromium, driven by selenium through
chromedriver, on the service served by uvicorn. An admin signs in on the page and sees a
hold and its release reach the seat map within two seconds; a user who signs in gets the
admins-only message and no hold data.

The set-up installs `chromium` and `chromium-driver` with apt-get when they are missing
(once per machine), and skips these tests, saying why, when it cannot."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role
from seatlock.ops.dashboard import PAGE_HEADERS
from tests.buying import booked, hold, pay
from tests.clients import PASSWORD, Client, UserFactory
from tests.factories import create_event

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# What headless chromium needs as root on a machine that reaches no Google service.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1360,1200",
)
# The bound: a change reaches the seat map this soon.
LIVE_WITHIN_SECONDS = 2.0
# Loading the page, signing in, drawing the map: generous for a loaded two-core machine.
PATIENCE_SECONDS = 15.0
# Set to a path (relative to the repository), the admin's test saves its screenshot there,
# e.g. SEATLOCK_SCREENSHOT=docs/ops-dashboard.png; otherwise into the test's tmp_path.
SCREENSHOT_VARIABLE = "SEATLOCK_SCREENSHOT"
# Where the page keeps its access token (dashboard.js).
TOKEN_KEY = "seatlock.ops.token"

T = TypeVar("T")


def _apt_get(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = ["apt-get", *arguments]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, -1, "", "timed out after 900 s")


def install_chromium() -> str | None:
    """Installs chromium and chromium-driver when missing; why it could not, or None."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if shutil.which("apt-get") is None:
        return "chromium is missing and there is no apt-get to install it with"
    packages = ("install", "-y", "-q", "chromium", "chromium-driver")
    done = _apt_get(*packages)
    if done.returncode != 0:
        # The package lists may be missing or stale: read them, then try once more.
        _apt_get("update", "-q")
        done = _apt_get(*packages)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        return f"apt-get install chromium chromium-driver failed: {lines[-1]}"
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"apt-get installed no {CHROMIUM} and {CHROMEDRIVER}"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    reason = install_chromium()
    if reason is not None:
        pytest.skip(f"no browser for the dashboard tests: {reason}")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


class Dashboard:
    """The page in the browser. Selenium blocks, and the service runs on this test's event
    loop, so every browser call runs in a thread."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    async def call(self, action: Callable[..., T], *arguments: Any) -> T:
        return await asyncio.to_thread(action, *arguments)

    async def script(self, code: str, *arguments: Any) -> Any:
        return await self.call(self.driver.execute_script, code, *arguments)

    async def until(self, code: str, what: str, within: float = PATIENCE_SECONDS) -> float:
        """Waits until the script answers true; the seconds it took."""
        started = time.monotonic()
        while not await self.script(code):
            waited = time.monotonic() - started
            assert waited < within, f"{what}: not within {within} s"
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    async def open(self) -> None:
        # A new port per test is a new origin, so nothing of an earlier test's sign-in stays.
        await self.call(self.driver.get, f"{self.base_url}/ops")
        await self.until("return !document.getElementById('sign-in').hidden", "the sign-in form")

    async def sign_in(self, email: str) -> None:
        def fill() -> None:
            self.driver.find_element(By.ID, "email").send_keys(email)
            self.driver.find_element(By.ID, "password").send_keys(PASSWORD)
            self.driver.find_element(By.ID, "sign-in-button").click()

        await self.call(fill)

    async def click(self, selector: str) -> None:
        await self.call(lambda: self.driver.find_element(By.CSS_SELECTOR, selector).click())

    async def screenshot(self, path: Path) -> None:
        def take() -> None:
            # The pointer off the holds table, whose rows outline their seats when pointed at.
            heading = self.driver.find_element(By.TAG_NAME, "h1")
            ActionChains(self.driver).move_to_element(heading).perform()
            self.driver.save_screenshot(str(path))

        await self.call(take)

    async def seat_state(self, seat_id: uuid.UUID) -> str | None:
        state: str | None = await self.script(
            "const seat = document.querySelector(`[data-seat-id='${arguments[0]}']`);"
            "return seat && seat.dataset.state;",
            str(seat_id),
        )
        return state

    async def seat_becomes(self, seat_id: uuid.UUID, state: str) -> float:
        return await self.until(
            f"return document.querySelector(`[data-seat-id='{seat_id}']`)"
            f"?.dataset.state === '{state}'",
            f"seat {seat_id} shown {state}",
            within=PATIENCE_SECONDS,
        )

    async def counter(self, name: str) -> str:
        text: str = await self.script(
            f"return document.querySelector('[data-counter=\"{name}\"]').textContent"
        )
        return text


@pytest.fixture
async def dashboard(browser: WebDriver, live: httpx.AsyncClient) -> AsyncIterator[Dashboard]:
    yield Dashboard(browser, str(live.base_url))
    # Leaving the page closes its stream, which uvicorn's shutdown would wait for.
    await asyncio.to_thread(browser.get, "about:blank")


def _screenshot_path(tmp_path: Path) -> Path:
    wanted = os.environ.get(SCREENSHOT_VARIABLE)
    path = ROOT / wanted if wanted else tmp_path / "ops-dashboard.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


async def test_the_page_and_its_assets_are_served_to_anyone(client: Client) -> None:
    page = await client.get("/ops")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for header, value in PAGE_HEADERS.items():
        assert page.headers[header] == value
    for asset, media_type in [
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
    ]:
        assert f"/ops/static/{asset}" in page.text
        answer = await client.get(f"/ops/static/{asset}")
        assert answer.status_code == 200, asset
        assert answer.headers["content-type"].startswith(media_type), answer.headers
    assert (await client.get("/ops/static/nothing.js")).status_code == 404


async def test_an_admin_watches_holds_and_releases_live(
    live: httpx.AsyncClient,
    engine: AsyncEngine,
    make_user: UserFactory,
    dashboard: Dashboard,
    tmp_path: Path,
) -> None:
    event = await create_event(engine, sections=("A", "B"), rows=5, seats_per_row=16)
    await make_user(Role.ADMIN, email="ops@example.test")
    buyers = [await make_user() for _ in range(3)]
    await dashboard.open()
    await dashboard.sign_in("ops@example.test")
    await dashboard.until(
        f"return document.querySelectorAll('[data-seat-id]').length === {len(event.seats)}",
        "the seat map",
    )
    await dashboard.until("return document.getElementById('live').textContent === 'live'", "stream")
    seat = event.seat("A", "3", 8)
    assert await dashboard.seat_state(seat) == "available"

    # A hold made through the API, released with the page's button.
    held = await hold(live, buyers[0], event.id, [seat])
    assert await dashboard.seat_becomes(seat, "held") <= LIVE_WITHIN_SECONDS
    await dashboard.until(
        f"return !!document.querySelector('[data-release=\"{held}\"]')", "the row"
    )
    await dashboard.click(f'[data-release="{held}"]')
    assert await dashboard.seat_becomes(seat, "available") <= LIVE_WITHIN_SECONDS
    gone = await live.get(f"/api/holds/{held}", headers=buyers[0])
    assert gone.status_code in (404, 410), gone.text
    await dashboard.until(
        f"return !document.querySelector('[data-hold-id=\"{held}\"]')", "row gone"
    )

    # A hold made and released through the API.
    again = await hold(live, buyers[1], event.id, [seat])
    assert await dashboard.seat_becomes(seat, "held") <= LIVE_WITHIN_SECONDS
    assert (await live.delete(f"/api/holds/{again}", headers=buyers[1])).status_code == 204
    assert await dashboard.seat_becomes(seat, "available") <= LIVE_WITHIN_SECONDS

    # Sales and a few live holds, for the counters (and a screenshot worth keeping).
    sold = [event.seat("B", "2", n) for n in range(5, 11)]
    reserved = [event.seat("A", "4", n) for n in range(3, 7)]
    await pay(live, buyers[2], (await booked(live, buyers[2], event.id, sold))["id"])
    await booked(live, buyers[1], event.id, reserved)
    await hold(live, buyers[0], event.id, [event.seat("A", "1", n) for n in (7, 8, 9)])
    await hold(live, buyers[1], event.id, [event.seat("B", "4", 12)])
    for seat_id in sold:
        await dashboard.seat_becomes(seat_id, "sold")
    for seat_id in reserved:
        await dashboard.seat_becomes(seat_id, "reserved")
    await dashboard.until(
        "return document.querySelectorAll('[data-hold-id]').length === 2", "holds"
    )
    await dashboard.until(
        "return document.querySelector('#seat-counts tfoot [data-state-count=held]')"
        ".textContent === '4'",
        "the counts",
    )
    assert await dashboard.counter("ops_release") == "1 (1 seat)"
    assert await dashboard.counter("release") == "1 (1 seat)"
    assert await dashboard.counter("payment") == "1 (6 seats)"
    assert (await dashboard.counter("hold")).startswith("6 ")
    await dashboard.until(
        "return document.querySelectorAll('#report-holders tbody tr').length === 2",
        "the hold report",
    )
    await dashboard.screenshot(_screenshot_path(tmp_path))

    # A reload with an access token that no longer works renews it with the refresh cookie.
    await dashboard.script(f"sessionStorage.setItem('{TOKEN_KEY}', 'expired')")
    await dashboard.call(dashboard.driver.refresh)
    await dashboard.until(
        f"return document.querySelectorAll('[data-state=sold]').length === {len(sold)}"
        f" && sessionStorage.getItem('{TOKEN_KEY}') !== 'expired'",
        "the dashboard again",
    )


async def test_a_user_who_signs_in_gets_admins_only_and_no_hold_data(
    live: httpx.AsyncClient, engine: AsyncEngine, make_user: UserFactory, dashboard: Dashboard
) -> None:
    event = await create_event(engine)
    buyer = await make_user(email="buyer@example.test")
    await hold(live, buyer, event.id, event.seat_ids[:2])
    await dashboard.open()
    await dashboard.sign_in("buyer@example.test")
    await dashboard.until("return !document.getElementById('denied').hidden", "the refusal")
    text = await dashboard.script("return document.getElementById('denied').innerText")
    assert "Admins only" in text
    assert "buyer@example.test is a USER account" in text
    assert await dashboard.script("return document.getElementById('dashboard').hidden") is True
    assert await dashboard.script("return document.querySelectorAll('[data-hold-id]').length") == 0
    assert await dashboard.script("return document.querySelectorAll('[data-seat-id]').length") == 0
    assert await dashboard.script("return sessionStorage.length") == 0
