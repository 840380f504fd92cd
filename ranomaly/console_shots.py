"""Screenshots of the console's pages in Debian's chromium, driven by Playwright (the dev extra)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
REPORT_WAIT_MS = 300_000  # a report's language model may take minutes on a busy CPU
PAGE_WAIT_MS = 120_000  # what a page waits for: generous, a busy machine draws slowly (Playwright's default: 5 s)


def take_screenshots(url: str, key: str, folder: Path) -> list[Path]:
    """Sign in at the console's `url` with the API key; a screenshot of the network view, the incidents, the
    longest incident's page, its cell's page, the policies and the models in `folder`; the files written."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("Debian's chromium is not installed (make installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=PAGE_WAIT_MS)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, url, "screenshots", key)
        expect(page.locator("#alarm-rate .bars")).to_be_visible()
        written.append(_shot(page, folder / "network.png"))
        page.goto(f"{url}/incidents?sort=duration")
        written.append(_shot(page, folder / "incidents.png"))
        page.locator("#incidents tbody a").first.click()
        expect(page.locator("#report-body")).to_be_visible(timeout=REPORT_WAIT_MS)
        written.append(_shot(page, folder / "incident.png"))
        page.click("#cell-link")
        expect(page.locator("#plots")).to_have_attribute("data-drawn", re.compile(r"^\d+$"))
        written.append(_shot(page, folder / "cell.png"))
        page.goto(f"{url}/policies")
        expect(page.locator("#policies-status")).not_to_have_text("Loading…")
        written.append(_shot(page, folder / "policies.png"))
        page.goto(f"{url}/models")
        expect(page.locator("#models tbody tr").first).to_be_visible()
        written.append(_shot(page, folder / "models.png"))
        browser.close()
    return written


def sign_in(page: Page, url: str, name: str, key: str) -> None:
    """Open the console at `url` and sign in with the API key under `name`, waiting until signed in."""
    page.goto(url)
    page.fill("#name", name)
    page.fill("#key", key)
    page.click("#sign-in button")
    expect(page.locator("#signed-in")).to_be_visible()


def _shot(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    return path
