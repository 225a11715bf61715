"""Jinja2 rendering with the values every page needs (caller, CSRF token)."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from website.csrf import csrf_token_for, session_of, set_csrf_cookie


def _page_context(request: Request) -> dict[str, Any]:
    session = session_of(request)
    return {"user": session.user if session else None, "csrf_token": csrf_token_for(request)}


templates = Jinja2Templates(
    directory=Path(__file__).parent / "templates", context_processors=[_page_context]
)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    set_csrf_cookie(request, response)
    return response
