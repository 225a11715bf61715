"""The pages in Debian's Chromium, driven by Playwright through nginx: chat between people,
typing, presence, history kept by the tab, XSS shown literally, keyboard only, dark mode and a
phone, axe-core, and (in the chaos suite) a chat restart survived without a reload.

Playwright's sync API runs its own event loop, so this module has only plain (sync) tests
and fixtures; the operator handshake (async) runs in a thread of its own. Each test saves a
screenshot into ARTIFACTS_DIR (browser-<what>-<run>.png); the README's come from these."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Locator,
    Page,
    expect,
    sync_playwright,
)

from support import (
    CHROMIUM_ARGS,
    PASSWORD,
    Settings,
    operator,
    sensitive,
    unique_name,
    unique_room,
)

pytestmark = pytest.mark.browser
UI_WAIT_MS = 20_000  # a bound, not a sleep: generous for a loaded CI machine
RECOVER_MS = 10_000  # after the chat is back, pages are live again within this
TYPING_GONE_MS = 9_000  # the page hides "is typing" 5 s after the last frame (+ slack)
XSS = sensitive("<img src=x onerror=alert(1)>")
DESKTOP = {"width": 1100, "height": 760}
PHONE = {"width": 360, "height": 740}
AXE_PATH = Path(os.environ.get("AXE_PATH", "/opt/axe/axe.min.js"))


class PageFactory:
    """The new_page fixture: each call opens a page in its own browser context (its own
    cookies: one person each). Any dialog a page opens is noted (it would be an injection),
    and so are script errors and Content-Security-Policy refusals: the test fails on either."""

    def __init__(self, browser: Browser, settings: Settings) -> None:
        self.browser = browser
        self.settings = settings
        self.contexts: list[BrowserContext] = []
        self.dialogs: list[str] = []
        self.problems: list[str] = []

    def __call__(self, **options: Any) -> Page:
        options.setdefault("viewport", DESKTOP)
        context = self.browser.new_context(base_url=self.settings.base_url, **options)
        context.set_default_timeout(UI_WAIT_MS)
        self.contexts.append(context)
        return self.watch(context.new_page())

    def watch(self, page: Page) -> Page:
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._on_console)
        return page

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")

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
    assert factory.dialogs == [], f"a page opened a dialog (script ran): {factory.dialogs}"
    assert factory.problems == [], factory.problems


# ---------------------------------------------------------------- what a person does


def shot(page: Page, settings: Settings, what: str, full_page: bool = False) -> Path:
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    path = settings.artifacts_dir / f"browser-{what}-{settings.run_slug}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 0
    return path


def register(page: Page, settings: Settings, name: str) -> str:
    email = settings.unique_email("ui")
    page.goto("/register")
    page.fill("#email", email)
    page.fill("#display_name", name)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page).to_have_url(re.compile(r"/rooms$"))
    expect(page.locator("#whoami")).to_have_text(name)
    return email


def create_room(page: Page, title: str | None = None) -> str:
    room = unique_room("ui")
    page.goto("/rooms")
    page.fill("#room-name", room)
    page.fill("#room-title", title or f"Room {room}")
    page.press("#room-title", "Enter")
    expect(page).to_have_url(re.compile(rf"/rooms/{room}$"))
    expect_connected(page)
    return room


def open_room(page: Page, room: str) -> None:
    page.goto(f"/rooms/{room}")
    expect_connected(page)


def expect_connected(page: Page, timeout: int = UI_WAIT_MS) -> None:
    expect(page.locator("#status")).to_have_text("connected", timeout=timeout)


def send(page: Page, text: str) -> None:
    sensitive(text)
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")
    expect(page.locator("#message-input")).to_have_value("")


def messages(page: Page) -> Locator:
    return page.locator("#messages li.message")


def expect_messages(page: Page, expected: list[tuple[str, str]]) -> None:
    """Exactly these (sender, text) messages, in this order, each with a local time."""
    items = messages(page)
    expect(items).to_have_count(len(expected))
    expect(items.locator(".text")).to_have_text([text for _, text in expected])
    expect(items.locator(".from")).to_have_text([sender for sender, _ in expected])
    expect(items.locator("time")).to_have_count(len(expected))
    for i in range(len(expected)):
        datetime = items.nth(i).locator("time").get_attribute("datetime") or ""
        assert re.match(r"^\d{4}-\d\d-\d\dT", datetime), datetime


def members(page: Page) -> Locator:
    return page.locator("#members li")


def stored_history(page: Page) -> str:
    """Everything Parley keeps in this tab's sessionStorage, as one string."""
    return str(
        page.evaluate(
            "() => JSON.stringify(Object.entries(sessionStorage)"
            ".filter(([k]) => k.startsWith('parley:')))"
        )
    )


