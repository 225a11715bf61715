"""The account pages: display name, password (which ends every other session), logging out
everywhere (docs/design.md §3)."""

import asyncio
from typing import Annotated

from fastapi import Form, Request, status
from fastapi.responses import Response

from website import cookies, users
from website.deps import (
    AppServices,
    AppSettings,
    Chat,
    Db,
    PageSession,
    PasswordHasher,
    page_user,
    protected_router,
)
from website.logging import get_logger
from website.metrics import THROTTLED
from website.passwords import HasherBusy
from website.routes.accounts import throttled
from website.sessions import delete_other_sessions, delete_user_sessions
from website.templating import render, see_other

router = protected_router(page_user)
log = get_logger(__name__)

FormStr = Annotated[str, Form()]
# Past this many ended sessions, one user-wide revocation replaces a call per session (this
# session's sockets close too, and reconnect on their still-valid session).
MAX_SID_REVOCATIONS = 10


@router.get("/account")
async def account_page(request: Request) -> Response:
    return render(request, "account.html")


@router.post("/account/name")
async def change_name(
    request: Request, db: Db, session: PageSession, display_name: FormStr = ""
) -> Response:
    try:
        name = await users.change_display_name(db, session.user, display_name)
    except users.RegistrationError as exc:
        return render(
            request,
            "account.html",
            status.HTTP_400_BAD_REQUEST,
            error=str(exc),
            error_field="display_name",
            display_name=display_name,
        )
    log.info("display name changed", user_id=str(session.user_id))
    return render(request, "account.html", renamed=name)


@router.post("/account/logout-everywhere")
async def logout_everywhere(
    db: Db, settings: AppSettings, session: PageSession, chat: Chat
) -> Response:
    user_id = session.user_id
    ended = await delete_user_sessions(db, user_id)
    log.info("logged out everywhere", user_id=str(user_id), sessions_ended=ended)
    await chat.user_revoked(user_id)  # without a sid: every socket of the user, every device
    response = see_other("/login")
    cookies.delete_cookie(settings, response, cookies.session_name(settings))
    return response


@router.get("/account/password")
async def password_form(request: Request) -> Response:
    return render(request, "password.html")


@router.post("/account/password")
async def change_password(
    request: Request,
    db: Db,
    session: PageSession,
    services: AppServices,
    hasher: PasswordHasher,
    chat: Chat,
    current_password: FormStr = "",
    new_password: FormStr = "",
    new_password_again: FormStr = "",
) -> Response:
    user = session.user
    # Guessing the current password from a stolen session counts like failed logins.
    key = users.throttle_key(user.email)
    retry_after = services.login_throttle.attempt(key)
    if retry_after is not None:
        THROTTLED.labels("login").inc()
        return throttled(request, "password.html", retry_after)
    try:
        await users.change_password(
            db, hasher, user, current_password, new_password, new_password_again
        )
    except users.PasswordChangeError as exc:
        if not isinstance(exc, users.WrongPassword):  # only wrong guesses count
            services.login_throttle.undo(key)
        field = "current_password" if isinstance(exc, users.WrongPassword) else "new_password"
        return render(
            request, "password.html", status.HTTP_400_BAD_REQUEST, error=str(exc), error_field=field
        )
    except HasherBusy:
        services.login_throttle.undo(key)
        raise
    services.login_throttle.clear(key)
    sids = await delete_other_sessions(db, user.id, keep=session.id_hash)
    log.info("password changed", user_id=str(user.id), sessions_ended=len(sids))
    if len(sids) > MAX_SID_REVOCATIONS:
        await chat.user_revoked(user.id)
    elif sids:  # each ended session's sockets close (4401); this one's stay
        await asyncio.gather(*(chat.user_revoked(user.id, sid=sid) for sid in sids))
    return render(request, "password.html", done=True, sessions_ended=len(sids))
