"""The site's two cookies, named and flagged by PUBLIC_URL.

Over HTTPS they are Secure and carry the __Host- prefix (the browser then refuses them unless
Secure, Path=/ and without Domain: no subdomain can plant or overwrite them).
"""

from fastapi import Response

from website.config import Settings

SESSION = "parley_session"
CSRF = "parley_csrf"
HOST_PREFIX = "__Host-"


def name(settings: Settings, base: str) -> str:
    return f"{HOST_PREFIX}{base}" if settings.https else base


def session_name(settings: Settings) -> str:
    return name(settings, SESSION)


def csrf_name(settings: Settings) -> str:
    return name(settings, CSRF)


def set_cookie(
    settings: Settings, response: Response, cookie: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        cookie,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.https,
    )


def delete_cookie(settings: Settings, response: Response, cookie: str) -> None:
    response.delete_cookie(cookie, path="/", httponly=True, samesite="lax", secure=settings.https)
