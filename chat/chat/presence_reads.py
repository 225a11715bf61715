"""Reads of rooms' presence hashes (docs/design.md §5, "Bus"): many rooms in one round trip.

A replica reads a room's hash when it links to the room, for the welcome's remote members. A
connect storm links hundreds of new rooms within a second: read one by one, each read took a
round trip and, running at the same time, a pooled connection of its own. Here every room asked
for while no read is on its way goes in one pipeline, and those asked for meanwhile in the next."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from . import channels
from .bus import Bus

Snapshot = dict[bytes, bytes]  # field -> display name, as Redis returns them


async def read_hashes(bus: Bus, rooms: list[str]) -> list[Snapshot]:
    """The presence hashes of `rooms`, in one round trip (BusDown while the bus is down)."""

    async def read(r: Redis) -> list[Snapshot]:
        pipe = r.pipeline(transaction=False)
        for room in rooms:
            pipe.hgetall(channels.presence_key(room))
        snapshots: list[Snapshot] = await pipe.execute()
        return snapshots

    return await bus.call(read)


class PresenceReads:
    """One read at a time, each for every room asked for since the last one began."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        # One future per caller (never shared: a cancelled caller cancels only its own).
        self._asked: list[tuple[str, asyncio.Future[Snapshot]]] = []
        self._reader: asyncio.Task[None] | None = None

    async def read(self, room: str) -> Snapshot:
        """The room's hash; raises what the read raised (BusDown, a Redis error)."""
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._asked.append((room, future))
        if self._reader is None:  # starts next iteration: this one's callers join the batch
            self._reader = asyncio.create_task(self._read_all(), name="presence-reads")
        return await future

    async def _read_all(self) -> None:
        batch: list[tuple[str, asyncio.Future[Snapshot]]] = []
        try:
            while self._asked:
                batch, self._asked = self._asked, []
                try:
                    snapshots = await read_hashes(self._bus, [room for room, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():  # its caller may have given up meanwhile
                            future.set_exception(exc)
                    continue
                for (_, future), snapshot in zip(batch, snapshots, strict=True):
                    if not future.done():
                        future.set_result(snapshot)
        finally:
            self._reader = None
            # Cancelled (the replica stops): whoever still waits is let go.
            for _, future in (*batch, *self._asked):
                future.cancel()  # a no-op on the answered ones
            self._asked = []

    async def aclose(self) -> None:
        """Stops the read on its way, if any (the replica stops)."""
        reader = self._reader
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
