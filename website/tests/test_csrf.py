"""Every unsafe route refuses a missing or wrong CSRF token, and changes nothing when it does."""

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from tests.utils import PASSWORD, Browser, open_browser, unique_room
from website.deps import CSRF_CHECKS, UNSAFE_METHODS

REFUSED = {"detail": "Invalid or missing CSRF token."}


def _unsafe_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path template, route) for every unsafe route, included routers too.

    FastAPI keeps included routers lazily in app.routes; iter_route_contexts walks them.
    """
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format:
            for method in sorted((context.methods or set()) & UNSAFE_METHODS):
                yield method, context.path_format, route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def test_every_unsafe_route_depends_on_the_csrf_check(app: FastAPI) -> None:
    routes = list(_unsafe_routes(app))
    # register, login, logout, rooms, delete, token, password change
    assert len(routes) >= 7, routes
    assert ("POST", "/account/password") in {(method, path) for method, path, _ in routes}
    for method, path, route in routes:
        assert CSRF_CHECKS & set(_calls(route.dependant)), f"{method} {path}"


async def test_unsafe_routes_refuse_missing_and_wrong_tokens(
    app: FastAPI, user: Browser, other: Browser
) -> None:
    room = unique_room()
    assert (await user.create_room(room)).status_code == 303
    before = (await user.http.get("/api/rooms")).json()
    wrong = await other.csrf()  # a real token, of someone else's session
    new_room = unique_room()
    form = {
        "name": new_room,
        "title": "t",
        "email": user.email,
        "password": "x" * 12,
        "current_password": PASSWORD,
        "new_password": "y" * 12,
        "new_password_again": "y" * 12,
    }
    routes = list(_unsafe_routes(app))
    assert len(routes) >= 6, routes
    for method, template, route in routes:
        path = template.format(**dict.fromkeys(route.param_convertors, room))
        attempts: list[dict[str, Any]] = [
            {"data": form},
            {"data": {**form, "csrf_token": wrong}},
            {"data": form, "headers": {"X-CSRF-Token": wrong}},
            {"data": {**form, "csrf_token": ""}, "headers": {"X-CSRF-Token": ""}},
        ]
        for attempt in attempts:
            response = await user.http.request(method, path, **attempt)
            assert response.status_code == 403, (method, path, attempt, response.text)
            assert response.json() == REFUSED, (method, path)
    # Nothing happened: still logged in, same rooms, the room still there, same password.
    assert (await user.http.get("/rooms")).status_code == 200
    async with open_browser(app) as again:
        assert (await again.login(user.email, PASSWORD)).status_code == 303
    assert (await user.http.get("/api/rooms")).json() == before
    assert (await user.http.get(f"/rooms/{room}")).status_code == 200
    assert new_room not in {r["name"] for r in before}


async def test_the_right_token_passes_by_header_or_form(user: Browser) -> None:
    token = await user.csrf()
    by_header = await user.http.post(
        "/rooms", data={"name": unique_room()}, headers={"X-CSRF-Token": token}
    )
    assert by_header.status_code == 303
    by_form = await user.http.post("/rooms", data={"name": unique_room(), "csrf_token": token})
    assert by_form.status_code == 303


async def test_logged_out_callers_get_the_guards_answer_first(browser: Browser) -> None:
    """A guard answers before CSRF: the login redirect, 401, or logout's plain redirect."""
    response = await browser.http.post("/rooms", data={"name": unique_room()})
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/rooms"
    assert (await browser.http.post("/api/rooms/any-room/token")).status_code == 401
    response = await browser.http.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
