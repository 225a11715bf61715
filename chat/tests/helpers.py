"""Test doubles and helpers: a fake website (JWKS + token minting) and client helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.client import connect as Connect  # the type, named for its role
from websockets.asyncio.server import Server

from chat import channels, wire
from chat import log as logsetup
from chat.caps import NodeCap
from chat.revocations import Revocations
from chat.server import Servers

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

JWKS_PATH = "/.well-known/jwks.json"
TIMEOUT_S = 3  # generous bound on every wait: a hang fails the test instead of the suite
DROP: Any = object()  # claim value meaning "leave this claim out"


@dataclass
class FakeWebsite:
    """Publishes a JWKS like the website does and mints tokens like it does."""

    port: int = 0
    keys: list[tuple[str, Ed25519PrivateKey]] = field(default_factory=list)
    requests: int = 0

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{JWKS_PATH}"

    def rotate(self) -> str:
        """Adds a new current key (old ones stay published) and returns its kid."""
        kid = uuid.uuid4().hex[:16]
        self.keys.insert(0, (kid, Ed25519PrivateKey.generate()))
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys:
            jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
        return {"keys": keys}

    def claims(self, room: str = "lobby", sub: str = "u1", name: str = "Alice",
               **overrides: Any) -> dict[str, Any]:  # fmt: skip
        now = int(time.time())
        claims = {
            "iss": wire.TOKEN_ISSUER, "aud": wire.TOKEN_AUDIENCE, "sub": sub,
            "email": f"{sub}@x.test", "name": name, "room": room, "iat": now, "nbf": now,
            "exp": now + 60, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def notice(self, purpose: str, *, room: str | None = None, user: str | None = None,
               **overrides: Any) -> str:  # fmt: skip
        """The website's signed notice: room_deleted (with `room`) or user_revoked (`user`)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": wire.NOTICE_SUBJECT, "purpose": purpose, "name": DROP, "email": DROP,
            "room": room or DROP, "exp": now + wire.NOTICE_MAX_LIFETIME_S,
        }  # fmt: skip
        if user is not None:
            claims["user"] = user
        return self.mint(**{**claims, **overrides})

    def mint(self, room: str = "lobby", sub: str = "u1", name: str = "Alice", *,
             kid: str | None = None, key: Ed25519PrivateKey | None = None,
             **overrides: Any) -> str:  # fmt: skip
        current_kid, current_key = self.keys[0]
        return jwt.encode(
            self.claims(room, sub, name, **overrides),
            key or current_key,
            algorithm=wire.TOKEN_ALGORITHM,
            headers={"kid": kid or current_kid},
        )


@contextmanager
def service_logs(stream: TextIO) -> Iterator[None]:
    """The service's log configuration, writing to `stream`; the tests' own afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logsetup.configure("INFO", stream=stream)
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()  # its flush thread too
        structlog.reset_defaults()
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("websockets").setLevel(logging.NOTSET)


def port_of(server: Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def until(predicate: Callable[[], bool], what: str, within_s: float = TIMEOUT_S) -> None:
    try:
        async with asyncio.timeout(within_s):
            while not predicate():  # noqa: ASYNC110 - polls the server's state
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"waited {within_s} s for {what}") from None


@dataclass
class Chat:
    """One replica, started in-process."""

    server: Server  # the client port
    website: FakeWebsite
    node_cap: NodeCap
    revocations: Revocations
    servers: Servers
    redis: RedisServer  # the bus it uses

    @property
    def port(self) -> int:
        return port_of(self.server)

    @property
    def node(self) -> str:
        return self.servers.bus.node

    async def notify(self, notice: str | None, **extra: str) -> int | None:
        """Publishes a notice on the control channel as the website does, and waits until
        this replica has handled it: the sockets it closes, None if it was refused."""
        control = self.servers.control
        before = control.handled
        message = json.dumps({"notice": notice, **extra} if notice is not None else extra)
        await publish(self.redis, channels.CONTROL, message.encode())
        await until(lambda: control.handled > before, "the notice to be handled")
        return control.last


    def connect(self, room: str = "lobby", token: str | None = None, *, header: bool = False,
                path: str | None = None, **kwargs: Any) -> Connect:  # fmt: skip
        """Like a browser (token as subprotocol) or, with header=True, like other clients."""
        if token is not None and header:
            kwargs.setdefault("additional_headers", {})["Authorization"] = f"Bearer {token}"
        elif token is not None:
            kwargs.setdefault("subprotocols", [wire.SUBPROTOCOL, wire.BEARER_PREFIX + token])
        uri = f"ws://127.0.0.1:{self.port}{path or wire.WS_PATH_PREFIX + room}"
        return connect(uri, proxy=None, open_timeout=5, **kwargs)

    def join(self, room: str = "lobby", sub: str = "u1", name: str = "Alice",
             **kwargs: Any) -> Connect:  # fmt: skip
        return self.connect(room, self.website.mint(room, sub, name), **kwargs)


async def publish(redis: RedisServer, channel: str, data: bytes) -> int:
    """PUBLISH with a fresh client (off the event loop); returns how many replicas heard it."""
    def run() -> int:
        with redis.client() as client:
            return int(client.publish(channel, data))

    return await asyncio.to_thread(run)


async def http_get(port: int, target: str, headers: dict[str, str] | None = None,
                   *, upgrade: bool = False) -> tuple[int, str]:  # fmt: skip
    """Sends exactly `GET <target>` (no client-side normalisation) and returns the status and
    body. With upgrade=True, as a WebSocket upgrade request."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    async with asyncio.timeout(TIMEOUT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            status = int(head.split(" ", 2)[1])
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)  # fmt: skip
            body = (await reader.readexactly(length)).decode()
        finally:
            writer.close()
    return status, body


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_S):
        frame: dict[str, Any] = json.loads(await ws.recv())
        return frame


