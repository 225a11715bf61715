"""Chat tokens (docs/design.md §4) and the JWKS the chat service verifies them with."""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt import PyJWK
from sqlalchemy import Connection, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.utils import Browser, unique_room
from website.models import User, UserSession
from website.services import Services
from website.sessions import COOKIE_NAME
from website.tokens import TokenIssuer


async def _verify(browser: Browser, token: str) -> dict[str, Any]:
    jwks = (await browser.http.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(token)
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    return jwt.decode(
        token,
        PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="parley-chat",
        issuer="parley-website",
        options={"require": ["iss", "aud", "exp", "iat", "nbf", "sub", "jti"]},
    )


async def test_token_claims_exactly_as_designed(user: Browser) -> None:
    room = unique_room()
    await user.create_room(room)
    response = await user.token(room)
    assert response.status_code == 200
    body = response.json()
    assert body["ws_url"] == f"/ws/rooms/{room}"
    assert 0 < body["expires_in"] <= 120
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "EdDSA" and header["kid"]
    claims = await _verify(user, body["token"])
    expected = {"iss", "aud", "sub", "email", "name", "room", "sid", "iat", "nbf", "exp", "jti"}
    assert set(claims) == expected
    # sid: the session's handle, the first 8 bytes of the hash the database keeps (no secret).
    session_hash = hashlib.sha256(user.http.cookies[COOKIE_NAME].encode()).digest()
    assert claims["sid"] == session_hash[:8].hex()
    assert claims["room"] == room and claims["email"] == user.email
    assert claims["name"] == user.name
    assert claims["exp"] - claims["iat"] == body["expires_in"] <= 120
    second = await _verify(user, (await user.token(room)).json()["token"])
    assert second["jti"] != claims["jti"]


async def test_jwks_holds_only_a_public_ed25519_key(browser: Browser) -> None:
    response = await browser.http.get("/.well-known/jwks.json")
    (key,) = response.json()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    assert "d" not in key  # the private part never leaves the website
    assert "max-age" in response.headers["cache-control"]


async def test_token_refused_without_session_csrf_or_room(user: Browser, browser: Browser) -> None:
    room = unique_room()
    await user.create_room(room)
    assert (await user.token("no-such-room")).status_code == 404
    assert (await user.http.post(f"/api/rooms/{room}/token")).status_code == 403
    bad = {"X-CSRF-Token": "nope"}
    assert (await user.http.post(f"/api/rooms/{room}/token", headers=bad)).status_code == 403
    await user.logout()
    assert (await user.http.post(f"/api/rooms/{room}/token")).status_code == 401


async def test_no_token_for_a_deactivated_user(user: Browser, db: AsyncSession) -> None:
    room = unique_room()
    await user.create_room(room)
    csrf = await user.csrf()
    await db.execute(update(User).where(User.email == user.email).values(is_active=False))
    await db.commit()
    response = await user.http.post(f"/api/rooms/{room}/token", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 401


async def test_room_deleted_notice_cannot_pass_for_a_user_token(
    browser: Browser, issuer: TokenIssuer
) -> None:
    notice = issuer.issue_room_deleted("some-room")
    claims = await _verify(browser, notice)
    assert claims["purpose"] == "room_deleted" and claims["room"] == "some-room"
    assert claims["sub"] == "parley-website" and "name" not in claims and "email" not in claims
    assert claims["exp"] - claims["iat"] <= 30


async def test_user_revoked_notice_names_the_user_only(
    browser: Browser, issuer: TokenIssuer
) -> None:
    user_id = uuid.uuid4()
    claims = await _verify(browser, issuer.issue_user_revoked(user_id))
    assert set(claims) == {"iss", "aud", "sub", "purpose", "user", "iat", "nbf", "exp", "jti"}
    assert claims["purpose"] == "user_revoked" and claims["user"] == str(user_id)
    assert claims["sub"] == "parley-website" and "room" not in claims
    assert claims["exp"] - claims["iat"] <= 30 and claims["nbf"] == claims["iat"]


async def test_a_token_costs_one_query_outside_any_transaction(
    user: Browser, services: Services
) -> None:
    room = unique_room()
    await user.create_room(room)
    csrf = await user.csrf()
    seen: list[tuple[str, object]] = []

    def record(conn: Connection, _c: Any, statement: str, *_: Any) -> None:
        seen.append((statement, conn.get_execution_options().get("isolation_level")))

    event.listen(services.engine.sync_engine, "before_cursor_execute", record)
    try:
        headers = {"X-CSRF-Token": csrf}
        response = await user.http.post(f"/api/rooms/{room}/token", headers=headers)
        missing = await user.http.post("/api/rooms/no-such-room/token", headers=headers)
    finally:
        event.remove(services.engine.sync_engine, "before_cursor_execute", record)
    assert response.status_code == 200 and missing.status_code == 404
    # Session, user and room in one SELECT each time; AUTOCOMMIT, so no BEGIN/ROLLBACK either.
    assert len(seen) == 2, seen
    assert all(level == "AUTOCOMMIT" for _, level in seen), seen


async def _session_row(db: AsyncSession, email: str) -> UserSession | None:
    db.expire_all()
    owner = select(User.id).where(User.email == email).scalar_subquery()
    row: UserSession | None = await db.scalar(
        select(UserSession).where(UserSession.user_id == owner)
    )
    return row


async def test_a_token_request_keeps_the_session_live_and_ends_an_expired_one(
    user: Browser, db: AsyncSession
) -> None:
    # Its lookup runs on an AUTOCOMMIT connection: its writes must still land.
    room = unique_room()
    await user.create_room(room)
    csrf = await user.csrf()
    row = await _session_row(db, user.email)
    assert row is not None
    a_while_ago = datetime.now(UTC) - timedelta(minutes=5)
    await db.execute(
        update(UserSession)
        .where(UserSession.id_hash == row.id_hash)
        .values(last_seen_at=a_while_ago)
    )
    await db.commit()
    headers = {"X-CSRF-Token": csrf}
    assert (await user.http.post(f"/api/rooms/{room}/token", headers=headers)).status_code == 200
    touched = await _session_row(db, user.email)
    assert touched is not None and touched.last_seen_at > a_while_ago + timedelta(minutes=4)

    await db.execute(
        update(UserSession)
        .where(UserSession.id_hash == row.id_hash)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    assert (await user.http.post(f"/api/rooms/{room}/token", headers=headers)).status_code == 401
    assert await _session_row(db, user.email) is None
