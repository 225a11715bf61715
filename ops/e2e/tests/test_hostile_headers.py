"""Browser hardening as it reaches the browser, through nginx (docs/design.md §3):
the CSP and its friends on every HTML page, no-store on pages that carry a session or a CSRF
token, and the cookies' attributes."""

from __future__ import annotations

import re

import httpx
import pytest

from support import Client, MakeClient, Settings, describe

PUBLIC_PAGES = ["/", "/login", "/register"]
PRIVATE_PAGES = ["/rooms", "/account/password", "/rooms?page=2"]
_INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
_SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)


def _csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers.get("content-security-policy", "")
    assert policy, f"no CSP: {describe(response)}"
    directives = (d.strip().split(None, 1) for d in policy.split(";") if d.strip())
    return {d[0]: (d[1] if len(d) > 1 else "") for d in directives}


def _assert_hardened(response: httpx.Response) -> None:
    csp = _csp(response)
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert csp.get("frame-ancestors") == "'none'", csp
    assert csp.get("script-src") == "'self'", csp
    assert csp.get("object-src", csp.get("default-src")) == "'none'", csp
    assert response.headers.get("x-content-type-options") == "nosniff", describe(response)
    assert response.headers.get("referrer-policy") in {"same-origin", "no-referrer"}
    assert "camera=()" in response.headers.get("permissions-policy", "")


def _cookie(response: httpx.Response, name: str) -> dict[str, str]:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            attrs = {}
            for part in header.split(";")[1:]:
                key, _, value = part.strip().partition("=")
                attrs[key.lower()] = value
            return attrs
    raise AssertionError(f"no {name} cookie set: {describe(response)}")


@pytest.mark.parametrize("path", PUBLIC_PAGES)
async def test_public_pages_are_hardened(make_client: MakeClient, path: str) -> None:
    client = await make_client()
    response = await client.get(path)
    assert response.status_code == 200, describe(response)
    _assert_hardened(response)
    assert response.headers.get("cache-control") == "no-store"  # they carry a CSRF token


@pytest.mark.parametrize("path", PRIVATE_PAGES)
async def test_logged_in_pages_are_hardened_and_never_cached(alice: Client, path: str) -> None:
    response = await alice.get(path)
    assert response.status_code == 200, describe(response)
    _assert_hardened(response)
    assert "no-store" in response.headers.get("cache-control", ""), describe(response)


async def test_the_chat_page_is_hardened_and_runs_no_inline_script(
    alice: Client, room: str
) -> None:
    response = await alice.get(f"/rooms/{room}")
    _assert_hardened(response)
    assert "no-store" in response.headers["cache-control"]
    for attrs in _SCRIPT.findall(response.text):
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
    assert not _INLINE_HANDLER.search(response.text)
    assert " style=" not in response.text and "<style" not in response.text


@pytest.mark.parametrize("path", ["/rooms/no-such-room-here", "/no/such/page"])
async def test_error_pages_are_hardened(alice: Client, path: str) -> None:
    response = await alice.get(path, headers={"accept": "text/html"})
    assert response.status_code == 404, describe(response)
    _assert_hardened(response)


async def test_the_json_api_is_nosniff_and_not_cached(alice: Client) -> None:
    response = await alice.get("/api/rooms")
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert "no-store" in response.headers.get("cache-control", "")


async def test_refusals_are_hardened_too(alice: Client) -> None:
    response = await alice.http.post("/rooms", data={"name": "x"}, headers={"accept": "text/html"})
    assert response.status_code == 403, describe(response)
    _assert_hardened(response)


async def test_no_page_of_ours_has_inline_style_or_handlers(alice: Client) -> None:
    for path in [*PUBLIC_PAGES, *PRIVATE_PAGES]:
        text = (await alice.get(path)).text
        assert not _INLINE_HANDLER.search(text), path
        assert " style=" not in text and "<style" not in text, path


async def test_the_stylesheet_and_script_are_served_with_nosniff(make_client: MakeClient) -> None:
    client = await make_client()
    for path, kind in [("/static/style.css", "text/css"), ("/static/chat.js", "javascript")]:
        response = await client.get(path)
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert response.headers.get("x-content-type-options") == "nosniff"


async def test_no_hsts_over_plain_http(make_client: MakeClient, settings: Settings) -> None:
    if settings.base_url.startswith("https://"):
        pytest.skip("the stack under test is served over HTTPS")
    response = await (await make_client()).get("/")
    assert "strict-transport-security" not in response.headers


async def test_the_session_cookie_is_httponly_lax_and_site_wide(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.register()
    attrs = _cookie(response, "parley_session")
    assert "httponly" in attrs and attrs.get("samesite", "").lower() == "lax"
    assert attrs.get("path") == "/" and "domain" not in attrs
    assert int(attrs["max-age"]) > 0


async def test_the_anonymous_csrf_cookie_is_httponly_and_lax(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/login")
    attrs = _cookie(response, "parley_csrf")
    assert "httponly" in attrs and attrs.get("samesite", "").lower() == "lax"
    assert attrs.get("path") == "/" and "domain" not in attrs


async def test_logout_expires_the_session_cookie(alice: Client) -> None:
    response = await alice.logout()
    attrs = _cookie(response, "parley_session")
    assert attrs.get("max-age") == "0" or "1970" in attrs.get("expires", "")


async def test_pages_are_not_frameable(make_client: MakeClient) -> None:
    response = await (await make_client()).get("/login")
    assert response.headers.get("x-frame-options") == "DENY"
    assert _csp(response)["frame-ancestors"] == "'none'"


async def test_the_csp_allows_the_page_its_own_socket(make_client: MakeClient) -> None:
    csp = _csp(await (await make_client()).get("/"))
    assert "'self'" in csp["connect-src"] and "*" not in csp["connect-src"]
    assert csp.get("form-action") == "'self'" and csp.get("base-uri") == "'none'"