def ask_operator(settings: Settings, action: str) -> str:
    """The operator handshake of support.py, from this sync module (its own event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, operator(settings, action)).result()


def logout(page: Page) -> None:
    page.locator("#logout-form").get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/login(\?.*)?$"))


# ---------------------------------------------------------------- 1) two people, one room


def test_two_people_chat_and_another_room_sees_nothing(
    new_page: PageFactory, settings: Settings
) -> None:
    one, two, three = new_page(), new_page(), new_page()
    name1, name2, name3 = unique_name("Uno"), unique_name("Dos"), unique_name("Tres")
    register(one, settings, name1)
    register(two, settings, name2)
    register(three, settings, name3)
    room = create_room(one, f"Planning {uuid.uuid4().hex[:4]}")
    elsewhere = create_room(three)

    two.goto("/rooms")  # open it like a person would: from the list
    expect(two.locator("#room-list")).to_contain_text(room)
    shot(two, settings, "rooms")
    two.click(f'#room-list a[href="/rooms/{room}"]')
    expect_connected(two)
    expect(members(one)).to_have_text([name1 + " (you)", name2])
    expect(members(two)).to_have_text([name1, name2 + " (you)"])
    expect(one.locator("#messages li.event", has_text=f"{name2} joined")).to_be_visible()

    said: list[tuple[str, str]] = []
    for page, name, text in (
        (one, name1, f"Hello from one {uuid.uuid4().hex[:6]}"),
        (two, name2, f"Hi back from two {uuid.uuid4().hex[:6]}"),
        (two, name2, f"And a second line {uuid.uuid4().hex[:6]}"),
        (one, name1, f"Shall we start? {uuid.uuid4().hex[:6]}"),
    ):
        send(page, text)
        said.append((name, text))
        for each in (one, two):
            expect_messages(each, said)
    # Own messages are set apart; a sender's consecutive messages are grouped.
    expect(messages(one).nth(0)).to_have_class(re.compile(r"\bmine\b"))
    expect(messages(two).nth(0)).not_to_have_class(re.compile(r"\bmine\b"))
    expect(messages(two).nth(2)).to_have_class(re.compile(r"\bgrouped\b"))

    expect(members(three)).to_have_text([name3 + " (you)"])
    expect(messages(three)).to_have_count(0)
    expect(three.locator("#messages")).not_to_contain_text(name1)
    assert three.url.endswith(f"/rooms/{elsewhere}")
    shot(one, settings, "chat")
    shot(two, settings, "chat-other")


# ---------------------------------------------------------------- 2) typing


def test_typing_shows_on_the_other_page_and_goes_away(
    new_page: PageFactory, settings: Settings
) -> None:
    ann, bob = new_page(), new_page()
    ann_name, bob_name = unique_name("Ann"), unique_name("Bob")
    register(ann, settings, ann_name)
    register(bob, settings, bob_name)
    room = create_room(ann)
    open_room(bob, room)
    expect(members(ann)).to_have_count(2)

    ann.locator("#message-input").press_sequentially("Just a sec", delay=30)
    expect(bob.locator("#typing")).to_have_text(f"{ann_name} is typing…")
    expect(ann.locator("#typing")).to_have_text("")  # never echoed to the sender
    shot(bob, settings, "typing")
    # Ann stops typing: the line goes by itself, with no message sent.
    expect(bob.locator("#typing")).to_have_text("", timeout=TYPING_GONE_MS)
    # Typing again, then sending: the message replaces the indicator at once.
    ann.locator("#message-input").press_sequentially(" more", delay=30)
    expect(bob.locator("#typing")).to_have_text(f"{ann_name} is typing…")
    ann.press("#message-input", "Enter")
    expect(messages(bob)).to_have_count(1)
    expect(bob.locator("#typing")).to_have_text("", timeout=2_000)


# ---------------------------------------------------------------- 3) a chat restart


@pytest.mark.chaos
def test_chat_restart_mid_conversation_recovers_without_a_reload(
    new_page: PageFactory, settings: Settings
) -> None:
    one, two = new_page(), new_page()
    name1, name2 = unique_name("Uno"), unique_name("Dos")
    register(one, settings, name1)
    register(two, settings, name2)
    room = create_room(one)
    open_room(two, room)
    before = f"before the restart {uuid.uuid4().hex[:6]}"
    send(one, before)
    expect(messages(two)).to_have_count(1)
    draft = sensitive(f"typed while it was down {uuid.uuid4().hex[:6]}")

    ask_operator(settings, "stop-chat")
    for page in (one, two):
        expect(page.locator("#status")).to_contain_text("reconnecting")
        expect(page.locator("#send")).to_be_disabled()
    one.fill("#message-input", draft)
    expect(one.locator("#status")).to_have_text(re.compile(r"^reconnecting in \d+ s$"))
    shot(one, settings, "reconnecting")

    ask_operator(settings, "start-chat")
    back = time.monotonic()
    for page in (one, two):
        expect_connected(page, timeout=RECOVER_MS)
    recovered = time.monotonic() - back
    assert recovered <= RECOVER_MS / 1000, f"pages live again {recovered:.1f} s after the chat"
    for page in (one, two):
        divider = page.locator("#messages li.divider.offline")
        expect(divider).to_have_count(1)
        expect(divider).to_have_text(
            re.compile(r"offline from .+ to .+ — messages sent meanwhile are not shown")
        )
    expect(one.locator("#message-input")).to_have_value(draft)  # the draft survived
    one.press("#message-input", "Enter")
    expect_messages(two, [(name1, before), (name1, draft)])
    send(two, after := f"after the restart {uuid.uuid4().hex[:6]}")
    expect_messages(one, [(name1, before), (name1, draft), (name2, after)])
    shot(two, settings, "recovered")


# ---------------------------------------------------------------- 4) markup is text


def test_markup_in_a_message_a_name_and_a_title_is_shown_literally(
    new_page: PageFactory, settings: Settings
) -> None:
    one, two = new_page(), new_page()
    name2 = unique_name("Dos")
    register(one, settings, XSS)
    register(two, settings, name2)
    room = create_room(one, XSS)
    open_room(two, room)
    send(one, XSS)
    for page in (one, two):
        expect(page.locator("h1")).to_have_text(XSS)
        expect_messages(page, [(XSS, XSS)])
        expect(page.locator("img[src=x]")).to_have_count(0)
        assert messages(page).first.locator(".text").text_content() == XSS
    expect(members(two)).to_have_text([XSS, name2 + " (you)"])
    expect(one.locator("#whoami")).to_have_text(XSS)
    two.goto("/rooms")
    expect(two.locator(f'#room-list a[href="/rooms/{room}"]')).to_have_text(XSS)
    expect(two.locator("img[src=x]")).to_have_count(0)
    # new_page's teardown fails the test if any dialog opened.


# ---------------------------------------------------------------- 5) the tab remembers


def test_reload_back_and_forward_show_what_was_seen_and_logout_forgets_it(
    new_page: PageFactory, settings: Settings
) -> None:
    page = new_page()
    name = unique_name("Mem")
    register(page, settings, name)
    room = create_room(page)
    said = [(name, f"remember me {i} {uuid.uuid4().hex[:6]}") for i in range(3)]
    for _, text in said:
        send(page, text)
    expect_messages(page, said)

    def shown_again() -> None:
        expect_connected(page)
        expect_messages(page, said)
        divider = page.locator("#messages li.divider.resume")
        expect(divider).to_have_count(1)
        # The restored messages come before the divider, the live stream after it.
        last = page.locator("#messages > li").last
        expect(last).not_to_have_class(re.compile(r"\bmessage\b"))

    page.reload()
    shown_again()
    page.goto("/rooms")
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/rooms/{room}$"))
    shown_again()
    page.go_forward()
    expect(page).to_have_url(re.compile(r"/rooms$"))
    page.go_back()
    shown_again()
    shot(page, settings, "restored")
    assert said[0][1] in stored_history(page)

    logout(page)
    left = stored_history(page)
    assert left == "[]", f"sessionStorage still holds Parley's history: {left[:200]}"


# ---------------------------------------------------------------- 6) someone leaves


def test_closing_a_tab_is_a_leave_the_others_see(
    new_page: PageFactory, settings: Settings
) -> None:
    one, two = new_page(), new_page()
    name1, name2 = unique_name("Stay"), unique_name("Go")
    register(one, settings, name1)
    register(two, settings, name2)
    room = create_room(one)
    open_room(two, room)
    expect(members(one)).to_have_count(2)
    expect(one.locator("#member-count")).to_have_text("2")

    two.close()
    expect(one.locator("#messages li.event", has_text=f"{name2} left")).to_be_visible()
    expect(members(one)).to_have_text([name1 + " (you)"])
    expect(one.locator("#member-count")).to_have_text("1")
    shot(one, settings, "left")


# ---------------------------------------------------------------- 7) logout in another tab


def test_logging_out_in_one_tab_sends_the_chat_tab_to_login(
    new_page: PageFactory, settings: Settings
) -> None:
    chat = new_page()
    register(chat, settings, unique_name("Tabs"))
    room = create_room(chat)
    other = new_page.watch(chat.context.new_page())  # a second tab, the same session
    other.goto("/rooms")
    logout(other)
    expect(chat).to_have_url(re.compile(rf"/login\?next=%2Frooms%2F{room}$"), timeout=5_000)
    expect(chat.locator("#password")).to_be_visible()
    assert stored_history(chat) == "[]"


# ---------------------------------------------------------------- 8) keyboard only


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element matching `selector` has the focus (as a person would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only_log_in_open_a_room_and_send(
    new_page: PageFactory, settings: Settings
) -> None:
    setup = new_page()
    name = unique_name("Keys")
    email = register(setup, settings, name)
    room = create_room(setup, f"Keyboard {uuid.uuid4().hex[:4]}")

    page = new_page()
    page.goto("/login")
    # The email field takes the focus on arrival (autofocus); the rest is Tab, keys and Enter.
    if page.evaluate("() => document.activeElement?.id") != "email":
        tab_to(page, "#email")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/rooms$"))
    tab_to(page, f'#room-list a[href="/rooms/{room}"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/rooms/{room}$"))
    expect_connected(page)
    tab_to(page, "#message-input")
    text = sensitive(f"typed with keys only {uuid.uuid4().hex[:6]}")
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    expect_messages(page, [(name, f"first line\n{text}")])
    shot(page, settings, "keyboard")


# ---------------------------------------------------------------- 9) dark, and a phone


Box = tuple[float, float, float, float]  # x, y, width, height


def overlaps(a: Box, b: Box) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return not (ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay)


def check_layout(page: Page) -> None:
    """Nothing wider than the screen, and no two header items on top of each other."""
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: content {width[0]} px wide on {width[1]} px"
    items = page.locator(".topbar .brand, .topbar nav > *")
    boxes: list[Box] = [
        (box["x"], box["y"], box["width"], box["height"])
        for i in range(items.count())
        if (box := items.nth(i).bounding_box())
    ]
    assert len(boxes) >= 3
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not overlaps(a, b), f"{page.url}: header items overlap: {a} {b}"


def background_luminance(page: Page) -> float:
    rgb = page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor")
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_mode_and_a_360_px_phone(new_page: PageFactory, settings: Settings) -> None:
    phone = new_page(viewport=PHONE, color_scheme="dark", is_mobile=True, has_touch=True)
    dark = new_page(color_scheme="dark")
    name, other = unique_name("Night Owl with a long name"), unique_name("Early Bird")
    register(phone, settings, name)
    register(dark, settings, other)
    room = create_room(phone, "A room with a rather long title for a small phone screen")
    open_room(dark, room)
    send(dark, f"Evening! {uuid.uuid4().hex[:6]}")
    send(phone, f"Hello from a phone {uuid.uuid4().hex[:6]}")
    expect(messages(phone)).to_have_count(2)

    for page in (phone, dark):
        assert background_luminance(page) < 0.1, "the background is not dark"
    for path in ("/rooms", "/account", f"/rooms/{room}"):
        phone.goto(path)
        check_layout(phone)
    expect_connected(phone)
    shot(phone, settings, "phone")
    shot(dark, settings, "dark")
    # On a phone the members list is a drawer behind a button.
    expect(phone.locator("#members-panel")).to_be_hidden()
    phone.click("#members-toggle")
    expect(phone.locator("#members-panel")).to_be_visible()
    expect(phone.locator("#members-toggle")).to_have_attribute("aria-expanded", "true")
    shot(phone, settings, "phone-members")
    phone.keyboard.press("Escape")
    expect(phone.locator("#members-panel")).to_be_hidden()
    phone.goto("/rooms")
    shot(phone, settings, "phone-rooms")


# ---------------------------------------------------------------- 10) axe-core


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    except Error as exc:
        raise AssertionError(f"axe did not run on {page.url}: {exc}") from None
    return found


def test_axe_finds_no_serious_violation_on_any_page(
    new_page: PageFactory, settings: Settings
) -> None:
    assert AXE_PATH.is_file(), f"axe-core is not at {AXE_PATH}"
    page = new_page()
    # Added by the DevTools protocol before each document, so the page's CSP does not apply.
    page.context.add_init_script(path=AXE_PATH)
    peer = new_page()
    name = unique_name("Axe")
    anonymous = ["/", "/login", "/register", "/no-such-page"]
    found: dict[str, Any] = {}
    for path in anonymous:
        page.goto(path)
        found[path] = axe_violations(page)
    page.goto("/login?next=/rooms")
    page.fill("#email", "nobody@example.com")
    page.fill("#password", "not the password")
    page.press("#password", "Enter")
    expect(page.locator("#form-error")).to_be_visible()
    found["/login (failed)"] = axe_violations(page)

    register(page, settings, name)
    register(peer, settings, unique_name("Peer"))
    room = create_room(page)
    open_room(peer, room)
    send(peer, "a message from someone else")
    send(page, "and one of mine")
    expect(messages(page)).to_have_count(2)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        found[f"/rooms/{room} ({scheme})"] = axe_violations(page)
        for path in ("/rooms", "/account", "/account/password"):
            page.goto(path)
            found[f"{path} ({scheme})"] = axe_violations(page)
        page.goto(f"/rooms/{room}")
        expect_connected(page)
    bad = {where: v for where, v in found.items() if v}
    assert not bad, json.dumps(bad, indent=1)
