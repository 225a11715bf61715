"""Accounts: the front page, registration, login and logout (docs/design.md §3)."""

import math
from typing import Annotated

from fastapi import Form, Request, status
from fastapi.responses import Response

from website import cookies, users
from website.deps import (
    AppServices,
    AppSettings,
    Caller,
    Chat,
    Db,
    LiveSession,
    PasswordHasher,
    live_session,
    protected_router,
)
from website.logging import get_logger
from website.metrics import LOGINS, THROTTLED
from website.models import User
from website.passwords import HasherBusy
from website.sessions import create_session, delete_session, sid_of
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


def throttled_message(retry_after: int) -> str:
    # Said of the address, whether or not an account has it: the answer reveals nothing.
    minutes = math.ceil(retry_after / 60)
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"Too many attempts for this email address. Please wait {wait} and try again."


def throttled(request: Request, template: str, retry_after: int, **context: str) -> Response:
    response = render(
        request,
        template,
        status.HTTP_429_TOO_MANY_REQUESTS,
        error=throttled_message(retry_after),
        **context,
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


async def _start_session(
    request: Request, db: Db, settings: AppSettings, user: User, target: str
) -> Response:
    # Rotate: whatever session id the browser held before is dropped for a fresh one.
    await delete_session(db, request.cookies.get(cookies.session_name(settings)))
    new = await create_session(db, user, settings)
    response = see_other(target)
    cookies.set_cookie(
        settings,
        response,
        cookies.session_name(settings),
        new.cookie_value,
        max_age=settings.session_absolute_seconds,
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
    services: AppServices,
    hasher: PasswordHasher,
    email: FormStr = "",
    display_name: FormStr = "",
    password: FormStr = "",
) -> Response:
    kept = {"email": email, "display_name": display_name}
    key = users.throttle_key(email)
    retry_after = services.register_throttle.attempt(key)
    if retry_after is not None:
        THROTTLED.labels("register").inc()
        log.info("registration throttled")
        return throttled(request, "register.html", retry_after, **kept)
    try:
        user = await users.register(db, hasher, email, display_name, password)
    except users.RegistrationError as exc:
        return render(
            request,
            "register.html",
            status.HTTP_400_BAD_REQUEST,
            error=str(exc),
            error_field=exc.field,
            **kept,
        )
    except HasherBusy:
        services.register_throttle.undo(key)
        raise
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
    services: AppServices,
    hasher: PasswordHasher,
    email: FormStr = "",
    password: FormStr = "",
    next: FormStr = "/rooms",
) -> Response:
    kept = {"email": email, "next": _safe_next(next)}
    key = users.throttle_key(email)
    # Counted before the check and cleared on success: concurrent guesses cannot slip past.
    retry_after = services.login_throttle.attempt(key)
    if retry_after is not None:
        THROTTLED.labels("login").inc()
        LOGINS.labels("throttled").inc()
        log.info("login throttled")
        return throttled(request, "login.html", retry_after, **kept)
    try:
        user = await users.authenticate(db, hasher, email, password)
    except HasherBusy:
        services.login_throttle.undo(key)
        raise
    if user is None:
        LOGINS.labels("failure").inc()
        log.info("login failed")
        return render(
            request,
            "login.html",
            status.HTTP_400_BAD_REQUEST,
            error="Invalid email or password.",
            error_field="password",  # the email is kept; the password is what to type again
            **kept,
        )
    services.login_throttle.clear(key)
    LOGINS.labels("success").inc()
    log.info("login succeeded", user_id=str(user.id))
    return await _start_session(request, db, settings, user, _safe_next(next))


@logout_router.post("/logout")
async def logout(db: Db, settings: AppSettings, session: LiveSession, chat: Chat) -> Response:
    user_id, sid = session.user_id, sid_of(session.id_hash)
    await db.delete(session)
    await db.commit()
    log.info("logged out", user_id=str(user_id))
    # This session's sockets close (4401); the user's other tabs and devices stay.
    await chat.user_revoked(user_id, sid=sid)
    response = see_other("/login")
    cookies.delete_cookie(settings, response, cookies.session_name(settings))
    return response
