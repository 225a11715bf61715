"""The async engine and its session factory, built by the app's lifespan."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from website.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url(),
        pool_size=settings.database_pool_size,
        # Bound values stay out of error messages and logs (they may be passwords or tokens).
        hide_parameters=True,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def _refuse_closed(
    _dbapi: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    """Hand out no connection the database has closed (a restart, a crash), without a round
    trip: asyncpg learns of the close from the socket itself. pool_pre_ping did the same with
    three round trips (BEGIN, a ping, ROLLBACK) on every checkout, a fifth of a token's cost.
    DisconnectionError makes the pool drop this connection and try another, or a new one.
    A connection lost without the socket knowing fails its request with 503 once; the pool
    then discards every connection older than that failure."""
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        raise DisconnectionError("the database closed this connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, its statements each committing on their own (AUTOCOMMIT): a
    read-only request skips the BEGIN and ROLLBACK round trips. Only for work where every
    statement stands alone; anything that writes two things together takes a session."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")
