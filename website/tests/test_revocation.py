"""Who tells the chat to close sockets: logout (one session), password change (every other
session), and the operator's deactivate command (all of them) (design §3, §4)."""

import hashlib
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.utils import PASSWORD, Browser, ControlListener, app_with, control_listener, open_browser
from website import admin
from website.config import Settings
from website.models import User, UserSession
from website.sessions import COOKIE_NAME

NEW_PASSWORD = "a brand new passphrase"


def _sid(person: Browser) -> str:
    return hashlib.sha256(person.http.cookies[COOKIE_NAME].encode()).digest()[:8].hex()


@pytest.fixture
async def chat(settings: Settings) -> AsyncIterator[ControlListener]:
    """The bus's control channel, heard as a chat replica hears it."""
    async with control_listener(settings) as listener:
        yield listener


@pytest.fixture
async def site(settings: Settings, chat: ControlListener) -> AsyncIterator[FastAPI]:
    async with app_with(settings) as app:
        yield app


async def _sessions(db: AsyncSession, email: str) -> int:
    query = select(func.count()).select_from(UserSession).join(User)
    return await db.scalar(query.where(User.email == email)) or 0


async def test_logout_revokes_only_that_sessions_sockets(
    site: FastAPI, chat: ControlListener
) -> None:
    async with open_browser(site) as person:
        assert (await person.register()).status_code == 303
        sid = _sid(person)
        assert (await person.logout()).status_code == 303
    (claims,) = await chat.revoked()
    assert claims["purpose"] == "user_revoked" and claims["sid"] == sid


async def test_password_change_ends_every_other_session(
    site: FastAPI, chat: ControlListener, db: AsyncSession
) -> None:
    async with (
        open_browser(site) as here,
        open_browser(site) as laptop,
        open_browser(site) as phone,
    ):
        assert (await here.register()).status_code == 303
        for device in (laptop, phone):
            assert (await device.login(here.email)).status_code == 303
        assert await _sessions(db, here.email) == 3
        page = await here.http.get("/account")
        assert 'href="/account/password"' in page.text
        data = {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
            "csrf_token": await here.csrf("/account/password"),
        }
        response = await here.http.post("/account/password", data=data)
        assert response.status_code == 200 and "2 other sessions were logged out" in response.text
        assert {c["sid"] for c in await chat.revoked()} == {_sid(laptop), _sid(phone)}
        assert await _sessions(db, here.email) == 1
        assert (await here.http.get("/rooms")).status_code == 200  # this session stays
        assert (await laptop.http.get("/rooms")).status_code == 303
        assert (await laptop.login(here.email)).status_code == 400  # the old password is gone
        assert (await laptop.login(here.email, NEW_PASSWORD)).status_code == 303


@pytest.mark.parametrize(
    ("current", "new", "again", "reason"),
    [
        ("wrong password", NEW_PASSWORD, NEW_PASSWORD, "current password is not right"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "do not match"),
        (PASSWORD, "short", "short", "8 to 256 characters"),
    ],
)
async def test_a_refused_password_change_changes_nothing(
    site: FastAPI, chat: ControlListener, current: str, new: str, again: str, reason: str
) -> None:
    async with open_browser(site) as person, open_browser(site) as other:
        assert (await person.register()).status_code == 303
        assert (await other.login(person.email)).status_code == 303
        data = {"current_password": current, "new_password": new, "new_password_again": again}
        data["csrf_token"] = await person.csrf("/account/password")
        response = await person.http.post("/account/password", data=data)
        assert response.status_code == 400 and reason in response.text
        assert await chat.revoked() == []
        assert (await other.http.get("/rooms")).status_code == 200


async def test_the_password_page_needs_a_login(browser: Browser) -> None:
    response = await browser.http.get("/account/password")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/account/password"


async def test_deactivate_and_reactivate(
    site: FastAPI, settings: Settings, chat: ControlListener, db: AsyncSession
) -> None:
    async with open_browser(site) as person:
        assert (await person.register()).status_code == 303
        here = settings
        assert await admin.run(here, "deactivate", person.email.upper()) == 0
        (claims,) = await chat.revoked()
        assert "sid" not in claims  # every session, every socket
        assert await _sessions(db, person.email) == 0
        assert (await person.http.get("/rooms")).status_code == 303
        assert (await person.login(person.email)).status_code == 400
        assert await admin.run(here, "reactivate", person.email) == 0
        assert (await person.login(person.email)).status_code == 303
    assert await admin.run(here, "deactivate", "nobody@example.test") == 1
    with pytest.raises(SystemExit):
        admin.main(["explode", "x@example.test"])
