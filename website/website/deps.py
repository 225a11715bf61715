"""Request dependencies: the app's collaborators, the caller, guards that raise, and CSRF.

A route asks for what it needs (`user: PageUser`, `room: OwnedRoom`) and its body stays about
the resource; routers come from `protected_router`, so no unsafe route skips CSRF.
Every dependency is `async def`, even the trivial ones: FastAPI runs a plain `def` one in a
worker thread, a thread hop per dependency per request (tests/test_dependencies.py).
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from website import cookies
from website.chat_control import ChatControl
from website.config import Settings
from website.csrf import check_csrf, submitted_token
from website.forms import UNSAFE_METHODS, check_body
from website.models import Room, User, UserSession
from website.passwords import Hasher
from website.rooms import get_room
from website.services import Services
from website.sessions import ReadSession, load_session, load_session_in_room
from website.tokens import TokenIssuer

__all__ = ["UNSAFE_METHODS"]


class Redirect(Exception):
    """Raised by a guard to answer 303 See Other instead of running the route."""

    def __init__(self, location: str, *, forget_session: bool = False) -> None:
        super().__init__(location)
        self.location = location
        self.forget_session = forget_session


# --- the app's collaborators (create_app keeps settings, the lifespan the rest) ---------


# FastAPI solves a dependency's whole sub-tree again at every place that names it (a cached
# value skips only the last call), so the collaborators below read app.state through these
# plain helpers rather than depending on AppServices: a level less per use.
def settings_of(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def services_of(request: Request) -> Services:
    return cast(Services, request.app.state.services)


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_services(request: Request) -> Services:
    return services_of(request)


AppSettings = Annotated[Settings, Depends(get_settings)]
AppServices = Annotated[Services, Depends(get_services)]


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with services_of(request).sessionmaker() as session:
        yield session


async def get_issuer(request: Request) -> TokenIssuer:
    return services_of(request).issuer


async def get_chat_control(request: Request) -> ChatControl:
    return services_of(request).chat_control


async def get_hasher(request: Request) -> Hasher:
    return services_of(request).hasher


Db = Annotated[AsyncSession, Depends(get_db)]
PasswordHasher = Annotated[Hasher, Depends(get_hasher)]
Issuer = Annotated[TokenIssuer, Depends(get_issuer)]
Chat = Annotated[ChatControl, Depends(get_chat_control)]


# --- who is calling ---------------------------------------------------------------------


async def load_caller(request: Request, db: Db, settings: AppSettings) -> UserSession | None:
    """Look the session cookie up once per request; templates read it from request.state."""
    cookie = request.cookies.get(cookies.session_name(settings))
    session = await load_session(db, cookie, settings)
    request.state.session = session
    return session


Caller = Annotated[UserSession | None, Depends(load_caller)]


async def page_user(request: Request, caller: Caller) -> User:
    """The logged-in user, or a redirect to the login page that comes back here."""
    if caller is None:
        raise Redirect(f"/login?next={quote(request.url.path)}")
    return caller.user


async def api_user(caller: Caller) -> User:
    """The logged-in user, or 401 for scripts."""
    if caller is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Log in first.")
    return caller.user


async def live_session(caller: Caller) -> UserSession:
    """The session to end; without one there is nothing to log out of, so just go to /login."""
    if caller is None:
        raise Redirect("/login", forget_session=True)
    return caller


async def page_session(request: Request, caller: Caller) -> UserSession:
    """The caller's session, for pages that act on it (password change)."""
    await page_user(request, caller)
    assert caller is not None
    return caller


PageUser = Annotated[User, Depends(page_user)]
ApiUser = Annotated[User, Depends(api_user)]
LiveSession = Annotated[UserSession, Depends(live_session)]
PageSession = Annotated[UserSession, Depends(page_session)]


@dataclass(frozen=True)
class CallerInRoom:
    session: ReadSession
    room: str
    room_found: bool

    def room_or_404(self) -> str:
        """The room's name; 404 once CSRF and the body check have passed (the route asks)."""
        if not self.room_found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such room.")
        return self.room


async def api_caller_in_room(request: Request, name: str) -> CallerInRoom:
    """The caller's session and whether room `name` exists, in one query on an AUTOCOMMIT
    connection of its own (a chat token's hot path: no BEGIN/ROLLBACK, no ORM session, and
    the connection goes back to the pool before the route runs); 401 without a session, as
    api_user."""
    settings = settings_of(request)
    cookie = request.cookies.get(cookies.session_name(settings))
    async with services_of(request).read_engine.connect() as conn:
        session, room_found = await load_session_in_room(conn, cookie, settings, name)
    request.state.session = session  # as load_caller does, for templates and error pages
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Log in first.")
    return CallerInRoom(session, name, room_found)


ApiCallerInRoom = Annotated[CallerInRoom, Depends(api_caller_in_room)]


# --- the resource -----------------------------------------------------------------------


async def room_or_404(name: str, db: Db) -> Room:
    room = await get_room(db, name)
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such room.")
    return room


RoomOr404 = Annotated[Room, Depends(room_or_404)]


async def owned_room(room: RoomOr404, user: PageUser) -> Room:
    if room.owner_id != user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only the room's owner can delete it.")
    return room


OwnedRoom = Annotated[Room, Depends(owned_room)]


# --- CSRF, for every unsafe method ------------------------------------------------------


async def csrf_protect(request: Request, caller: Caller) -> None:
    """POST/PUT/PATCH/DELETE must echo the caller's CSRF token (header or form field)."""
    if request.method in UNSAFE_METHODS:
        check_csrf(request, caller, await submitted_token(request))


async def csrf_protect_in_room(request: Request, caller: ApiCallerInRoom) -> None:
    """csrf_protect on the session api_caller_in_room found (no second lookup, no Db)."""
    if request.method in UNSAFE_METHODS:
        check_csrf(request, caller.session, await submitted_token(request))


# Every unsafe route depends on one of these (tests/test_csrf.py).
CSRF_CHECKS: frozenset[Callable[..., Any]] = frozenset({csrf_protect, csrf_protect_in_room})


def protected_router(*guards: Callable[..., Any], prefix: str = "") -> APIRouter:
    """A router whose routes run these guards first, then the CSRF check, then the body check.

    Guards go first so that a logged-out caller gets today's answer (a login redirect, 401)
    rather than a CSRF refusal; CSRF always comes before anything looks at what was sent, and
    the body check (forms.check_body: encoding, clean text) comes before any route reads it.
    """
    return _router(prefix, *guards, csrf_protect)


def room_api_router(prefix: str = "") -> APIRouter:
    """protected_router(api_user) for API routes on one room, path parameter `name`: the guard
    is api_caller_in_room (session, user and room in one read-only query), the CSRF check
    reads its session. The route asks CallerInRoom.room_or_404() (after CSRF, as a 404 guard
    of its own would). Fewer dependencies and queries: the chat token's hot path."""
    return _router(prefix, api_caller_in_room, csrf_protect_in_room)


def _router(prefix: str, *guards: Callable[..., Any]) -> APIRouter:
    dependencies = [*(Depends(guard) for guard in guards), Depends(check_body)]
    return APIRouter(prefix=prefix, dependencies=dependencies)
