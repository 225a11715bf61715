"""Server-side sessions: a random id in the cookie, only its hash in the database."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from website.config import Settings
from website.cookies import SESSION
from website.models import Room, User, UserSession

COOKIE_NAME = SESSION  # the name over plain HTTP; cookies.session_name() decides
# Our ids are 43 characters; anything much longer is not one of ours and is not looked up.
_MAX_COOKIE_CHARS = 64
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


def sid_of(id_hash: bytes) -> str:
    """The session's handle in chat tokens and revocations: no secret, just a label."""
    return id_hash[:8].hex()


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


def _lookup(session_id: str | None) -> bytes | None:
    """The hash to look up, or None for a cookie that cannot be one of ours."""
    if not session_id or len(session_id) > _MAX_COOKIE_CHARS:
        return None
    return _hash(session_id)


async def load_session(
    db: AsyncSession, session_id: str | None, settings: Settings
) -> UserSession | None:
    """The live session for this cookie value, or None; expired sessions are deleted."""
    id_hash = _lookup(session_id)
    if id_hash is None:
        return None
    row = await db.scalar(select(UserSession).where(UserSession.id_hash == id_hash))
    return await _keep_live(db, row, settings)


@dataclass(frozen=True, slots=True)
class SessionUser:
    """A session's user as a chat token's lookup reads them: what the token says of them."""

    id: uuid.UUID
    email: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ReadSession:
    """A live session as a chat token's lookup found it: plain values, read and never written."""

    id_hash: bytes
    csrf_token: str
    user: SessionUser


_sessions, _users, _rooms = UserSession.__table__, User.__table__, Room.__table__
# A chat token's one query, built once (building it per call was about a tenth of a token's
# CPU), in Core: the ORM's session and its loading of two objects cost about a third of the
# lookup's CPU (docs/design.md §11).
_SESSION_AND_ROOM = (
    select(
        _sessions.c.csrf_token,
        _sessions.c.last_seen_at,
        _sessions.c.expires_at,
        _users.c.id,
        _users.c.email,
        _users.c.display_name,
        _users.c.is_active,
        select(_rooms.c.id).where(_rooms.c.name == bindparam("room")).scalar_subquery(),
    )
    .join_from(_sessions, _users, _sessions.c.user_id == _users.c.id)
    .where(_sessions.c.id_hash == bindparam("id_hash"))
)
_END = delete(UserSession).where(UserSession.id_hash == bindparam("id_hash"))
_TOUCH = (
    update(UserSession)  # "hash": an UPDATE reserves its columns' names for the SET values
    .where(UserSession.id_hash == bindparam("hash"))
    .values(last_seen_at=bindparam("now"))
)


async def load_session_in_room(
    conn: AsyncConnection, session_id: str | None, settings: Settings, room: str
) -> tuple[ReadSession | None, bool]:
    """load_session, and whether the room named `room` exists, in one query (a chat token's
    whole lookup), on a connection whose statements each commit on their own. Without a live
    session the room is not known, and reads as absent."""
    id_hash = _lookup(session_id)
    if id_hash is None:
        return None, False
    found = (await conn.execute(_SESSION_AND_ROOM, {"id_hash": id_hash, "room": room})).first()
    if found is None:
        return None, False
    csrf_token, last_seen_at, expires_at, user_id, email, name, is_active, room_id = found
    now = _now()
    if _has_ended(now, expires_at, last_seen_at, is_active, settings):
        await conn.execute(_END, {"id_hash": id_hash})
        return None, False
    if now - last_seen_at >= _TOUCH_INTERVAL:
        await conn.execute(_TOUCH, {"hash": id_hash, "now": now})
    session = ReadSession(id_hash, csrf_token, SessionUser(user_id, email, name))
    return session, room_id is not None


def _has_ended(now: datetime, expires_at: datetime, last_seen_at: datetime, is_active: bool,
               settings: Settings) -> bool:  # fmt: skip
    """Past its absolute or idle lifetime, or its user deactivated."""
    idle_deadline = last_seen_at + timedelta(seconds=settings.session_idle_seconds)
    return now >= expires_at or now >= idle_deadline or not is_active


async def _keep_live(
    db: AsyncSession, row: UserSession | None, settings: Settings
) -> UserSession | None:
    """Delete the row if it has expired (or its user is deactivated); touch it now and then."""
    if row is None:
        return None
    now = _now()
    if _has_ended(now, row.expires_at, row.last_seen_at, row.user.is_active, settings):
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


async def delete_other_sessions(db: AsyncSession, user_id: uuid.UUID, keep: bytes) -> list[str]:
    """Delete every session of the user but `keep`; the sids of those deleted."""
    deleted = await db.scalars(
        delete(UserSession)
        .where(UserSession.user_id == user_id, UserSession.id_hash != keep)
        .returning(UserSession.id_hash)
    )
    sids = [sid_of(id_hash) for id_hash in deleted]
    await db.commit()
    return sids


async def delete_user_sessions(db: AsyncSession, user_id: uuid.UUID) -> int:
    deleted = await db.scalars(
        delete(UserSession).where(UserSession.user_id == user_id).returning(UserSession.id_hash)
    )
    count = len(list(deleted))
    await db.commit()
    return count


async def purge_expired(db: AsyncSession, settings: Settings, batch: int) -> int:
    """Delete at most `batch` expired sessions (absolute or idle); how many went."""
    now = _now()
    idle_cutoff = now - timedelta(seconds=settings.session_idle_seconds)
    expired = (
        select(UserSession.id_hash)
        .where(or_(UserSession.expires_at <= now, UserSession.last_seen_at <= idle_cutoff))
        .limit(batch)
    )
    deleted = await db.scalars(
        delete(UserSession)
        .where(UserSession.id_hash.in_(expired.scalar_subquery()))
        .returning(UserSession.id_hash)
    )
    count = len(list(deleted))
    await db.commit()
    return count
