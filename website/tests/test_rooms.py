"""Creating, listing, opening and deleting rooms."""

import uuid

import pytest

from tests.utils import Browser, unique_room


async def test_create_room_then_listed_everywhere(user: Browser, other: Browser) -> None:
    name = unique_room()
    response = await user.create_room(name, title="Team  stand-up")
    assert response.status_code == 303 and response.headers["location"] == f"/rooms/{name}"
    listed = {room["name"]: room for room in (await other.http.get("/api/rooms")).json()}
    assert listed[name]["title"] == "Team stand-up"
    assert listed[name]["owner"] == user.name
    assert listed[name]["created_at"].endswith("+00:00")
    page = await other.http.get("/rooms")
    assert f'href="/rooms/{name}"' in page.text


@pytest.mark.parametrize(
    "name", ["A", "ab", "-ab", "ab-", "has space", "UPPER", "a" * 33, "ab_c", "ab/c", ""]
)
async def test_invalid_room_names_are_refused(user: Browser, name: str) -> None:
    response = await user.create_room(name)
    assert response.status_code == 400
    assert "Room names are 3 to 32 characters" in response.text


async def test_longest_and_shortest_names_allowed(user: Browser) -> None:
    for name in (uuid.uuid4().hex[:3], uuid.uuid4().hex.ljust(32, "z")):
        assert (await user.create_room(name)).status_code == 303, name


async def test_duplicate_room_name_refused(user: Browser, other: Browser) -> None:
    name = unique_room()
    assert (await user.create_room(name)).status_code == 303
    response = await other.create_room(name)
    assert response.status_code == 400 and "already exists" in response.text


async def test_room_pages_need_login_and_existing_room(user: Browser, other: Browser) -> None:
    name = unique_room()
    await user.create_room(name)
    page = await other.http.get(f"/rooms/{name}")
    assert page.status_code == 200 and f'data-room="{name}"' in page.text
    assert 'id="delete-room"' not in page.text  # only the owner sees the delete button
    assert 'id="delete-room"' in (await user.http.get(f"/rooms/{name}")).text
    missing = await other.http.get("/rooms/no-such-room", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "Not found" in missing.text
    await other.logout()
    response = await other.http.get(f"/rooms/{name}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/rooms/{name}"


async def test_only_owner_deletes(user: Browser, other: Browser) -> None:
    name = unique_room()
    await user.create_room(name)
    data = {"csrf_token": await other.csrf()}
    assert (await other.http.post(f"/rooms/{name}/delete", data=data)).status_code == 403
    assert (await other.http.get(f"/rooms/{name}")).status_code == 200
    data = {"csrf_token": await user.csrf()}
    response = await user.http.post(f"/rooms/{name}/delete", data=data)
    assert response.status_code == 303
    assert (await other.http.get(f"/rooms/{name}")).status_code == 404
    assert name not in {room["name"] for room in (await other.http.get("/api/rooms")).json()}


async def test_writes_without_csrf_are_refused(user: Browser, other: Browser) -> None:
    name = unique_room()
    assert (await user.http.post("/rooms", data={"name": name})).status_code == 403
    # Another person's valid token is no good either: tokens belong to a session.
    forged = {"name": name, "csrf_token": await other.csrf()}
    assert (await user.http.post("/rooms", data=forged)).status_code == 403
    assert (await user.http.post("/logout")).status_code == 403
    assert name not in {room["name"] for room in (await user.http.get("/api/rooms")).json()}


async def test_api_rooms_needs_a_session(browser: Browser) -> None:
    assert (await browser.http.get("/api/rooms")).status_code == 401
