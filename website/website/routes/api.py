"""JSON API: room listing and chat tokens (session cookie + X-CSRF-Token for writes)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import BaseModel

from website.csrf import HEADER, check_csrf
from website.deps import Caller, Db, load_caller
from website.logging import get_logger
from website.metrics import TOKENS_ISSUED
from website.rooms import get_room, list_rooms
from website.tokens import get_issuer
from website.tracing import tracer

router = APIRouter(prefix="/api", dependencies=[Depends(load_caller)])
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
async def api_rooms(db: Db, caller: Caller) -> list[RoomOut]:
    if caller is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Log in first.")
    return [
        RoomOut(
            name=room.name,
            title=room.title,
            owner=room.owner.display_name,
            created_at=room.created_at.isoformat(),
        )
        for room in await list_rooms(db)
    ]


@router.post("/rooms/{name}/token")
async def chat_token(
    name: str,
    request: Request,
    db: Db,
    caller: Caller,
    csrf: Annotated[str | None, Header(alias=HEADER)] = None,
) -> ChatToken:
    if caller is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Log in first.")
    check_csrf(request, csrf)
    room = await get_room(db, name)
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such room.")
    issuer = get_issuer()
    with tracer.start_as_current_span("chat_token.issue", attributes={"parley.room": room.name}):
        token = issuer.issue(caller.user, room)
    TOKENS_ISSUED.inc()
    log.info("chat token issued", user_id=str(caller.user.id), room=room.name)
    return ChatToken(token=token, expires_in=issuer.ttl_seconds, ws_url=f"/ws/rooms/{room.name}")
