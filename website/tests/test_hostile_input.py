"""Hostile input gets a clear 4xx, never a 5xx: control characters, bad UTF-8, wrong body
types, invisible characters in names, oversized cookies, pagination bounds (design §3)."""

import uuid

import pytest

from tests.utils import PASSWORD, Browser, unique_room
from website.sessions import COOKIE_NAME

FORM = "application/x-www-form-urlencoded"


async def _post_raw(person: Browser, path: str, body: bytes, content_type: str = FORM) -> str:
    """POST raw bytes with the caller's CSRF token in the header; the answer's text."""
    headers = {"content-type": content_type, "X-CSRF-Token": await person.csrf()}
    response = await person.http.post(path, content=body, headers=headers)
    assert response.status_code == 400, (path, response.status_code, response.text[:300])
    return response.text


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "\x07", "\x1b[31m", "\x7f", "\x85"])
async def test_control_characters_in_any_form_field_are_a_400(user: Browser, bad: str) -> None:
    token = await user.csrf()
    for path, data in [
        ("/rooms", {"name": unique_room(), "title": f"t{bad}"}),
        ("/rooms", {"name": f"{bad}{unique_room()}"}),
        ("/login", {"email": f"x{bad}@example.test", "password": PASSWORD}),
        ("/register", {"email": "a@example.test", "display_name": bad, "password": PASSWORD}),
        ("/account/password", {"current_password": bad}),
    ]:
        response = await user.http.post(path, data={**data, "csrf_token": token})
        assert response.status_code == 400, (path, response.text[:300])
        assert "control characters" in response.json()["detail"]


async def test_tabs_and_newlines_are_ordinary_text(user: Browser) -> None:
    name = unique_room()
    response = await user.create_room(name, title="Line\tone\r\ntwo")
    assert response.status_code == 303
    assert _listed(await _api(user), name)["title"] == "Line one two"


async def _api(user: Browser) -> list[dict[str, str]]:
    rooms: list[dict[str, str]] = (await user.http.get("/api/rooms")).json()
    return rooms


def _listed(rooms: list[dict[str, str]], name: str) -> dict[str, str]:
    return next(r for r in rooms if r["name"] == name)


@pytest.mark.parametrize(
    "body",
    [
        b"name=ab%FFcd&title=x",  # not UTF-8 once percent-decoded
        b"name=room-x&title=%ED%A0%80",  # an encoded lone surrogate
        b"title=%EF%BF%BD&name=room-y",  # U+FFFD itself: what bad bytes turn into
    ],
)
async def test_bodies_that_are_not_utf8_are_a_400(user: Browser, body: bytes) -> None:
    assert "valid UTF-8" in await _post_raw(user, "/rooms", body)


async def test_raw_non_ascii_bytes_in_a_urlencoded_body_are_a_400(user: Browser) -> None:
    # Starlette reads unescaped bytes as Latin-1: not a UTF-8 refusal, but the field's own rule.
    assert "Room names are" in await _post_raw(user, "/rooms", b"name=room-\xff\xfe&title=x")


async def test_multipart_with_bad_bytes_is_not_a_500(user: Browser) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'.encode()
        + b"\xff\xfe\x00bad"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    await _post_raw(user, "/rooms", body, f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize("path", ["/rooms", "/login", "/register", "/logout", "/account/password"])
async def test_json_where_a_form_is_expected_is_a_415(user: Browser, path: str) -> None:
    headers = {"X-CSRF-Token": await user.csrf()}
    response = await user.http.post(path, json={"name": unique_room()}, headers=headers)
    assert response.status_code == 415, (path, response.text)
    assert "x-www-form-urlencoded" in response.json()["detail"]
    response = await user.http.post(
        path, content=b"name=x", headers={**headers, "content-type": "text/plain"}
    )
    assert response.status_code == 415


async def test_a_form_sent_to_the_api_is_a_415(user: Browser) -> None:
    room = unique_room()
    await user.create_room(room)
    token = await user.csrf()
    response = await user.http.post(
        f"/api/rooms/{room}/token", data={"csrf_token": token}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 415 and "no request body" in response.json()["detail"]
    response = await user.http.post(
        f"/api/rooms/{room}/token", json={"a": 1}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 415
    assert (await user.token(room)).status_code == 200  # no body: the browser's way


@pytest.mark.parametrize(
    "invisible",
    ["\u202e", "\u202a", "\u2066", "\u200b", "\u200d", "\ufeff", "\u00ad", "\u061c"],
)
async def test_invisible_and_bidi_characters_are_refused_in_names_and_titles(
    browser: Browser, invisible: str
) -> None:
    response = await browser.register(name=f"Ada{invisible}Lovelace")
    assert response.status_code == 400
    assert "invisible or text-direction characters" in response.text
    assert (await browser.register()).status_code == 303
    response = await browser.create_room(title=f"Title{invisible}gnp.exe")
    assert response.status_code == 400
    assert "invisible or text-direction characters" in response.text


async def test_a_non_ascii_csrf_token_is_a_403_not_a_500(user: Browser) -> None:
    response = await user.http.post("/rooms", data={"name": unique_room(), "csrf_token": "é" * 43})
    assert response.status_code == 403


@pytest.mark.parametrize("size", [65, 4000, 60_000])
async def test_oversized_session_cookies_are_no_session(browser: Browser, size: int) -> None:
    browser.http.cookies.set(COOKIE_NAME, "x" * size)
    response = await browser.http.get("/rooms")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/rooms"
    assert (await browser.http.get("/api/rooms")).status_code == 401


async def test_huge_fields_are_refused_clearly(browser: Browser) -> None:
    response = await browser.register(name="N" * 100_000)
    assert response.status_code == 400 and "at most 50 characters" in response.text
    response = await browser.register(email=f"{'a' * 100_000}@example.test")
    assert response.status_code == 400 and "not valid" in response.text
    response = await browser.login(f"{uuid.uuid4().hex}@example.test", "p" * 100_000)
    assert response.status_code == 400
