"""Rooms: validation, creation, listing and deletion."""

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from website.models import Room, User
from website.text import has_invisible
from website.wire import ROOM_NAME_PATTERN

_NAME = re.compile(ROOM_NAME_PATTERN)
# The same rule for the form's pattern attribute: browsers anchor it themselves and compile it
# with the `v` flag, where a bare "-" inside a class is a syntax error.
HTML_NAME_PATTERN = ROOM_NAME_PATTERN.removeprefix("^").removesuffix("$").replace("-]", r"\-]")
TITLE_MAX = 100
PAGE_LIMIT_MAX = 100
PAGE_MAX = 100_000  # an offset past this is no listing anyone reads


@dataclass(frozen=True)
class RoomPage:
    rooms: list[Room]
    page: int
    limit: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


class RoomError(ValueError):
    """A user-facing reason the room could not be created; `field` is the form field to fix."""

    def __init__(self, message: str, field: str = "name") -> None:
        super().__init__(message)
        self.field = field


SEARCH_MAX = 100  # a filter longer than any title cannot match anything


def _like_pattern(text: str) -> str:
    """`text` as a literal ILIKE substring: its own % and _ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def get_room(db: AsyncSession, name: str) -> Room | None:
    room: Room | None = await db.scalar(select(Room).where(Room.name == name))
    return room


async def list_rooms(db: AsyncSession, page: int, limit: int, search: str = "") -> RoomPage:
    """One page of rooms, newest first; one row more than asked says whether there is a next.
    With `search`, only rooms whose name or title contains it (case-insensitively)."""
    query = select(Room)
    if search := " ".join(search.split())[:SEARCH_MAX]:
        pattern = _like_pattern(search)
        query = query.where(
            Room.name.ilike(pattern, escape="\\") | Room.title.ilike(pattern, escape="\\")
        )
    query = (
        query
        .order_by(Room.created_at.desc(), Room.name)
        .offset((page - 1) * limit)
        .limit(limit + 1)
    )
    rooms = list(await db.scalars(query))
    return RoomPage(rooms[:limit], page, limit, has_next=len(rooms) > limit)


async def create_room(db: AsyncSession, owner: User, name: str, title: str, max_rooms: int) -> Room:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise RoomError(
            "Room names are 3 to 32 characters: lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit."
        )
    title = " ".join(title.split()) or name
    if len(title) > TITLE_MAX:
        raise RoomError(f"Titles are at most {TITLE_MAX} characters.", "title")
    if has_invisible(title):
        raise RoomError("Titles cannot contain invisible or text-direction characters.", "title")
    # Lock the owner's row: two concurrent creations cannot both see room 50 as free.
    await db.execute(select(User.id).where(User.id == owner.id).with_for_update())
    owned = await db.scalar(select(func.count()).select_from(Room).where(Room.owner_id == owner.id))
    if (owned or 0) >= max_rooms:
        await db.commit()  # releases the lock; nothing was written
        raise RoomError(
            f"You already own {max_rooms} rooms, the most one person can have. "
            "Delete one to make another."
        )
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
