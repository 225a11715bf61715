"""Server-side sessions: a random id in the cookie, only its hash in the database."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from website.config import Settings
from website.models import User, UserSession

COOKIE_NAME = "parley_session"
# Writing last_seen_at on every request would turn each page view into a write.
_TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class NewSession:
    cookie_value: str
    row: UserSession


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def _now() -> datetime:
    return datetime.now(UTC)


async def create_session(db: AsyncSession, user: User, settings: Settings) -> NewSession:
    session_id = secrets.token_urlsafe(32)  # 256 bits
    now = _now()
    row = UserSession(
        id_hash=_hash(session_id),
        user_id=user.id,
        user=user,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.session_absolute_seconds),
    )
    db.add(row)
    await db.commit()
    return NewSession(session_id, row)


async def load_session(
    db: AsyncSession, session_id: str | None, settings: Settings
) -> UserSession | None:
    """The live session for this cookie value, or None; expired sessions are deleted."""
    if not session_id:
        return None
    row = await db.scalar(select(UserSession).where(UserSession.id_hash == _hash(session_id)))
    if row is None:
        return None
    now = _now()
    idle_deadline = row.last_seen_at + timedelta(seconds=settings.session_idle_seconds)
    if now >= row.expires_at or now >= idle_deadline or not row.user.is_active:
        await db.delete(row)
        await db.commit()
        return None
    if now - row.last_seen_at >= _TOUCH_INTERVAL:
        row.last_seen_at = now
        await db.commit()
    return row


async def delete_session(db: AsyncSession, session_id: str | None) -> None:
    if session_id:
        await db.execute(delete(UserSession).where(UserSession.id_hash == _hash(session_id)))
        await db.commit()
