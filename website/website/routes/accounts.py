"""Accounts: the front page, registration, login and logout (docs/design.md §3)."""

from typing import Annotated

from fastapi import Form, Request, status
from fastapi.responses import Response

from website import users
from website.deps import AppSettings, Caller, Db, LiveSession, live_session, protected_router
from website.logging import get_logger
from website.metrics import LOGINS
from website.models import User
from website.sessions import COOKIE_NAME, create_session, delete_session
from website.templating import render, see_other

router = protected_router()
# Logging out needs a session first: without one there is nothing to end (nor to forge).
logout_router = protected_router(live_session)
log = get_logger(__name__)

FormStr = Annotated[str, Form()]


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never let ?next= send someone to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/rooms"


async def _start_session(
    request: Request, db: Db, settings: AppSettings, user: User, target: str
) -> Response:
    # Rotate: whatever session id the browser held before is dropped for a fresh one.
    await delete_session(db, request.cookies.get(COOKIE_NAME))
    new = await create_session(db, user, settings)
    response = see_other(target)
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
        return see_other("/rooms")
    return render(request, "register.html")


@router.post("/register")
async def register(
    request: Request,
    db: Db,
    settings: AppSettings,
    email: FormStr = "",
    display_name: FormStr = "",
    password: FormStr = "",
) -> Response:
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
        return see_other(_safe_next(next))
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    db: Db,
    settings: AppSettings,
    email: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/rooms",
) -> Response:
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


@logout_router.post("/logout")
async def logout(request: Request, db: Db, session: LiveSession) -> Response:
    await delete_session(db, request.cookies.get(COOKIE_NAME))
    log.info("logged out", user_id=str(session.user_id))
    response = see_other("/login")
    response.delete_cookie(COOKIE_NAME)
    return response
