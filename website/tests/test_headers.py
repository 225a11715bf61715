"""Browser hardening headers, no-store on dynamic pages, and the HTTPS cookie rules (§3)."""

import re

import pytest

from tests.utils import Browser, app_with, open_browser, unique_room
from website.config import Settings

_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
PAGES = ["/", "/login", "/register", "/rooms", "/account/password", "/no-such-page"]


async def test_every_page_carries_the_hardening_headers(user: Browser) -> None:
    room = unique_room()
    await user.create_room(room)
    for path in [*PAGES, f"/rooms/{room}", "/api/rooms", "/healthz"]:
        response = await user.http.get(path, headers={"accept": "text/html"})
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "camera=()" in response.headers["permissions-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store", path
        assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_static_files_may_be_cached_and_keys_keep_their_own_policy(
    browser: Browser,
) -> None:
    css = await browser.http.get("/static/style.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")
    assert css.headers["x-content-type-options"] == "nosniff"
    jwks = await browser.http.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"


async def test_templates_have_no_inline_style_or_handlers(user: Browser) -> None:
    room = unique_room()
    await user.create_room(room)
    for path in [*PAGES, f"/rooms/{room}"]:
        text = (await user.http.get(path)).text
        assert " style=" not in text and "<style" not in text, path
        assert not _HANDLER.search(text), path


@pytest.mark.parametrize("url", ["ftp://x", "https://", "https://a.example/path", "nonsense"])
def test_public_url_must_be_an_origin(settings: Settings, url: str) -> None:
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        Settings(public_url=url)


async def test_over_https_cookies_are_secure_host_prefixed_and_hsts_is_sent(
    settings: Settings,
) -> None:
    async with (
        app_with(settings, public_url="https://chat.example.test/") as app,
        open_browser(app, "https://testserver") as person,
    ):
        page = await person.http.get("/register")
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "wss://chat.example.test" in page.headers["content-security-policy"]
        csrf_cookie = page.headers["set-cookie"]
        assert csrf_cookie.startswith("__Host-parley_csrf=")
        assert "Secure" in csrf_cookie and "Path=/" in csrf_cookie and "Domain" not in csrf_cookie
        response = await person.register()
        assert response.status_code == 303, response.text
        session_cookie = response.headers["set-cookie"]
        assert session_cookie.startswith("__Host-parley_session=") and "Secure" in session_cookie
        assert "HttpOnly" in session_cookie
        assert (await person.http.get("/rooms")).status_code == 200
        value = person.http.cookies["__Host-parley_session"]
        async with open_browser(app, "https://testserver") as again:
            again.http.cookies.set("parley_session", value)  # the plain name is no good
            assert (await again.http.get("/rooms")).status_code == 303
