"""With the database unreachable the website answers 503 with its friendly page (or JSON),
never a traceback; liveness stays up and readiness says why (docs/design.md §3)."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from tests.utils import Browser, open_browser, running
from website.app import create_app
from website.config import Settings


@pytest.fixture
async def stranded(settings: Settings, user: Browser) -> AsyncIterator[Browser]:
    """A logged-in person's browser, against an app whose database is down (nothing listens
    on its port): every request with a session must look the session up."""
    down = settings.model_copy(update={"database_host": "127.0.0.1", "database_port": 9})
    app: FastAPI = create_app(down)
    async with running(app), open_browser(app) as browser:
        browser.http.cookies = user.http.cookies
        yield browser


@pytest.mark.parametrize("path", ["/rooms", "/login", "/", "/rooms/some-room"])
async def test_pages_get_the_friendly_503(stranded: Browser, path: str) -> None:
    page = await stranded.http.get(path, headers={"accept": "text/html"})
    assert page.status_code == 503, page.text[:300]
    assert "Back in a moment" in page.text and "briefly unavailable" in page.text
    assert page.headers["retry-after"] == "5"
    assert "Traceback" not in page.text and "OSError" not in page.text


# The chat token's lookup has a path of its own: one query on an AUTOCOMMIT connection.
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/rooms"),
                                              ("POST", "/api/rooms/some-room/token")])  # fmt: skip
async def test_the_api_gets_a_json_503(stranded: Browser, method: str, path: str) -> None:
    response = await stranded.http.request(method, path)
    assert response.status_code == 503
    detail = "Parley's database is briefly unavailable. Try again in a moment."
    assert response.json() == {"detail": detail}


async def test_liveness_stays_up_and_readiness_says_why(stranded: Browser) -> None:
    assert (await stranded.http.get("/healthz")).status_code == 200
    ready = await stranded.http.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"status": "database unreachable"}
