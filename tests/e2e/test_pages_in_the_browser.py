"""The suite's own pages in a real browser (Debian's chromium through Playwright): a new owner's
whole journey, a keyboard-only sign-up and login, /docs without any outside network, security
headers on every page, screenshots of every page at desktop and phone widths (artifacts) and
axe-core finding no serious accessibility violation."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import Looks, open_visit
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify

# Browsers are costly on two cores: these run once, against the SQLite suite.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]

ANONYMOUS_PAGES = ["/signup", "/verify-email", "/login", "/forgot-password", "/reset-password", "/accept-invite"]
SIGNED_IN_PAGES = ["/account", "/team", "/roles", "/customers", "/audit", "/billing"]


class Authenticator:
    """The owner's phone: TOTP codes computed here, each 30-second step used at most once (the
    suite refuses a replay), one step of drift at most."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last_step = -1

    def code(self) -> str:
        while True:
            now = int(time.time() // 30)
            step = max(now, self.last_step + 1)
            if step <= now + 1:
                self.last_step = step
                return self.totp.at(step * 30)
            time.sleep(1)  # both usable steps are spent: the next one starts within 30 s


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_pages_answer_with_a_strict_content_security_policy(suite: RunningSuite) -> None:
    with suite.client() as client:
        for path in [*ANONYMOUS_PAGES, *SIGNED_IN_PAGES, "/docs"]:
            r = client.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp, path
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            # No inline script: every <script> loads a file from the suite.
            for tag in re.findall(r"<script\b[^>]*>", r.text):
                assert re.search(r'src="/(static|sdk)/', tag), (path, tag)
            assert not re.search(r"\son[a-z]+=", r.text), path  # no inline event handlers
        sdk = client.get("/sdk/js/deelrx.js")
        assert sdk.status_code == 200 and sdk.headers["content-type"].startswith("text/javascript")
        assert "export class DeelRx" in sdk.text
        assert client.get("/sdk/js/../../pyproject.toml").status_code == 404
        assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_docs_load_without_any_outside_network(suite: RunningSuite, browser: Browser) -> None:
    visit = open_visit(browser, suite.base_url)
    try:
        page = visit.goto("/docs")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/v1/auth/login" in p for p in paths), paths
        assert visit.blocked == [], "the docs reached outside the suite"
        assert not [e for e in visit.console_errors if "Content Security Policy" in e], visit.console_errors
        looks = Looks("docs")
        # Swagger UI nests its operation buttons in a clickable summary (upstream markup): that one rule
        # is left out here; every other serious rule applies to /docs as to the pages.
        looks.check(page, "docs", wait_ready=False, skip_rules=("nested-interactive",))
        assert not looks.violations, looks.violations
    finally:
        visit.context.close()


def test_keyboard_only_sign_up_and_login(suite: RunningSuite, browser: Browser) -> None:
    email = new_email()
    visit = open_visit(browser, suite.base_url)
    page, keys = visit.page, visit.page.keyboard
    focused = lambda: page.evaluate("document.activeElement && document.activeElement.id")  # noqa: E731
    try:
        mark = suite.mailbox.mark()
        visit.goto("/signup")
        keys.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        for _ in range(3):
            if focused() == "name":
                break
            keys.press("Tab")
        assert focused() == "name"
        keys.type("Grace Hopper")
        keys.press("Tab")
        assert focused() == "email"
        keys.type(email)
        keys.press("Tab")
        assert focused() == "password"
        keys.type(PASSWORD)
        keys.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Create account"
        keys.press("Enter")
        expect(page.get_by_role("heading", name="Check your email")).to_be_focused()

        token = suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
        visit.goto(f"/verify-email?token={token}")  # following the link in the mail
        keys.press("Tab")
        while page.evaluate("document.activeElement.textContent") != "Verify my email":
            keys.press("Tab")
        keys.press("Enter")
        expect(page.get_by_role("heading", name="Your email is verified")).to_be_focused()

        visit.goto("/login")
        while focused() != "email":
            keys.press("Tab")
        keys.type(email)
        keys.press("Tab")
        keys.type("not the password 123")
        keys.press("Enter")
        # The error is announced (role=alert) and says what to do.
        expect(page.get_by_role("alert")).to_contain_text("email or password is not right")
        page.locator("#password").focus()  # the person goes back to the field (Shift+Tab)
        keys.press("Control+A")
        keys.type(PASSWORD)
        keys.press("Enter")
        page.wait_for_url(re.compile(r"/account$"))
        expect(page.locator("#who")).to_contain_text(email)
    finally:
        visit.context.close()


@pytest.mark.timeout(600)
def test_a_new_owner_and_their_staff_member(suite: RunningSuite, browser: Browser) -> None:
    looks = Looks("owner_journey")
    owner_email, staff_email = new_email(), new_email()
    owner = open_visit(browser, suite.base_url)
    staff = open_visit(browser, suite.base_url)
    page = owner.page
    try:
        # Sign up, verify from the email, log in.
        mark = suite.mailbox.mark()
        owner.goto("/signup")
        looks.check(page, "signup")
        page.get_by_label("Your name").fill("Olive Owner")
        page.get_by_label("Email", exact=True).fill(owner_email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        looks.check(page, "signup-sent")
        token = suite.mailbox.wait_for(owner_email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
        owner.goto(f"/verify-email?token={token}")
        looks.check(page, "verify-email")
        page.get_by_role("button", name="Verify my email").click()
        expect(page.get_by_role("heading", name="Your email is verified")).to_be_visible()
        owner.goto("/login")
        looks.check(page, "login")
        log_in(page, owner_email)
        page.wait_for_url(re.compile(r"/account$"))

        # Enroll TOTP with a code computed here; the recovery codes are shown once, with a download.
        page.get_by_role("button", name="Set up an authenticator app").click()
        expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
        secret = page.locator("#enroll-secret").inner_text()
        looks.check(page, "account-enroll")
        phone = Authenticator(secret)
        page.get_by_label("6-digit code from the app").fill(phone.code())
        page.get_by_role("button", name="Turn on two-factor").click()
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        codes = page.locator("#recovery-codes li").all_inner_texts()
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the codes").click()
        saved = open(download.value.path()).read()
        assert all(code in saved for code in codes)
        expect(page.locator("#mfa-status")).to_contain_text("is on")
        looks.check(page, "account-recovery-codes")

        # A team, and an invitation for the staff member.
        owner.goto("/team")
        page.get_by_label("New team name").fill("Pharmacy North")
        page.get_by_role("button", name="Create team").click()
        expect(page.get_by_role("heading", name="Members of Pharmacy North")).to_be_visible()
        mark = suite.mailbox.mark()
        page.get_by_label("Email", exact=True).fill(staff_email)
        page.get_by_label("Role", exact=True).select_option("staff")
        page.get_by_role("button", name="Send invitation").click()
        expect(page.get_by_role("status")).to_contain_text(f"Invitation sent to {staff_email}")
        looks.check(page, "team")
        invite = suite.mailbox.wait_for(staff_email, r"/accept-invite\?token=([A-Za-z0-9_\-]+)", after=mark)

        # The staff member (account made through the API) accepts from the link.
        with suite.client() as client:
            sign_up_and_verify(suite, client, staff_email, name="Sam Staff")
        staff.goto(f"/accept-invite?token={invite}")
        looks.check(staff.page, "accept-invite-signed-out")
        staff.page.get_by_role("link", name="Log in to accept").click()
        log_in(staff.page, staff_email)
        staff.page.wait_for_url(re.compile(r"/accept-invite\?token="))
        staff.page.get_by_role("button", name="Accept the invitation").click()
        expect(staff.page.get_by_role("heading", name="You joined the team")).to_be_visible()
        looks.check(staff.page, "accept-invite-done")

        # The owner assigns one customer to the staff member and another to themself.
        owner.goto("/customers")
        page.get_by_label("Customer id").fill("c_42")
        page.get_by_label("Member", exact=True).select_option(label=f"Sam Staff <{staff_email}>")
        page.get_by_role("button", name="Assign", exact=True).click()
        expect(page.locator("#member-customers")).to_contain_text("c_42")
        page.get_by_label("Customer id").fill("c_99")
        page.get_by_label("Member", exact=True).select_option(label=f"Olive Owner <{owner_email}>")
        page.get_by_role("button", name="Assign", exact=True).click()
        expect(page.locator("#member-customers")).to_contain_text("c_99")
        looks.check(page, "customers-owner")

        # The staff member sees only the assigned customer and cannot open billing.
        staff.goto("/customers")
        expect(staff.page.locator("#my-customers")).to_contain_text("c_42")
        expect(staff.page.locator("#my-customers")).not_to_contain_text("c_99")
        expect(staff.page.locator("#assign-section")).to_be_hidden()
        looks.check(staff.page, "customers-staff")
        staff.goto("/billing")
        expect(staff.page.get_by_role("alert")).to_contain_text("do not have permission")
        expect(staff.page.locator("#billing-form")).to_be_hidden()
        looks.check(staff.page, "billing-staff")

        # The owner's other pages.
        for path in ("/billing", "/roles", "/audit"):
            owner.goto(path)
            looks.check(page, path.strip("/"))
            expect(page.get_by_role("alert")).to_be_hidden()
        expect(page.locator("#events tbody tr")).not_to_have_count(0)
        expect(page.locator("#live")).to_have_text("live")  # the SSE stream connected under the CSP

        # A broken reset link says so.
        anonymous = open_visit(browser, suite.base_url)
        try:
            anonymous.goto("/forgot-password")
            looks.check(anonymous.page, "forgot-password")
            anonymous.goto("/reset-password?token=not-a-real-token-0123456789")
            anonymous.page.get_by_label("New password").fill("a brand new passphrase 7")
            anonymous.page.get_by_role("button", name="Set new password").click()
            expect(anonymous.page.get_by_role("alert")).to_contain_text("not valid any more")
            looks.check(anonymous.page, "reset-password-invalid")
        finally:
            anonymous.context.close()

        # The owner signs the staff member out: a step-up (this session has no `otp` yet) asks for the
        # password and a code first. The staff member's next click lands on the login page.
        owner.goto("/team")
        page.get_by_role("button", name=f"Sign out {staff_email} everywhere").click()
        dialog = page.get_by_role("dialog", name="Confirm it is you")
        expect(dialog).to_be_visible()
        looks.check(page, "team-step-up")
        dialog.get_by_label("Password").fill(PASSWORD)
        dialog.get_by_label("Authenticator code (if enabled)").fill(phone.code())
        dialog.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("status")).to_contain_text(f"{staff_email} is signed out")
        staff.page.get_by_role("link", name="Security").click()
        staff.page.wait_for_url(re.compile(r"/login\?next="))
        expect(staff.page.get_by_role("heading", name="Log in")).to_be_visible()

        # The owner's next login has the MFA step.
        page.get_by_role("button", name="Sign out").first.click()
        page.wait_for_url(re.compile(r"/login$"))
        log_in(page, owner_email)
        expect(page.get_by_label("6-digit code from your authenticator app")).to_be_visible()
        looks.check(page, "login-mfa")
        page.get_by_label("6-digit code from your authenticator app").fill(phone.code())
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url(re.compile(r"/account$"))
        expect(page.locator("#sessions tbody tr")).not_to_have_count(0)
        expect(page.locator("#activity")).to_contain_text("login")
        looks.check(page, "account")

        assert owner.blocked == [] and staff.blocked == []
        assert not looks.violations, looks.violations
    finally:
        owner.context.close()
        staff.context.close()
