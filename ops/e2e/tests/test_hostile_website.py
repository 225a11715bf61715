"""Hostile input to the website through nginx: every answer is a clear 4xx, never a 5xx.

Control characters and NUL, bytes that are not UTF-8, the wrong body type, invisible and
bidi characters in names, huge fields and cookies, paging bounds, the per-person room cap and
the per-account throttles (docs/design.md §3). Throttle tests stay at six requests per
account, under nginx's per-address limits, so the website's own throttle is what answers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from support import (
    PASSWORD,
    Client,
    MakeClient,
    MakeUser,
    Settings,
    describe,
    error_text,
    follow_links,
    path_of,
    sensitive,
    unique_room,
)

FORM = "application/x-www-form-urlencoded"


def _never_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, describe(response)


async def _post(
    client: Client, path: str, body: bytes, content_type: str = FORM, csrf_page: str = "/rooms"
) -> httpx.Response:
    """POST raw bytes with the page's CSRF token in the header (the body stays exactly as given)."""
    csrf = await client.meta_csrf(csrf_page)
    headers = {"content-type": content_type, "X-CSRF-Token": csrf}
    response = await client.http.post(path, content=body, headers=headers)
    _never_5xx(response)
    return response


def _detail(response: httpx.Response) -> str:
    return str(response.json()["detail"])


# ---------------------------------------------------------------- control characters


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", "a\x00b"), ("name", "r\x00oom"), ("title", "\x1b[31mred"), ("title", "x\x85y")],
)
async def test_control_characters_in_room_forms_are_400(
    alice: Client, field: str, value: str
) -> None:
    csrf = await alice.meta_csrf("/rooms")
    data = {"name": unique_room(), "title": "t", field: value, "csrf_token": csrf}
    response = await alice.http.post("/rooms", data=data)
    assert response.status_code == 400, describe(response)
    assert "control characters" in _detail(response)


async def test_nul_in_login_and_register_is_400_not_500(make_client: MakeClient) -> None:
    client = await make_client()
    for path, data in [
        ("/login", {"email": "nul\x00@example.com", "password": PASSWORD}),
        ("/register", {"email": "a@example.com", "display_name": "N\x00", "password": PASSWORD}),
    ]:
        fields = await client.form_fields(path)
        response = await client.http.post(path, data={**fields, **data})
        assert response.status_code == 400, describe(response)
        assert "control characters" in _detail(response)
    assert client.session_cookie is None


async def test_nul_in_the_password_change_form_is_400(alice: Client) -> None:
    csrf = await alice.form_csrf("/account/password")
    data = {"current_password": "\x00", "new_password": "x", "csrf_token": csrf}
    response = await alice.http.post("/account/password", data=data)
    assert response.status_code == 400 and "control characters" in _detail(response)


async def test_tabs_and_newlines_are_ordinary_and_collapsed(alice: Client) -> None:
    name, _ = await alice.create_room(title="Line\tone\r\ntwo")
    listed = {r["name"]: r for r in await alice.api_rooms()}
    assert listed[name]["title"] == "Line one two"


async def test_a_charset_parameter_on_the_form_type_is_fine(alice: Client) -> None:
    name = unique_room()
    csrf = await alice.meta_csrf("/rooms")
    body = f"name={name}&title=ok&csrf_token={csrf}".encode()
    response = await alice.http.post(
        "/rooms", content=body, headers={"content-type": f"{FORM}; charset=UTF-8"}
    )
    assert response.status_code == 303, describe(response)


# ---------------------------------------------------------------- not UTF-8


@pytest.mark.parametrize(
    "body",
    [b"name=ab%FFcd&title=x", b"name=room-x&title=%ED%A0%80", b"name=room-y&title=%EF%BF%BD"],
    ids=["percent-ff", "lone-surrogate", "replacement-char"],
)
async def test_bodies_that_are_not_utf8_are_400(alice: Client, body: bytes) -> None:
    response = await _post(alice, "/rooms", body)
    assert response.status_code == 400 and "valid UTF-8" in _detail(response)


async def test_raw_high_bytes_in_a_form_are_400(alice: Client) -> None:
    response = await _post(alice, "/rooms", b"name=room-\xff\xfe&title=\xc3\x28")
    assert response.status_code == 400, describe(response)


