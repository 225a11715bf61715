"""HTML pages and their forms (DESIGN §3)."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response

from website import rooms, users
from website.chat_notice import announce_room_deleted
from website.csrf import FORM_FIELD, check_csrf
from website.deps import AppSettings, Caller, Db, load_caller
from website.logging import get_logger
from website.metrics import LOGINS
from website.models import User
from website.sessions import COOKIE_NAME, create_session, delete_session
from website.templating import render

router = APIRouter(dependencies=[Depends(load_caller)])
log = get_logger(__name__)

FormStr = Annotated[str, Form()]
CsrfField = Annotated[str | None, Form(alias=FORM_FIELD)]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never let ?next= send someone to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/rooms"


def _login_redirect(request: Request) -> RedirectResponse:
    return _redirect(f"/login?next={quote(request.url.path)}")


async def _start_session(
    request: Request, db: Db, settings: AppSettings, user: User, target: str
) -> Response:
    # Rotate: whatever session id the browser held before is dropped for a fresh one.
    await delete_session(db, request.cookies.get(COOKIE_NAME))
    new = await create_session(db, user, settings)
    response = _redirect(target)
    response.set_cookie(
        COOKIE_NAME,
        new.cookie_value,
        max_age=settings.session_absolute_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.api_route("/", methods=["GET", "HEAD"])  # HEAD: uptime checkers probe the front page
async def index(request: Request, caller: Caller) -> Response:
    return render(request, "index.html")


@router.get("/register")
async def register_form(request: Request, caller: Caller) -> Response:
    if caller is not None:
        return _redirect("/rooms")
    return render(request, "register.html")


@router.post("/register")
async def register(
    request: Request,
    db: Db,
    settings: AppSettings,
    csrf: CsrfField = None,
    email: FormStr = "",
    display_name: FormStr = "",
    password: FormStr = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        user = await users.register(db, email, display_name, password)
    except users.RegistrationError as exc:
        return render(
            request,
            "register.html",
            status.HTTP_400_BAD_REQUEST,
            error=str(exc),
            email=email,
            display_name=display_name,
        )
    log.info("user registered", user_id=str(user.id))
    return await _start_session(request, db, settings, user, "/rooms")


@router.get("/login")
async def login_form(request: Request, caller: Caller, next: str | None = None) -> Response:
    if caller is not None:
        return _redirect(_safe_next(next))
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    db: Db,
    settings: AppSettings,
    csrf: CsrfField = None,
    email: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/rooms",
) -> Response:
    check_csrf(request, csrf)
    user = await users.authenticate(db, email, password)
    if user is None:
        LOGINS.labels("failure").inc()
        log.info("login failed")
        return render(
            request,
            "login.html",
            status.HTTP_400_BAD_REQUEST,
            error="Invalid email or password.",
            email=email,
            next=_safe_next(next),
        )
    LOGINS.labels("success").inc()
    log.info("login succeeded", user_id=str(user.id))
    return await _start_session(request, db, settings, user, _safe_next(next))


@router.post("/logout")
async def logout(request: Request, db: Db, caller: Caller, csrf: CsrfField = None) -> Response:
    if caller is not None:
        check_csrf(request, csrf)
        await delete_session(db, request.cookies.get(COOKIE_NAME))
        log.info("logged out", user_id=str(caller.user_id))
    response = _redirect("/login")
    response.delete_cookie(COOKIE_NAME)
    return response


@router.get("/rooms")
async def rooms_page(request: Request, db: Db, caller: Caller) -> Response:
    if caller is None:
        return _login_redirect(request)
    return render(request, "rooms.html", rooms=await rooms.list_rooms(db))


@router.post("/rooms")
async def create_room(
    request: Request,
    db: Db,
    caller: Caller,
    csrf: CsrfField = None,
    name: FormStr = "",
    title: FormStr = "",
) -> Response:
    if caller is None:
        return _login_redirect(request)
    check_csrf(request, csrf)
    try:
        room = await rooms.create_room(db, caller.user, name, title)
    except rooms.RoomError as exc:
        return render(
            request,
            "rooms.html",
            status.HTTP_400_BAD_REQUEST,
            rooms=await rooms.list_rooms(db),
            error=str(exc),
            name=name,
            title=title,
        )
    log.info("room created", room=room.name, user_id=str(caller.user_id))
    return _redirect(f"/rooms/{room.name}")


@router.get("/rooms/{name}")
async def room_page(name: str, request: Request, db: Db, caller: Caller) -> Response:
    if caller is None:
        return _login_redirect(request)
    room = await rooms.get_room(db, name)
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such room.")
    return render(request, "room.html", room=room)


@router.post("/rooms/{name}/delete")
async def delete_room(
    name: str, request: Request, db: Db, caller: Caller, csrf: CsrfField = None
) -> Response:
    if caller is None:
        return _login_redirect(request)
    check_csrf(request, csrf)
    room = await rooms.get_room(db, name)
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such room.")
    if room.owner_id != caller.user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only the room's owner can delete it.")
    await rooms.delete_room(db, room)
    log.info("room deleted", room=name, user_id=str(caller.user_id))
    await announce_room_deleted(name)
    return _redirect("/rooms")
