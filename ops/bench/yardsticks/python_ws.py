"""Yardstick, not product: the minimal room broadcaster people would write with Python and
`websockets` (the chat's own version of the library, in the chat's image). Same frames as
Parley (docs/design.md §5: welcome, join, leave, message), no auth, no limits, no presence
batching, no logs or metrics; the user comes from `?user=` instead of a token; the library's
own broadcast(). One process, one core, as the benchmark pins it."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve

rooms: dict[str, set[ServerConnection]] = {}


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def ts() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    url = urlsplit(ws.request.path)
    room = url.path.rsplit("/", 1)[-1]
    uid = parse_qs(url.query).get("user", [uuid.uuid4().hex])[0]
    user = {"id": uid, "name": uid}
    members = rooms.setdefault(room, set())
    others = [m.user for m in members]  # type: ignore[attr-defined]
    welcome = {"type": "welcome", "room": room, "you": user, "members": [*others, user]}
    await ws.send(encode(welcome))
    broadcast(members, encode({"type": "join", "user": user, "ts": ts()}))
    ws.user = user  # type: ignore[attr-defined]
    members.add(ws)
    try:
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(msg, dict) or msg.get("type") != "message":
                continue
            frame = {"type": "message", "id": uuid.uuid4().hex, "room": room, "from": user,
                     "text": msg.get("text"), "ts": ts()}  # fmt: skip
            if isinstance(msg.get("client_id"), str):
                frame["client_id"] = msg["client_id"]
            broadcast(members, encode(frame))
    finally:
        members.discard(ws)
        if members:
            broadcast(members, encode({"type": "leave", "user": user, "ts": ts()}))
        else:
            rooms.pop(room, None)


async def main() -> None:
    port = int(os.environ.get("PORT", "8001"))
    # The library's defaults but for compression (off in Parley too), the frame limit, and the
    # opening handshake's timeout: 30 s, as the load generator allows in the join storm (at 10
    # s, the default, this server closed the storm's last handshakes unanswered; Node `ws`
    # has no such timeout).
    async with serve(handler, "0.0.0.0", port, compression=None, max_size=16384,
                     backlog=4096, open_timeout=30) as server:  # fmt: skip
        print(f"python websockets yardstick on {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
