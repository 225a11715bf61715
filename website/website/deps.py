"""Request dependencies: the database session and the caller's web session."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from website.config import Settings, get_settings
from website.db import get_db
from website.models import UserSession
from website.sessions import COOKIE_NAME, load_session

Db = Annotated[AsyncSession, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(get_settings)]


async def load_caller(request: Request, db: Db, settings: AppSettings) -> UserSession | None:
    """Look the session cookie up once per request; pages and CSRF checks read request.state."""
    session = await load_session(db, request.cookies.get(COOKIE_NAME), settings)
    request.state.session = session
    return session


Caller = Annotated[UserSession | None, Depends(load_caller)]
