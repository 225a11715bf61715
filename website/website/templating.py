"""Page responses: Jinja2 rendering with what every page needs (caller, CSRF token), redirects."""

from pathlib import Path
from typing import Any

from fastapi import Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from website import wire
from website.csrf import csrf_token_for, session_of, set_csrf_cookie
from website.rooms import HTML_NAME_PATTERN

# What the chat page's script needs of the wire contract, handed over as a JSON data block
# (never inline script: the page's CSP will forbid it).
# Under the contract's own names (docs/design.md §6), so one vocabulary serves all three.
PAGE_WIRE_NAMES = (
    "SUBPROTOCOL",
    "BEARER_PREFIX",
    "MAX_TEXT_CHARS",
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_SESSION_ENDED",
    "CLOSE_ROOM_DELETED",
    "CLOSE_TOO_MANY_CONNECTIONS",
)
PAGE_WIRE = {name: getattr(wire, name) for name in PAGE_WIRE_NAMES}


def _page_context(request: Request) -> dict[str, Any]:
    session = session_of(request)
    return {"user": session.user if session else None, "csrf_token": csrf_token_for(request)}


templates = Jinja2Templates(
    directory=Path(__file__).parent / "templates", context_processors=[_page_context]
)
templates.env.globals |= {"wire": PAGE_WIRE, "room_name_pattern": HTML_NAME_PATTERN}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    set_csrf_cookie(request, response)
    return response


def see_other(url: str) -> RedirectResponse:
    """After a form post (or to send a browser on): GET the next page."""
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
