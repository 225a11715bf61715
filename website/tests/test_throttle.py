"""Per-account throttles: failed logins and registrations, held and released (design §3)."""

import asyncio
import uuid

from tests.utils import PASSWORD, app_with, open_browser
from website.config import Settings
from website.throttle import Throttle

WINDOW_S = 1.5


async def test_the_throttle_counts_per_key_and_forgets_after_the_window() -> None:
    now = [0.0]
    throttle = Throttle(limit=2, window_s=10, max_keys=100, clock=lambda: now[0])
    assert throttle.attempt("a") is None and throttle.attempt("a") is None
    assert throttle.attempt("a") == 10  # held, with the seconds to wait
    assert throttle.attempt("b") is None  # another key is untouched
    now[0] = 10.5
    assert throttle.attempt("a") is None  # released
    throttle.clear("a")
    assert throttle.attempt("a") is None and throttle.attempt("a") is None
    throttle.undo("a")
    assert throttle.attempt("a") is None


async def test_the_throttle_store_is_bounded() -> None:
    throttle = Throttle(limit=1, window_s=60, max_keys=3)
    for key in "abcdef":
        throttle.attempt(key)
    assert len(throttle) == 3
    assert throttle.attempt("f") is not None  # the most recent keys are the ones kept
    assert throttle.attempt("a") is None  # the oldest was forgotten


async def test_failed_logins_are_throttled_then_released(settings: Settings) -> None:
    async with (
        app_with(settings, login_max_failures=3, login_window_s=WINDOW_S) as app,
        open_browser(app) as person,
    ):
        assert (await person.register()).status_code == 303
        await person.logout()
        for _ in range(3):
            assert (await person.login(person.email, "wrong password")).status_code == 400
        held = await person.login(person.email.upper())  # the right password, another spelling
        assert held.status_code == 429
        assert "Too many attempts for this email address" in held.text
        assert 1 <= int(held.headers["retry-after"]) <= 2
        await asyncio.sleep(WINDOW_S + 0.2)
        assert (await person.login(person.email)).status_code == 303  # released


async def test_unknown_emails_are_throttled_alike(settings: Settings) -> None:
    """The same answers for an address without an account: nothing tells them apart."""
    async with (
        app_with(settings, login_max_failures=2, login_window_s=WINDOW_S) as app,
        open_browser(app) as person,
    ):
        nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
        for _ in range(2):
            assert (await person.login(nobody, "wrong password")).status_code == 400
        held = await person.login(nobody, "wrong password")
        assert held.status_code == 429 and "retry-after" in held.headers
        assert "Too many attempts for this email address" in held.text


async def test_a_successful_login_clears_the_failures(settings: Settings) -> None:
    async with (
        app_with(settings, login_max_failures=3, login_window_s=60) as app,
        open_browser(app) as person,
    ):
        assert (await person.register()).status_code == 303
        for _ in range(2):
            assert (await person.login(person.email, "wrong password")).status_code == 400
        assert (await person.login(person.email)).status_code == 303
        for _ in range(2):  # counting starts again
            assert (await person.login(person.email, "wrong password")).status_code == 400
        assert (await person.login(person.email)).status_code == 303


async def test_registration_attempts_are_throttled_then_released(settings: Settings) -> None:
    async with (
        app_with(settings, register_max_attempts=2, register_window_s=WINDOW_S) as app,
        open_browser(app) as person,
    ):
        email = f"reg-{uuid.uuid4().hex[:8]}@example.test"
        for _ in range(2):
            assert (await person.register(email, password="short")).status_code == 400
        held = await person.register(email.upper())
        assert held.status_code == 429 and "retry-after" in held.headers
        assert f'value="{email.upper()}"' in held.text  # the input is kept
        await asyncio.sleep(WINDOW_S + 0.2)
        assert (await person.register(email, password=PASSWORD)).status_code == 303
