"""Registration, login, logout and the life of a session."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.utils import PASSWORD, Browser
from website.models import User, UserSession
from website.sessions import COOKIE_NAME


async def _sessions_of(db: AsyncSession, email: str) -> int:
    query = select(func.count()).select_from(UserSession).join(User)
    return await db.scalar(query.where(User.email == email)) or 0


async def test_register_logs_in_and_shows_name(browser: Browser) -> None:
    response = await browser.register(name="Ada Lovelace")
    assert response.status_code == 303
    assert response.headers["location"] == "/rooms"
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = await browser.http.get("/rooms")
    assert '<span id="whoami">Ada Lovelace</span>' in page.text


async def test_password_stored_as_argon2id(user: Browser, db: AsyncSession) -> None:
    stored = await db.scalar(select(User.password_hash).where(User.email == user.email))
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_duplicate_email_is_case_insensitive(user: Browser) -> None:
    await user.logout()
    response = await user.register(email=user.email.upper())
    assert response.status_code == 400
    assert "already exists" in response.text


async def test_bad_registration_keeps_input_and_explains(browser: Browser) -> None:
    response = await browser.register(email="kept@example.test", password="short")
    assert response.status_code == 400
    assert 'class="error"' in response.text and "8 to 256 characters" in response.text
    assert 'value="kept@example.test"' in response.text
    response = await browser.register(email="not-an-email")
    assert response.status_code == 400 and "not valid" in response.text


async def test_login_with_wrong_password_fails_clearly(user: Browser) -> None:
    await user.logout()
    response = await user.login(user.email, "wrong password")
    assert response.status_code == 400
    assert "Invalid email or password." in response.text
    response = await user.login("nobody@example.test", "wrong password")
    assert response.status_code == 400


async def test_login_without_csrf_is_refused(user: Browser) -> None:
    await user.logout()
    response = await user.http.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 403
    response = await user.http.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 403


async def test_login_rotates_session_id(user: Browser, db: AsyncSession) -> None:
    before = user.http.cookies[COOKIE_NAME]
    response = await user.login(user.email)
    assert response.status_code == 303
    after = user.http.cookies[COOKIE_NAME]
    assert after != before
    # The old id is dead server-side, not just replaced in this browser.
    user.http.cookies.set(COOKIE_NAME, before)
    assert (await user.http.get("/rooms")).status_code == 303
    assert await _sessions_of(db, user.email) == 1


async def test_login_goes_to_next_but_never_off_site(user: Browser) -> None:
    await user.logout()
    data = {"email": user.email, "password": PASSWORD, "next": "//evil.example/x"}
    response = await user.http.post("/login", data={**data, "csrf_token": await user.csrf()})
    assert response.headers["location"] == "/rooms"


async def test_logout_deletes_session_server_side(user: Browser, db: AsyncSession) -> None:
    cookie = user.http.cookies[COOKIE_NAME]
    assert await _sessions_of(db, user.email) == 1
    response = await user.logout()
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert await _sessions_of(db, user.email) == 0
    user.http.cookies.set(COOKIE_NAME, cookie)  # a copied cookie is worthless now
    response = await user.http.get("/rooms/anything")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/rooms/anything"


async def test_idle_session_expires(user: Browser, db: AsyncSession) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=1)
    await db.execute(
        update(UserSession)
        .where(
            UserSession.user_id == select(User.id).where(User.email == user.email).scalar_subquery()
        )
        .values(last_seen_at=long_ago)
    )
    await db.commit()
    assert (await user.http.get("/rooms")).status_code == 303
    assert await _sessions_of(db, user.email) == 0


async def test_absolute_session_expiry(user: Browser, db: AsyncSession) -> None:
    await db.execute(
        update(UserSession)
        .where(
            UserSession.user_id == select(User.id).where(User.email == user.email).scalar_subquery()
        )
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    assert (await user.http.get("/rooms")).status_code == 303


async def test_deactivated_user_loses_session(user: Browser, db: AsyncSession) -> None:
    await db.execute(update(User).where(User.email == user.email).values(is_active=False))
    await db.commit()
    assert (await user.http.get("/rooms")).status_code == 303
    assert (await user.login(user.email)).status_code == 400
