"""Rooms: validation, creation, listing and deletion."""

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from website.models import Room, User
from website.wire import ROOM_NAME_PATTERN

_NAME = re.compile(ROOM_NAME_PATTERN)
# The same rule for the form's pattern attribute: browsers anchor it themselves and compile it
# with the `v` flag, where a bare "-" inside a class is a syntax error.
HTML_NAME_PATTERN = ROOM_NAME_PATTERN.removeprefix("^").removesuffix("$").replace("-]", r"\-]")
TITLE_MAX = 100


class RoomError(ValueError):
    """A user-facing reason the room could not be created."""


async def get_room(db: AsyncSession, name: str) -> Room | None:
    room: Room | None = await db.scalar(select(Room).where(Room.name == name))
    return room


async def list_rooms(db: AsyncSession) -> list[Room]:
    return list(await db.scalars(select(Room).order_by(Room.created_at, Room.name)))


async def create_room(db: AsyncSession, owner: User, name: str, title: str) -> Room:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise RoomError(
            "Room names are 3 to 32 characters: lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit."
        )
    title = " ".join(title.split()) or name
    if len(title) > TITLE_MAX:
        raise RoomError(f"Titles are at most {TITLE_MAX} characters.")
    room = Room(name=name, title=title, owner_id=owner.id, owner=owner)
    try:
        # A savepoint: a clash rolls back only this insert, not the caller's loaded objects.
        async with db.begin_nested():
            db.add(room)
    except IntegrityError:
        raise RoomError(f"A room named “{name}” already exists.") from None
    await db.commit()
    return room


async def delete_room(db: AsyncSession, room: Room) -> None:
    await db.delete(room)
    await db.commit()
