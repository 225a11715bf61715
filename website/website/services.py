"""The collaborators the app's lifespan builds once and routes reach through dependencies."""

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from website.chat_control import ChatControl
from website.passwords import Hasher
from website.throttle import Throttle
from website.tokens import TokenIssuer


@dataclass(frozen=True)
class Services:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # AUTOCOMMIT, for a chat token's lookup (db.autocommit)
    read_engine: AsyncEngine
    issuer: TokenIssuer
    http: httpx.AsyncClient
    bus: Redis
    chat_control: ChatControl
    hasher: Hasher
    login_throttle: Throttle
    register_throttle: Throttle
