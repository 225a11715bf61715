"""The website's database role has data rights only, and its timeouts (db/README.md)."""

import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from website.config import Settings

# What the db entrypoint sets on the app role (ALTER ROLE … SET).
STATEMENT_TIMEOUT = "5s"
IDLE_IN_TRANSACTION_TIMEOUT = "10s"
INSUFFICIENT_PRIVILEGE = "42501"
QUERY_CANCELED = "57014"


def sqlstate(error: DBAPIError) -> str | None:
    """The PostgreSQL error code behind SQLAlchemy's wrapper (asyncpg's exception)."""
    cause = error.orig.__cause__ if error.orig is not None else None
    code = getattr(cause, "sqlstate", None) or getattr(error.orig, "sqlstate", None)
    return str(code) if code is not None else None


async def scalar(db: AsyncSession, sql: str) -> object:
    return (await db.execute(text(sql))).scalar_one()


async def test_the_website_connects_as_a_plain_role(db: AsyncSession, settings: Settings) -> None:
    assert await scalar(db, "SELECT current_user") == settings.database_user
    row = (
        await db.execute(
            text(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
                " FROM pg_roles WHERE rolname = current_user"
            )
        )
    ).one()
    assert not any(row)


async def test_the_app_role_owns_nothing(db: AsyncSession) -> None:
    # Not the database, not the schema, no table, index or sequence; nor a member of the
    # role that owns them (membership would carry the owner's rights).
    me = "(SELECT oid FROM pg_roles WHERE rolname = current_user)"
    assert await scalar(db, f"SELECT count(*) FROM pg_class WHERE relowner = {me}") == 0
    assert await scalar(db, f"SELECT count(*) FROM pg_namespace WHERE nspowner = {me}") == 0
    owns_db = (
        "SELECT pg_has_role(current_user, datdba, 'USAGE') FROM pg_database"
        " WHERE datname = current_database()"
    )
    assert await scalar(db, owns_db) is False
    tables = (
        await db.execute(
            text(
                "SELECT tablename, pg_has_role(current_user, tableowner, 'USAGE')"
                " FROM pg_tables WHERE schemaname = 'public'"
            )
        )
    ).all()
    assert {name for name, _ in tables} >= {"users", "sessions", "rooms", "alembic_version"}
    assert not any(member for _, member in tables)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE parley_probe (x int)",
        "CREATE TEMPORARY TABLE parley_probe (x int)",
        "CREATE SCHEMA parley_probe",
        "CREATE INDEX parley_probe ON users (display_name)",
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN x int",
        "ALTER TABLE rooms DROP CONSTRAINT ck_rooms_name_format",
        "TRUNCATE sessions",
        "DELETE FROM pg_catalog.pg_class",
    ],
)
async def test_schema_changes_are_refused(db: AsyncSession, statement: str) -> None:
    # The session is rolled back when the fixture closes it: DDL is transactional in
    # PostgreSQL, so even a wrongly accepted statement would leave nothing behind.
    with pytest.raises(DBAPIError) as refused:
        await db.execute(text(statement))
    assert sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE, refused.value


async def test_rows_can_be_read_and_written(db: AsyncSession) -> None:
    # The other side of the bound: the app role's own work is allowed.
    user_id = uuid.uuid4()
    row = {"id": user_id, "email": f"role-{user_id.hex[:12]}@example.test"}
    insert = (
        "INSERT INTO users (id, email, display_name, password_hash)"
        " VALUES (:id, :email, 'Role check', 'x')"
    )
    await db.execute(text(insert), row)
    await db.execute(text("UPDATE users SET display_name = 'Renamed' WHERE id = :id"), row)
    name = await db.execute(text("SELECT display_name FROM users WHERE id = :id"), row)
    assert name.scalar_one() == "Renamed"
    deleted = await db.execute(text("DELETE FROM users WHERE id = :id"), row)
    assert deleted.rowcount == 1  # type: ignore[attr-defined]
    # alembic check (tests/test_migrations.py) reads the revision as this role.
    assert await scalar(db, "SELECT count(*) FROM alembic_version") == 1
    await db.rollback()


async def test_the_role_carries_its_timeouts(db: AsyncSession) -> None:
    assert await scalar(db, "SHOW statement_timeout") == STATEMENT_TIMEOUT
    idle = await scalar(db, "SHOW idle_in_transaction_session_timeout")
    assert idle == IDLE_IN_TRANSACTION_TIMEOUT


async def test_a_statement_over_the_timeout_is_cancelled(db: AsyncSession) -> None:
    # Under the bound a statement completes; over it, the server cancels it at 5 s.
    assert await scalar(db, "SELECT pg_sleep(0.2)::text") == ""
    await db.rollback()
    started = time.monotonic()
    with pytest.raises(DBAPIError) as cancelled:
        await db.execute(text("SELECT pg_sleep(60)"))
    elapsed = time.monotonic() - started
    assert sqlstate(cancelled.value) == QUERY_CANCELED, cancelled.value
    assert 4.5 <= elapsed < 15, elapsed