async def recv_type(ws: ClientConnection, kind: str) -> dict[str, Any]:
    frame = await recv_json(ws)
    assert frame["type"] == kind, frame
    return frame


async def recv_presence(
    ws: ClientConnection, *, joined: tuple[str, ...] = (), left: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The next frame: a presence frame naming exactly these user ids (in any order)."""
    frame = await recv_type(ws, wire.FRAME_PRESENCE)
    got = (sorted(u["id"] for u in frame["joined"]), sorted(u["id"] for u in frame["left"]))
    assert got == (sorted(joined), sorted(left)), frame
    return frame


async def recv_join(ws: ClientConnection, user_id: str) -> dict[str, str]:
    """The next frame announces this one user's join; returns the user."""
    user: dict[str, str] = (await recv_presence(ws, joined=(user_id,)))["joined"][0]
    return user


async def recv_leave(ws: ClientConnection, user_id: str) -> dict[str, str]:
    """The next frame announces this one user's leave; returns the user."""
    user: dict[str, str] = (await recv_presence(ws, left=(user_id,)))["left"][0]
    return user


async def drain(ws: ClientConnection) -> None:
    """Reads everything a client is sent, as a browser would."""
    async for _ in ws:
        pass


def keep_reading(stack: AsyncExitStack, clients: Iterable[ClientConnection]) -> None:
    """Drains each client in a task of its own until `stack` closes."""
    tasks = [asyncio.create_task(drain(ws)) for ws in clients]
    stack.callback(lambda: [task.cancel() for task in tasks])


class MemberList:
    """The member list as the page keeps it: the welcome's, then each presence frame applied
    as set-remove (left) and set-add (joined)."""

    def __init__(self, welcome: dict[str, Any]) -> None:
        assert welcome["type"] == wire.FRAME_WELCOME, welcome
        self.members = {m["id"]: m["name"] for m in welcome["members"]}
        self.frames = 0  # presence frames applied
        self.joins = 0  # users they named as joined
        self.largest = 0  # bytes of the largest frame followed or settled

    def apply(self, frame: dict[str, Any]) -> None:
        if frame["type"] != wire.FRAME_PRESENCE:
            return
        self.frames += 1
        for user in frame["left"]:
            self.members.pop(user["id"], None)
        for user in frame["joined"]:
            self.members[user["id"]] = user["name"]
            self.joins += 1

    async def follow(self, ws: ClientConnection, until: Callable[[MemberList], bool],
                     within_s: float = TIMEOUT_S) -> None:  # fmt: skip
        """Applies the frames that arrive until `until(self)` holds."""
        async with asyncio.timeout(within_s):
            while not until(self):
                self._take(await ws.recv())

    async def settle(self, ws: ClientConnection, quiet_s: float = 0.3) -> None:
        """Applies the frames that arrive until none has for `quiet_s`."""
        while True:
            try:
                async with asyncio.timeout(quiet_s):
                    raw = await ws.recv()
            except TimeoutError:
                return
            self._take(raw)

    def _take(self, raw: str | bytes) -> None:
        self.largest = max(self.largest, len(raw if isinstance(raw, bytes) else raw.encode()))
        self.apply(json.loads(raw))


class RawClient:
    """A WebSocket client on a bare socket that completes the upgrade and then reads only
    when told to: a client that stopped reading, as far as the server can tell."""

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        self.sock = sock
        self.head = head  # the 101 response, as read

    @classmethod
    async def open(cls, port: int, token: str, room: str = "lobby",
                   rcvbuf: int | None = None) -> RawClient:  # fmt: skip
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connecting, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        key = base64.b64encode(os.urandom(16)).decode()
        request = "\r\n".join([
            f"GET {wire.WS_PATH_PREFIX}{room} HTTP/1.1", f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Key: {key}", f"Authorization: Bearer {token}", "", "",
        ])  # fmt: skip
        async with asyncio.timeout(TIMEOUT_S):
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, request.encode())
            head = b""
            while b"\r\n\r\n" not in head:  # byte by byte: not one byte of a frame read
                chunk = await loop.sock_recv(sock, 1)
                assert chunk, f"closed during the upgrade: {head!r}"
                head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock, head)

    async def read_all(self, within_s: float = TIMEOUT_S) -> bytes:
        """Everything the server sent until it closed the connection."""
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(within_s):
            while True:
                try:
                    chunk = await loop.sock_recv(self.sock, 65536)
                except ConnectionResetError:
                    return data
                if not chunk:
                    return data
                data += chunk

    async def read_until(self, needle: bytes, within_s: float = TIMEOUT_S) -> bytes:
        """What the server sent, up to and including `needle`."""
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(within_s):
            while needle not in data:
                chunk = await loop.sock_recv(self.sock, 65536)
                assert chunk, f"closed before {needle!r}"
                data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole unmasked frame in `data`."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[i : i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[i : i + 8])
            i += 8
        if i + length > len(data):
            break
        frames.append((opcode, data[i : i + length]))
        i += length
    return frames


def close_code_in(data: bytes) -> int | None:
    """The code of the close frame among the server's frames, None if there is none."""
    for opcode, payload in server_frames(data):
        if opcode == 0x8 and len(payload) >= 2:
            code: int = struct.unpack("!H", payload[:2])[0]
            return code
    return None
