"""Debian's chromium driven by Playwright (never `playwright install`), plus what the page tests
share: screenshots at desktop and phone widths saved as artifacts, axe-core run in the page, and
a guard that records every request leaving the suite's origin (and blocks it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

CHROMIUM = os.environ.get("DEELRX_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DEELRX_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SERIOUS = frozenset({"serious", "critical"})


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/install_test_tools.sh)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield launched
        launched.close()


@dataclass
class Visit:
    """One person's browser: a context whose requests may only reach the suite."""

    context: BrowserContext
    page: Page
    origin: str
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Page:
        self.page.goto(self.origin + path)
        return self.page


def open_visit(browser: Browser, origin: str) -> Visit:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    # A login hashes the password with argon2id and crosses three services: under a full
    # parallel test run on two cores one step took longer than 15 s.
    context.set_default_timeout(30_000)
    visit = Visit(context, context.new_page(), origin)

    def only_the_suite(route: Route) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            visit.blocked.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", only_the_suite)
    visit.page.on("console", lambda message: message.type == "error" and visit.console_errors.append(message.text))
    return visit


class Looks:
    """Screenshots of every page seen, at both widths, and axe's serious violations per page."""

    def __init__(self, test_name: str) -> None:
        self.folder = ARTIFACTS / "screenshots" / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.axe = Axe()
        self.violations: dict[str, list[str]] = {}
        self.seen: list[str] = []

    def check(self, page: Page, name: str, *, wait_ready: bool = True, skip_rules: tuple[str, ...] = ()) -> None:
        """Once the page's script is done (`body[data-ready]`): screenshots at both widths and one
        axe-core run (the phone layout only restyles the same document)."""
        if wait_ready:
            page.wait_for_selector("body[data-ready]", state="attached")
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            page.screenshot(path=str(self.folder / f"{len(self.seen):02d}-{name}-{label}.png"), full_page=True)
        page.set_viewport_size(DESKTOP)
        options: dict[str, object] = {"resultTypes": ["violations"]}
        if skip_rules:
            options["rules"] = {rule: {"enabled": False} for rule in skip_rules}
        results = self.axe.run(page, options=options)
        serious = [
            f"{v['id']} ({v['impact']}): {[n.get('target') for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v.get("impact") in SERIOUS
        ]
        if serious:
            self.violations[name] = serious
        self.seen.append(name)