async def test_multipart_with_bad_bytes_is_400(alice: Client) -> None:
    boundary = "hostile-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'.encode()
        + b"\xff\xfe\x00bad"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await _post(alice, "/rooms", body, f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400, describe(response)


async def test_broken_multipart_is_400(alice: Client) -> None:
    response = await _post(alice, "/rooms", b"--x\r\ngarbage", "multipart/form-data")
    assert response.status_code == 400, describe(response)


# ---------------------------------------------------------------- the wrong body type


@pytest.mark.parametrize("path", ["/rooms", "/logout", "/account/password"])
async def test_json_where_a_form_is_expected_is_415(alice: Client, path: str) -> None:
    response = await _post(alice, path, b'{"name": "r-json", "title": "t"}', "application/json")
    assert response.status_code == 415 and "x-www-form-urlencoded" in _detail(response)
    assert (await alice.http.get("/rooms")).status_code == 200  # logout did not happen


async def test_json_login_and_text_register_are_415(make_client: MakeClient) -> None:
    client = await make_client()
    csrf = await client.form_csrf("/login")
    for path, ctype, body in [
        ("/login", "application/json", b'{"email": "a@example.com", "password": "x"}'),
        ("/register", "text/plain", b"email=a@example.com"),
    ]:
        response = await client.http.post(
            path, content=body, headers={"content-type": ctype, "X-CSRF-Token": csrf}
        )
        assert response.status_code == 415, describe(response)


async def test_a_form_posted_to_the_api_is_415(alice: Client, room: str) -> None:
    csrf = await alice.meta_csrf("/rooms")
    response = await alice.http.post(
        f"/api/rooms/{room}/token", data={"csrf_token": csrf}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 415 and "no request body" in _detail(response)
    assert (await alice.token_response(room, csrf)).status_code == 200  # the page's way


# ---------------------------------------------------------------- invisible characters


@pytest.mark.parametrize("invisible", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff"])
async def test_bidi_and_zero_width_in_display_names_are_400(
    make_client: MakeClient, invisible: str
) -> None:
    client = await make_client()
    response = await client.register(name=f"Admin{invisible}istrator", expect=400)
    assert "invisible or text-direction" in error_text(response)
    assert client.session_cookie is None


@pytest.mark.parametrize("invisible", ["\u202e", "\u200b", "\u00ad"])
async def test_bidi_and_zero_width_in_room_titles_are_400(alice: Client, invisible: str) -> None:
    name, response = await alice.create_room(title=f"harmless{invisible}fdp.exe", expect=400)
    assert "invisible or text-direction" in error_text(response)
    assert name not in await alice.room_names()


# ---------------------------------------------------------------- sizes


async def test_a_huge_field_under_the_body_limit_is_a_clear_400(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.register(name="N" * 60_000, expect=400)
    assert "at most 50 characters" in error_text(response)


async def test_a_body_over_nginxs_limit_is_413(alice: Client) -> None:
    csrf = await alice.meta_csrf("/rooms")
    data = {"name": unique_room(), "title": "T" * 100_000, "csrf_token": csrf}
    response = await alice.http.post("/rooms", data=data)
    assert response.status_code == 413, describe(response)


async def test_an_oversized_session_cookie_is_no_session(settings: Settings) -> None:
    async with httpx.AsyncClient(
        base_url=settings.base_url, trust_env=False, timeout=10, follow_redirects=False
    ) as raw:
        raw.cookies.set("parley_session", "s" * 4000)
        response = await raw.get("/rooms")
        assert response.status_code == 303 and path_of(response.headers["location"]) == "/login"
        assert (await raw.get("/api/rooms")).status_code == 401


async def test_a_cookie_header_over_nginxs_buffers_is_4xx(settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=settings.base_url, trust_env=False, timeout=10) as raw:
        response = await raw.get("/rooms", headers={"Cookie": f"parley_session={'c' * 20_000}"})
        assert 400 <= response.status_code < 500, describe(response)


async def test_a_non_ascii_csrf_token_is_403(alice: Client) -> None:
    response = await alice.http.post("/rooms", data={"name": unique_room(), "csrf_token": "é" * 43})
    assert response.status_code == 403, describe(response)


@pytest.mark.parametrize("path", ["/rooms/%00", "/login?next=%00%0d%0a", "/rooms?page=%ff"])
async def test_hostile_urls_are_4xx_or_safe(alice: Client, path: str) -> None:
    response = await alice.http.get(path)
    _never_5xx(response)


# ---------------------------------------------------------------- paging


@pytest.mark.parametrize(
    "query", ["page=0", "page=-1", "page=abc", "page=100001", "limit=0", "limit=101", "limit=1e9"]
)
async def test_paging_out_of_bounds_is_400(alice: Client, query: str) -> None:
    response = await alice.http.get(f"/api/rooms?{query}")
    assert response.status_code == 400, describe(response)
    page = await alice.http.get(f"/rooms?{query}", headers={"accept": "text/html"})
    assert page.status_code == 400, describe(page)


async def test_past_the_last_page_is_empty_not_an_error(alice: Client) -> None:
    response = await alice.http.get("/api/rooms?page=100000")
    assert response.status_code == 200 and response.json() == []
    assert 'rel="next"' not in response.headers.get("link", "")


async def test_pages_link_to_each_other(alice: Client) -> None:
    made = [(await alice.create_room())[0] for _ in range(3)]
    first = await alice.http.get("/api/rooms?limit=2")
    assert [r["name"] for r in first.json()] == made[::-1][:2], "newest first"
    links = follow_links(first)
    assert links["next"] == "/api/rooms?page=2&limit=2" and "prev" not in links
    second = await alice.http.get(links["next"])
    assert second.json()[0]["name"] == made[0]
    assert follow_links(second)["prev"] == "/api/rooms?page=1&limit=2"
    doc = await alice.page("/rooms?limit=2")
    assert doc.by_id("next-page") is not None and doc.by_id("prev-page") is None


async def test_the_default_page_is_bounded(alice: Client) -> None:
    assert len((await alice.http.get("/api/rooms")).json()) <= 50


# ---------------------------------------------------------------- the room cap


async def test_rooms_per_person_are_capped_and_released(make_user: MakeUser) -> None:
    owner = await make_user()
    csrf = await owner.meta_csrf("/rooms")
    names = []
    for _ in range(50):
        name = unique_room("cap")
        response = await owner.http.post("/rooms", data={"name": name, "csrf_token": csrf})
        assert response.status_code == 303, describe(response)
        names.append(name)
    response = await owner.http.post("/rooms", data={"name": unique_room(), "csrf_token": csrf})
    assert response.status_code == 400 and "You already own 50 rooms" in error_text(response)
    await owner.delete_room(names[0])
    await owner.create_room()  # released
    for name in names[1:]:  # tidy: the shared listing stays readable
        await owner.http.post(f"/rooms/{name}/delete", data={"csrf_token": csrf})


# ---------------------------------------------------------------- throttles


async def test_failed_logins_are_throttled_per_account(
    alice: Client, make_client: MakeClient
) -> None:
    client = await make_client()
    for _ in range(5):
        await client.login(alice.email, "wrong password!", expect=400)
    held = await client.login(alice.email.upper(), alice.password, expect=429)
    assert "Too many attempts for this email address" in error_text(held)
    assert int(held.headers["retry-after"]) > 0
    assert client.session_cookie is None
    # alice's own open session is untouched; only new logins to the account wait.
    assert (await alice.http.get("/rooms")).status_code == 200


async def test_unknown_emails_are_throttled_the_same_way(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    ghost = settings.unique_email("ghost")
    for _ in range(5):
        await client.login(ghost, "wrong password!", expect=400)
    held = await client.login(ghost, "wrong password!", expect=429)
    assert "Too many attempts for this email address" in error_text(held)
    assert "retry-after" in held.headers


async def test_registration_attempts_are_throttled_per_email(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    email = settings.unique_email("reg")
    for _ in range(5):
        await client.register(email=email, password="short", expect=400)
    held = await client.register(email=email, expect=429)
    assert "Too many attempts" in error_text(held) and "retry-after" in held.headers


# ---------------------------------------------------------------- password change


async def test_changing_the_password_logs_out_every_other_session(
    alice: Client, make_client: MakeClient
) -> None:
    laptop = await make_client()
    await laptop.login(alice.email, alice.password)
    new = sensitive(f"new passphrase {uuid.uuid4().hex[:8]}")
    fields = await alice.form_fields("/account/password")
    data = {"current_password": alice.password, "new_password": new, "new_password_again": new}
    response = await alice.http.post("/account/password", data={**fields, **data})
    assert response.status_code == 200, describe(response)
    assert (await alice.http.get("/rooms")).status_code == 200, "this session must stay"
    assert (await laptop.http.get("/rooms")).status_code == 303, "the other one must end"
