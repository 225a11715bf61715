"""The account page: display name, log out everywhere; errors that say where to look."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.utils import Browser, unique_room
from website.models import User, UserSession


async def test_header_links_the_account_page(user: Browser) -> None:
    page = await user.http.get("/rooms")
    assert 'href="/account"' in page.text and 'rel="icon"' in page.text
    account = await user.http.get("/account")
    assert account.status_code == 200 and user.email in account.text


async def test_display_name_changes_and_bad_names_are_explained(
    user: Browser, db: AsyncSession
) -> None:
    csrf = await user.csrf("/account")
    response = await user.http.post(
        "/account/name", data={"display_name": "  Ann   Lee ", "csrf_token": csrf}
    )
    assert response.status_code == 200 and "You are now “Ann Lee”" in response.text
    assert '<span id="whoami">Ann Lee</span>' in response.text
    stored = await db.scalar(select(User.display_name).where(User.email == user.email))
    assert stored == "Ann Lee"

    response = await user.http.post(
        "/account/name", data={"display_name": "x" * 51, "csrf_token": csrf}
    )
    assert response.status_code == 400 and "at most 50 characters" in response.text
    # The field to fix keeps what was typed, takes the focus and is marked invalid.
    assert 'value="' + "x" * 51 + '"' in response.text
    assert 'autofocus aria-invalid="true"' in response.text


async def test_log_out_everywhere_ends_every_session(
    app: object, user: Browser, other: Browser, db: AsyncSession
) -> None:
    assert (await other.login(user.email)).status_code == 303
    csrf = await user.csrf("/account")
    response = await user.http.post("/account/logout-everywhere", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    count = await db.scalar(
        select(func.count()).select_from(UserSession).join(User).where(User.email == user.email)
    )
    assert count == 0
    for device in (user, other):
        page = await device.http.get("/rooms")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


async def test_failed_login_focuses_the_password_and_keeps_the_email(user: Browser) -> None:
    await user.logout()
    response = await user.login(user.email, "wrong password")
    assert response.status_code == 400
    assert f'value="{user.email}"' in response.text
    assert 'name="password" required autocomplete="current-password" autofocus' in response.text
    assert "wrong password" not in response.text


async def test_rooms_can_be_searched(user: Browser) -> None:
    needle = unique_room()
    assert (await user.create_room(needle, title="Needle 100%_room")).status_code == 303
    assert (await user.create_room(title="Haystack")).status_code == 303
    page = await user.http.get("/rooms", params={"q": needle.upper()})
    assert page.status_code == 200 and f'href="/rooms/{needle}"' in page.text
    assert "Haystack" not in page.text
    # % and _ are literal characters, not wildcards.
    assert "Needle 100%_room" in (await user.http.get("/rooms", params={"q": "100%_"})).text
    assert "Haystack" not in (await user.http.get("/rooms", params={"q": "%"})).text
    nothing = await user.http.get("/rooms", params={"q": "no-such-room-anywhere"})
    assert "No room matches" in nothing.text
    refused = await user.http.get("/rooms", params={"q": "a\x00b"})
    assert refused.status_code == 400


async def test_unknown_page_is_worded_once(browser: Browser) -> None:
    page = await browser.http.get("/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "<h1>Not found</h1>" in page.text and "Not Found" not in page.text
    assert "There is nothing at this address." in page.text
