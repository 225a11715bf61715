"""CSRF tokens: bound to the session when logged in, to a cookie before that."""

import secrets
from typing import cast

from fastapi import HTTPException, Request, Response, status

from website import cookies
from website.config import Settings
from website.models import UserSession
from website.sessions import ReadSession

FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def session_of(request: Request) -> UserSession | ReadSession | None:
    # Unset when a request failed before the session lookup (e.g. an unknown path).
    session: UserSession | ReadSession | None = getattr(request.state, "session", None)
    return session


def _cookie_name(request: Request) -> str:
    return cookies.csrf_name(cast(Settings, request.app.state.settings))


def csrf_token_for(request: Request) -> str:
    """The token pages embed; creates the anonymous one on first use."""
    session = session_of(request)
    if session is not None:
        return session.csrf_token
    token: str | None = request.cookies.get(_cookie_name(request)) or getattr(
        request.state, "new_csrf", None
    )
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Send the anonymous token cookie if this request created it."""
    token = getattr(request.state, "new_csrf", None)
    if token is not None:
        settings = cast(Settings, request.app.state.settings)
        cookies.set_cookie(settings, response, cookies.csrf_name(settings), token)


async def submitted_token(request: Request) -> str | None:
    """The token from the X-CSRF-Token header (scripts) or the csrf_token field (forms).

    Starlette caches request.form(), so routes that take Form parameters still get them.
    """
    header = request.headers.get(HEADER)
    if header:
        return header
    field = (await request.form()).get(FORM_FIELD)
    return field if isinstance(field, str) else None


def check_csrf(
    request: Request, session: UserSession | ReadSession | None, submitted: str | None
) -> None:
    expected = (
        session.csrf_token if session is not None else request.cookies.get(_cookie_name(request))
    )
    # Bytes: compare_digest raises TypeError on non-ASCII str, and a hostile form sends some.
    if not expected or not submitted or not secrets.compare_digest(_raw(expected), _raw(submitted)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid or missing CSRF token.")


def _raw(token: str) -> bytes:
    return token.encode("utf-8", "surrogatepass")
