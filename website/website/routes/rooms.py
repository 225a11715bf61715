"""Room pages and their forms: list, create, open, delete (docs/design.md §3)."""

from typing import Annotated

from fastapi import Form, HTTPException, Query, Request, status
from fastapi.responses import Response

from website import rooms
from website.deps import (
    AppSettings,
    Chat,
    Db,
    OwnedRoom,
    PageUser,
    RoomOr404,
    page_user,
    protected_router,
)
from website.logging import get_logger
from website.routes.pages import Paging
from website.templating import render, see_other
from website.text import form_problem

router = protected_router(page_user)
log = get_logger(__name__)

FormStr = Annotated[str, Form()]


@router.get("/rooms")
async def rooms_page(
    request: Request,
    db: Db,
    paging: Paging,
    q: Annotated[str, Query(max_length=rooms.SEARCH_MAX)] = "",
) -> Response:
    # A query string is not a form: the same text rules keep NUL and friends from the database.
    if problem := form_problem(q):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"The search {problem}.")
    listing = await rooms.list_rooms(db, paging.page, paging.limit, q)
    return render(request, "rooms.html", listing=listing, q=" ".join(q.split()))


@router.post("/rooms")
async def create_room(
    request: Request,
    db: Db,
    settings: AppSettings,
    user: PageUser,
    name: FormStr = "",
    title: FormStr = "",
) -> Response:
    try:
        room = await rooms.create_room(db, user, name, title, settings.rooms_per_user)
    except rooms.RoomError as exc:
        return render(
            request,
            "rooms.html",
            status.HTTP_400_BAD_REQUEST,
            listing=await rooms.list_rooms(db, 1, settings.rooms_page_size),
            error=str(exc),
            error_field=exc.field,
            name=name,
            title=title,
        )
    log.info("room created", room=room.name, user_id=str(user.id))
    return see_other(f"/rooms/{room.name}")


@router.get("/rooms/{name}")
async def room_page(request: Request, room: RoomOr404) -> Response:
    return render(request, "room.html", room=room)


@router.post("/rooms/{name}/delete")
async def delete_room(db: Db, user: PageUser, room: OwnedRoom, chat: Chat) -> Response:
    name = room.name
    await rooms.delete_room(db, room)
    log.info("room deleted", room=name, user_id=str(user.id))
    await chat.room_deleted(name)
    return see_other("/rooms")
