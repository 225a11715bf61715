"""Two people in Debian's Chromium, driven by Playwright through nginx.

Playwright's sync API runs its own event loop, so this module has only plain (sync) tests
and fixtures; Playwright starts and stops within the module."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    expect,
    sync_playwright,
)

from support import CHROMIUM_ARGS, PASSWORD, Settings, sensitive, unique_name, unique_room

pytestmark = pytest.mark.browser
UI_WAIT_MS = 20_000  # a bound, not a sleep: generous for a loaded CI machine
XSS = sensitive("<img src=x onerror=alert(1)>")


class PageFactory:
    """The new_page fixture: each call opens a page in its own browser context (its own
    cookies: one person each); any dialog a page opens is noted, as it would be an injection."""

    def __init__(self, browser: Browser, settings: Settings) -> None:
        self.browser = browser
        self.settings = settings
        self.contexts: list[BrowserContext] = []
        self.dialogs: list[str] = []

    def __call__(self) -> Page:
        context = self.browser.new_context(
            base_url=self.settings.base_url, viewport={"width": 1000, "height": 700}
        )
        context.set_default_timeout(UI_WAIT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", self._on_dialog)
        return page

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture(scope="module")
def browser(settings: Settings) -> Iterator[Browser]:
    expect.set_options(timeout=UI_WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=settings.chromium, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser, settings: Settings) -> Iterator[PageFactory]:
    factory = PageFactory(browser, settings)
    yield factory
    factory.close()


def register(page: Page, settings: Settings, name: str) -> None:
    page.goto("/register")
    page.fill("input[name=email]", settings.unique_email("ui"))
    page.fill("input[name=display_name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    expect(page).to_have_url(re.compile(r"/rooms$"))
    expect(page.locator("#whoami")).to_have_text(name)


def messages(page: Page) -> Locator:
    return page.locator("#messages li.message")


def expect_message(page: Page, index: int, sender: str, text: str) -> None:
    item = messages(page).nth(index)
    expect(item.locator(".from")).to_have_text(sender)
    expect(item.locator(".text")).to_have_text(text)
    expect(item.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))


def test_two_people_chat_in_the_browser(new_page: PageFactory, settings: Settings) -> None:
    one, two = new_page(), new_page()
    name1, name2 = unique_name("Uno"), unique_name("Dos")
    register(one, settings, name1)
    register(two, settings, name2)

    room = unique_room("ui")
    one.fill("#create-room input[name=name]", room)
    one.fill("#create-room input[name=title]", f"Browser room {room}")
    one.press("#create-room input[name=title]", "Enter")
    expect(one).to_have_url(re.compile(rf"/rooms/{room}$"))
    expect(one.locator("#chat")).to_have_attribute("data-room", room)
    expect(one.locator("#status")).to_have_text("connected")

    two.reload()  # the room list now has the new room; open it like a person would
    two.click(f'#room-list a[href="/rooms/{room}"]')
    expect(two).to_have_url(re.compile(rf"/rooms/{room}$"))
    expect(two.locator("#status")).to_have_text("connected")
    expect(one.locator("#members")).to_contain_text(name2)
    expect(two.locator("#members")).to_contain_text(name1)
    expect(one.locator("#messages li.event", has_text=name2).first).to_be_visible()

    first = sensitive(f"Hello from one {uuid.uuid4().hex[:6]}")
    one.fill("#message-input", first)
    one.press("#message-input", "Enter")
    expect(messages(two)).to_have_count(1)
    second = sensitive(f"Hi back from two {uuid.uuid4().hex[:6]}")
    two.fill("#message-input", second)
    two.click("#send")
    for page in (one, two):
        expect(messages(page)).to_have_count(2)
        expect_message(page, 0, name1, first)
        expect_message(page, 1, name2, second)

    # Markup in a message is shown as text, never run.
    one.fill("#message-input", XSS)
    one.click("#send")
    for page in (one, two):
        expect(messages(page)).to_have_count(3)
        expect_message(page, 2, name1, XSS)
        assert messages(page).nth(2).locator(".text").text_content() == XSS
        expect(page.locator("#messages img")).to_have_count(0)
    assert new_page.dialogs == [], f"a message ran script: {new_page.dialogs}"

    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    for label, page in (("user1", one), ("user2", two)):
        path = settings.artifacts_dir / f"chat-{settings.run_slug}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0

    # Logging out closes one's socket: two sees one leave.
    one.locator("#logout-form").get_by_role("button").click()
    expect(one).to_have_url(re.compile(r"/login(\?.*)?$"))
    expect(two.locator("#messages li.event", has_text=name1)).to_have_count(1)

    # The room page is now out of reach: back to the login form.
    one.goto(f"/rooms/{room}")
    expect(one).to_have_url(re.compile(r"/login(\?.*)?$"))
    expect(one.locator("input[name=password]")).to_be_visible()
    expect(one.locator("#status")).to_have_count(0)
