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
from website.sessions import load_session, load_session_in_room
from website.tokens import TokenIssuer

__all__ = ["UNSAFE_METHODS"]


class Redirect(Exception):
    """Raised by a guard to answer 303 See Other instead of running the route."""

    def __init__(self, location: str, *, forget_session: bool = False) -> None:
        super().__init__(location)
        self.location = location
        self.forget_session = forget_session


# --- the app's collaborators (create_app keeps settings, the lifespan the rest) ---------


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


AppSettings = Annotated[Settings, Depends(get_settings)]
AppServices = Annotated[Services, Depends(get_services)]


async def get_db(services: AppServices) -> AsyncIterator[AsyncSession]:
    async with services.sessionmaker() as session:
        yield session


async def get_read_db(services: AppServices) -> AsyncIterator[AsyncSession]:
    async with services.read_sessionmaker() as session:
        yield session


async def get_issuer(services: AppServices) -> TokenIssuer:
    return services.issuer


async def get_chat_control(services: AppServices) -> ChatControl:
    return services.chat_control


async def get_hasher(services: AppServices) -> Hasher:
    return services.hasher


Db = Annotated[AsyncSession, Depends(get_db)]
# AUTOCOMMIT (no BEGIN/ROLLBACK): only for routes that write nothing but the session's touch.
ReadDb = Annotated[AsyncSession, Depends(get_read_db)]
PasswordHasher = Annotated[Hasher, Depends(get_hasher)]
Issuer = Annotated[TokenIssuer, Depends(get_issuer)]
Chat = Annotated[ChatControl, Depends(get_chat_control)]


# --- who is calling ---------------------------------------------------------------------


async def load_caller(request: Request, db: Db, settings: AppSettings) -> UserSession | None:
    """Look the session cookie up once per request; templates read it from request.state,
    where a guard that looked it up with more (api_caller_in_room) has already put it."""
    loaded: UserSession | None = getattr(request.state, "session", _NOT_LOADED)
    if loaded is not _NOT_LOADED:
        return loaded
    cookie = request.cookies.get(cookies.session_name(settings))
    session = await load_session(db, cookie, settings)
    request.state.session = session
    return session


_NOT_LOADED: Any = object()


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
    session: UserSession
    room: str
    room_found: bool

    def room_or_404(self) -> str:
        """The room's name; 404 once CSRF and the body check have passed (the route asks)."""
        if not self.room_found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such room.")
        return self.room


async def api_caller_in_room(
    request: Request, name: str, db: ReadDb, settings: AppSettings
) -> CallerInRoom:
    """The caller's session and whether room `name` exists, in one query on an AUTOCOMMIT
    session (a chat token's hot path: no BEGIN/ROLLBACK); 401 without a session, as api_user."""
    cookie = request.cookies.get(cookies.session_name(settings))
    session, room_found = await load_session_in_room(db, cookie, settings, name)
    request.state.session = session  # load_caller (CSRF) takes it from here
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


def protected_router(*guards: Callable[..., Any], prefix: str = "") -> APIRouter:
    """A router whose routes run these guards first, then the CSRF check, then the body check.

    Guards go first so that a logged-out caller gets today's answer (a login redirect, 401)
    rather than a CSRF refusal; CSRF always comes before anything looks at what was sent, and
    the body check (forms.check_body: encoding, clean text) comes before any route reads it.
    """
    dependencies = [
        *(Depends(guard) for guard in guards),
        Depends(csrf_protect),
        Depends(check_body),
    ]
    return APIRouter(prefix=prefix, dependencies=dependencies)
