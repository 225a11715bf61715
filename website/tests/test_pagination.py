"""Room listings come in pages; each person owns a bounded number of rooms (design §3)."""

import re

import pytest

from tests.utils import Browser, app_with, open_browser, unique_room
from website.config import Settings

_LINK = re.compile(r'<([^>]+)>; rel="(next|prev)"')


def _links(header: str | None) -> dict[str, str]:
    return {rel: url for url, rel in _LINK.findall(header or "")}


async def test_the_api_pages_with_link_headers(user: Browser) -> None:
    made = [unique_room() for _ in range(3)]
    for name in made:
        assert (await user.create_room(name)).status_code == 303
    first = await user.http.get("/api/rooms?limit=2")
    assert first.status_code == 200
    assert [r["name"] for r in first.json()] == made[::-1][:2]  # newest first
    links = _links(first.headers.get("link"))
    assert links["next"] == "/api/rooms?page=2&limit=2" and "prev" not in links
    second = await user.http.get(links["next"])
    assert second.json()[0]["name"] == made[0]
    assert _links(second.headers.get("link"))["prev"] == "/api/rooms?page=1&limit=2"
    assert len((await user.http.get("/api/rooms")).json()) <= 50  # the default page


async def test_past_the_last_page_is_an_empty_page(user: Browser) -> None:
    response = await user.http.get("/api/rooms?page=100000")
    assert response.status_code == 200 and response.json() == []
    assert "next" not in _links(response.headers.get("link"))
    page = await user.http.get("/rooms?page=100000")
    assert page.status_code == 200 and "No rooms on this page." in page.text


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=100001",
        "page=1e3",
        "limit=0",
        "limit=101",
        "limit=99999999999999999999999",
        "page=%00",
    ],
)
async def test_out_of_bounds_paging_is_a_400(user: Browser, query: str) -> None:
    response = await user.http.get(f"/api/rooms?{query}")
    assert response.status_code == 400, (query, response.text)
    assert response.json()["detail"][0]["loc"][0] == "query"
    page = await user.http.get(f"/rooms?{query}", headers={"accept": "text/html"})
    assert page.status_code == 400 and "<!doctype html>" in page.text


async def test_the_rooms_page_links_to_older_and_newer(user: Browser) -> None:
    for _ in range(3):
        await user.create_room()
    first = await user.http.get("/rooms?limit=2")
    assert 'id="next-page"' in first.text and 'id="prev-page"' not in first.text
    assert 'href="/rooms?page=2&amp;limit=2"' in first.text
    second = await user.http.get("/rooms?page=2&limit=2")
    assert 'href="/rooms?page=1&amp;limit=2"' in second.text


async def test_rooms_per_person_are_capped_then_released(settings: Settings) -> None:
    async with app_with(settings, rooms_per_user=2) as app, open_browser(app) as person:
        assert (await person.register()).status_code == 303
        names = [unique_room(), unique_room()]
        for name in names:
            assert (await person.create_room(name)).status_code == 303
        held = await person.create_room()
        assert held.status_code == 400
        assert "You already own 2 rooms" in held.text
        response = await person.http.post(
            f"/rooms/{names[0]}/delete", data={"csrf_token": await person.csrf()}
        )
        assert response.status_code == 303
        assert (await person.create_room()).status_code == 303  # released
        async with open_browser(app) as other:  # the cap is per person
            assert (await other.register()).status_code == 303
            assert (await other.create_room()).status_code == 303
