"""Expired sessions are purged in bounded batches (design §3)."""

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.utils import Browser, app_with
from website.config import Settings
from website.models import User, UserSession
from website.sessions import purge_expired


async def test_expired_sessions_go_a_batch_at_a_time(
    user: Browser, db: AsyncSession, settings: Settings
) -> None:
    owner = await db.scalar(select(User).where(User.email == user.email))
    assert owner is not None
    long_ago = datetime.now(UTC) - timedelta(days=30)
    hashes = [secrets.token_bytes(32) for _ in range(3)]
    for id_hash in hashes:
        db.add(
            UserSession(
                id_hash=id_hash,
                user_id=owner.id,
                csrf_token="x",
                created_at=long_ago,
                last_seen_at=long_ago,
                expires_at=long_ago,
            )
        )
    await db.commit()
    for _ in range(1000):  # other tests' leftovers may be in the way; each run is bounded
        purged = await purge_expired(db, settings, batch=2)
        assert purged <= 2
        if purged < 2:
            break
    left = await db.scalars(select(UserSession.id_hash).where(UserSession.id_hash.in_(hashes)))
    assert list(left) == []
    assert (await user.http.get("/rooms")).status_code == 200  # live sessions stay


async def test_the_lifespan_purges_in_the_background(
    user: Browser, db: AsyncSession, settings: Settings
) -> None:
    owner = await db.scalar(select(User).where(User.email == user.email))
    assert owner is not None
    long_ago = datetime.now(UTC) - timedelta(days=30)
    id_hash = secrets.token_bytes(32)
    db.add(
        UserSession(
            id_hash=id_hash,
            user_id=owner.id,
            csrf_token="x",
            created_at=long_ago,
            last_seen_at=long_ago,
            expires_at=long_ago,
        )
    )
    await db.commit()
    async with app_with(settings, session_purge_interval_s=0.05, session_purge_batch=1000):
        for _ in range(100):  # at most 5 s
            await asyncio.sleep(0.05)
            if (
                await db.scalar(select(UserSession.id_hash).where(UserSession.id_hash == id_hash))
                is None
            ):
                break
        else:
            raise AssertionError("the expired session was never purged")
