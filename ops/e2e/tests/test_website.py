"""The website over real HTTP through nginx: accounts, sessions, rooms, edge behaviour."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest

from support import (
    PASSWORD,
    Client,
    MakeClient,
    Settings,
    describe,
    error_text,
    parse_html,
    path_of,
    unique_name,
)


def bare_client(settings: Settings, **cookies: str) -> httpx.AsyncClient:
    """A client that sends exactly the given cookies and keeps none."""
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return httpx.AsyncClient(
        base_url=settings.base_url,
        follow_redirects=False,
        timeout=10,
        trust_env=False,
        headers={"Cookie": header} if header else {},
    )


# ---------------------------------------------------------------- accounts


async def test_register_logs_in_and_shows_who_i_am(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    name = unique_name("Reggie")
    response = await client.register(name=name)
    assert path_of(response.headers["location"]) == "/rooms", describe(response)
    cookie = next(
        (c for c in response.headers.get_list("set-cookie") if c.startswith("parley_session=")),
        None,
    )
    assert cookie, "registering did not set the session cookie"
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert "httponly" in attrs, cookie
    assert re.search(r"samesite=lax", cookie, re.I), cookie
    doc = await client.page("/rooms")
    whoami = doc.by_id("whoami")
    assert whoami is not None and whoami.text.strip() == name


async def test_duplicate_email_is_refused_case_insensitively(
    make_client: MakeClient, settings: Settings
) -> None:
    first = await make_client()
    email = settings.unique_email("dup")
    await first.register(email=email)

    second = await make_client()
    shouted = email.upper()
    name = unique_name("Copycat")
    response = await second.register(email=shouted, name=name, expect=400)
    assert error_text(response), f"no .error on the page: {describe(response)}"
    doc = parse_html(response.text)
    kept_email = doc.find("input", name="email")
    kept_name = doc.find("input", name="display_name")
    assert kept_email is not None and kept_email.attrs.get("value") == shouted
    assert kept_name is not None and kept_name.attrs.get("value") == name
    assert second.session_cookie is None, "a failed registration logged someone in"


async def test_login_with_bad_password_or_unknown_email(
    alice: Client, make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    response = await client.login(alice.email, "wrong password!", expect=400)
    assert error_text(response) == "Invalid email or password."
    response = await client.login(settings.unique_email("ghost"), PASSWORD, expect=400)
    assert error_text(response) == "Invalid email or password."
    assert client.session_cookie is None


async def test_login_email_is_case_insensitive(alice: Client, make_client: MakeClient) -> None:
    client = await make_client()
    await client.login(alice.email.upper(), alice.password)
    whoami = (await client.page("/rooms")).by_id("whoami")
    assert whoami is not None and whoami.text.strip() == alice.name


async def test_login_without_csrf_is_403(alice: Client, make_client: MakeClient) -> None:
    client = await make_client()
    await client.page("/login")  # has the anonymous CSRF cookie, but sends no token
    response = await client.http.post(
        "/login", data={"email": alice.email, "password": alice.password}
    )
    assert response.status_code == 403, describe(response)
    response = await client.http.post(
        "/login", data={"email": alice.email, "password": alice.password, "csrf_token": "forged"}
    )
    assert response.status_code == 403, describe(response)
    assert client.session_cookie is None


async def test_login_rotates_the_session_id(
    alice: Client, make_client: MakeClient, settings: Settings
) -> None:
    """A session id planted before login (fixation) is never the one in use after it."""
    planted = "planted-session-id-0123456789abcdef0123456789"
    client = await make_client()
    csrf = await client.form_csrf("/login")
    anon_csrf = client.http.cookies.get("parley_csrf")
    assert anon_csrf, "GET /login did not set the parley_csrf cookie"
    async with bare_client(settings, parley_csrf=anon_csrf, parley_session=planted) as raw:
        response = await raw.post(
            "/login",
            data={"email": alice.email, "password": alice.password, "csrf_token": csrf},
        )
        assert response.status_code == 303, describe(response)
        after = response.cookies.get("parley_session")
        assert after and after != planted, "login kept the pre-login session id"
    async with bare_client(settings, parley_session=planted) as attacker:
        response = await attacker.get("/rooms")
        assert response.status_code == 303, describe(response)
        assert path_of(response.headers.get("location")) == "/login"


async def test_logout_kills_the_server_side_session(
    alice: Client, room: str, settings: Settings
) -> None:
    old_session = alice.session_cookie
    old_csrf = await alice.meta_csrf("/rooms")
    assert old_session
    await alice.logout()

    async with bare_client(settings, parley_session=old_session) as stale:
        response = await stale.get("/rooms")
        assert response.status_code == 303, describe(response)
        assert path_of(response.headers.get("location")) == "/login", describe(response)
        response = await stale.post(f"/api/rooms/{room}/token", headers={"X-CSRF-Token": old_csrf})
        assert response.status_code == 401, describe(response)


async def test_chat_page_needs_login_and_redirects_back(make_client: MakeClient, room: str) -> None:
    client = await make_client()
    response = await client.get(f"/rooms/{room}")
    assert response.status_code == 303, describe(response)
    location = response.headers["location"]
    assert path_of(location) == "/login", location
    assert f"next=/rooms/{room}" in location.replace("%2F", "/"), location


# ---------------------------------------------------------------- rooms


async def test_created_room_is_listed_and_has_a_chat_page(alice: Client, bob: Client) -> None:
    title = f"Tea & Biscuits {unique_name('t')}"
    name, _ = await alice.create_room(title=title)

    listed = {r["name"]: r for r in await bob.api_rooms()}
    assert name in listed, f"{name} not in GET /api/rooms"
    entry = listed[name]
    assert entry["title"] == title
    assert set(entry) >= {"name", "title", "owner", "created_at"}, entry
    assert entry["owner"], entry
    created = datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None, f"created_at without a timezone: {entry}"

    doc = await bob.page("/rooms")
    room_list = doc.by_id("room-list")
    assert room_list is not None, "GET /rooms has no #room-list"
    links = [a.attrs.get("href") for a in room_list.find_all("a")]
    assert f"/rooms/{name}" in links, links

    bobs_view = await bob.page(f"/rooms/{name}")
    chat = bobs_view.by_id("main")  # the page's one <main>, the skip link's target
    assert chat is not None and "chat" in chat.classes and chat.attrs.get("data-room") == name
    for id_ in ("messages", "members", "composer", "message-input", "send", "status"):
        assert bobs_view.by_id(id_) is not None, f"chat page lacks #{id_}"
    assert bobs_view.by_id("delete-room") is None, "a non-owner is offered the delete form"
    assert (await alice.page(f"/rooms/{name}")).by_id("delete-room") is not None


@pytest.mark.parametrize("bad", ["A", "ab", "-ab", "ab-", "has space", "a" * 33])
async def test_invalid_room_names_are_refused(alice: Client, bad: str) -> None:
    _, response = await alice.create_room(name=bad, expect=400)
    assert error_text(response), f"no .error shown for {bad!r}"
    assert bad not in await alice.room_names()


async def test_duplicate_room_name_is_refused(alice: Client, bob: Client) -> None:
    name, _ = await alice.create_room()
    _, response = await bob.create_room(name=name, expect=400)
    assert error_text(response)
    owners = [r["owner"] for r in await alice.api_rooms() if r["name"] == name]
    assert len(owners) == 1, owners


async def test_only_the_owner_can_delete_a_room(alice: Client, bob: Client, room: str) -> None:
    await bob.delete_room(room, expect=403)
    assert room in await alice.room_names(), "a non-owner's delete removed the room"
    await bob.page(f"/rooms/{room}")  # still there

    await alice.delete_room(room, expect=303)
    assert room not in await alice.room_names()
    response = await alice.get(f"/rooms/{room}")
    assert response.status_code == 404, describe(response)
    await alice.meta_csrf("/rooms")
    response = await alice.token_response(room)
    assert response.status_code == 404, describe(response)


# ---------------------------------------------------------------- edge


async def test_health_endpoints(make_client: MakeClient) -> None:
    client = await make_client()
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status_code == 200, describe(response)


async def test_metrics_are_not_routed_through_nginx(make_client: MakeClient) -> None:
    client = await make_client()
    for path in ("/metrics", "/metrics/"):
        response = await client.get(path)
        assert response.status_code == 404, describe(response)
        assert "# TYPE" not in response.text


async def test_server_header_has_no_version_and_every_response_has_a_request_id(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    responses = [
        await client.get("/"),
        await client.get("/login"),
        await client.get("/healthz"),
        await client.get("/rooms"),  # 303
        await client.get("/no-such-page-here"),  # 404
        await client.http.post("/login", data={}),  # 403 (no CSRF) or 400
        await client.get("/.well-known/jwks.json"),
    ]
    ids = []
    for response in responses:
        server = response.headers.get("server", "")
        assert not re.search(r"\d", server), f"Server header leaks a version: {server!r}"
        request_id = response.headers.get("x-request-id")
        assert request_id, f"no X-Request-ID on {describe(response)}"
        ids.append(request_id)
    assert len(set(ids)) == len(ids), f"request ids repeat: {ids}"
    assert responses[3].status_code == 303 and responses[4].status_code == 404
