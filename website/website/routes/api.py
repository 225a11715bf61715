"""JSON API: room listing and chat tokens (session cookie + X-CSRF-Token for writes)."""

from fastapi import Response
from pydantic import BaseModel

from website.deps import (
    ApiCallerInRoom,
    Db,
    Issuer,
    api_user,
    protected_router,
    room_api_router,
)
from website.logging import get_logger
from website.metrics import TOKENS_ISSUED
from website.rooms import list_rooms
from website.routes.pages import Paging
from website.sessions import sid_of
from website.tracing import tracer
from website.wire import WS_PATH_PREFIX

router = protected_router(api_user, prefix="/api")
# The chat token's: the session, its user and the room in one read-only query.
token_router = room_api_router(prefix="/api")
log = get_logger(__name__)


class RoomOut(BaseModel):
    name: str
    title: str
    owner: str
    created_at: str


class ChatToken(BaseModel):
    token: str
    expires_in: int
    ws_url: str


@router.get("/rooms")
async def api_rooms(db: Db, paging: Paging, response: Response) -> list[RoomOut]:
    """One page of rooms, newest first; the Link header (RFC 8288) names the next and prev."""
    listing = await list_rooms(db, paging.page, paging.limit)
    links = []
    if listing.has_next:
        links.append(f'</api/rooms?page={listing.page + 1}&limit={listing.limit}>; rel="next"')
    if listing.has_prev:
        links.append(f'</api/rooms?page={listing.page - 1}&limit={listing.limit}>; rel="prev"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return [
        RoomOut(
            name=room.name,
            title=room.title,
            owner=room.owner.display_name,
            created_at=room.created_at.isoformat(),
        )
        for room in listing.rooms
    ]


@token_router.post("/rooms/{name}/token")
async def chat_token(caller: ApiCallerInRoom, issuer: Issuer) -> ChatToken:
    room = caller.room_or_404()
    session = caller.session
    user = session.user
    with tracer.start_as_current_span("chat_token.issue", attributes={"parley.room": room}):
        token = issuer.issue(user, room, sid=sid_of(session.id_hash))
    TOKENS_ISSUED.inc()
    log.info("chat token issued", user_id=str(user.id), room=room)
    return ChatToken(token=token, expires_in=issuer.ttl_seconds, ws_url=f"{WS_PATH_PREFIX}{room}")
