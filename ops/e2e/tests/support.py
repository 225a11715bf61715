"""Helpers shared by the end-to-end tests: settings, an HTML reader, an HTTP client that
behaves like a logged-in browser tab, and a thin WebSocket peer with bounded waits."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Protocol, overload
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

WAIT = 5.0  # seconds: the bound on every single wait for the stack
PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",
]
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
ROOM_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$")

Json = dict[str, Any]  # a decoded JSON object: an API answer, a frame, JWT claims


# Every password, cookie, token and message text the suite uses, so checks/test_logs.py can
# prove none of them reached any service's log (written out at the end of the session).
SENSITIVE: set[str] = {PASSWORD}


@overload
def sensitive(value: str) -> str: ...
@overload
def sensitive(value: None) -> None: ...
def sensitive(value: str | None) -> str | None:
    if value and len(value) >= 8:  # shorter strings would match by chance
        SENSITIVE.add(value)
    return value


def _slug(raw: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower())[:limit].strip("-")
    return slug or "x"


@dataclass(frozen=True)
class Settings:
    base_url: str
    ws_base_url: str
    run_id: str
    run_id_from_env: bool
    artifacts_dir: Path
    chromium: str
    email_domain: str

    @classmethod
    def from_env(cls) -> Settings:
        run_id = os.environ.get("RUN_ID", "").strip()
        return cls(
            base_url=os.environ.get("BASE_URL", "http://nginx").rstrip("/"),
            ws_base_url=os.environ.get("WS_BASE_URL", "ws://nginx").rstrip("/"),
            run_id=run_id or uuid.uuid4().hex[:12],
            run_id_from_env=bool(run_id),
            artifacts_dir=Path(os.environ.get("ARTIFACTS_DIR", "/tmp/artifacts")),
            chromium=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
            email_domain=os.environ.get("EMAIL_DOMAIN", "example.com"),
        )

    @property
    def origin(self) -> str:
        """The Origin a browser sends for pages served from BASE_URL."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def run_slug(self) -> str:
        return _slug(self.run_id, 24)

    def unique_email(self, prefix: str = "user") -> str:
        return f"{prefix}-{_slug(self.run_id, 12)}-{uuid.uuid4().hex[:10]}@{self.email_domain}"

    def persist_email(self) -> str:
        return f"persist-{self.run_slug}@{self.email_domain}"

    def persist_room(self) -> str:
        name = f"persist-{self.run_slug}"
        assert ROOM_NAME.match(name), name
        return name


def unique_room(prefix: str = "r") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    assert ROOM_NAME.match(name), name
    return name


def unique_name(prefix: str = "User") -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def is_rfc3339_utc(value: Any) -> bool:
    if not isinstance(value, str) or not RFC3339_UTC.match(value):
        return False
    offset = datetime.fromisoformat(value.replace("Z", "+00:00")).utcoffset()
    return offset is not None and offset.total_seconds() == 0


# ---------------------------------------------------------------- HTML


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[str | Node] = field(default_factory=list)

    @property
    def text(self) -> str:
        out = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else part.text)
        return "".join(out)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for node in self.iter():
            if tag is not None and node.tag != tag:
                continue
            if cls is not None and cls not in node.classes:
                continue
            if any(node.attrs.get(k.rstrip("_")) != v for k, v in attrs.items()):
                continue
            found.append(node)
        return found

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node | None:
        found = self.find_all(tag, cls, **attrs)
        return found[0] if found else None

    def by_id(self, id_: str) -> Node | None:
        return self.find(id=id_)


_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs})
        parent = self.stack[-1]
        parent.children.append(node)
        parent.parts.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def describe(response: httpx.Response) -> str:
    """A short account of a response for assertion messages."""
    body = response.text[:600].replace("\n", " ") if response.content else ""
    location = response.headers.get("location")
    where = f" -> {location}" if location else ""
    request = response.request
    return f"{request.method} {request.url.path}: {response.status_code}{where} {body}"


def error_text(response: httpx.Response) -> str:
    node = parse_html(response.text).find(cls="error")
    return " ".join(node.text.split()) if node else ""


_LINK = re.compile(r'<([^>]+)>;\s*rel="(next|prev)"')


def follow_links(response: httpx.Response) -> dict[str, str]:
    """The next/prev targets of a paged answer's Link header (RFC 8288)."""
    return {rel: url for url, rel in _LINK.findall(response.headers.get("link", ""))}


def path_of(location: str | None) -> str:
    return urlsplit(location or "").path


# ---------------------------------------------------------------- HTTP


class Client:
    """One browser-like user agent: a cookie jar, the current CSRF token, the account."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(
            base_url=settings.base_url,
            follow_redirects=False,
            timeout=httpx.Timeout(10.0),
            trust_env=False,
            event_hooks={"response": [self._note_cookies]},
        )
        # The account, once registered or logged in ("" before).
        self.email = ""
        self.password = ""
        self.name = ""
        self.csrf: str | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _note_cookies(self, response: httpx.Response) -> None:
        for name in ("parley_session", "parley_csrf"):
            sensitive(response.cookies.get(name))

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get("parley_session")

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(path, **kw)

    async def page(self, path: str, expect: int = 200) -> Node:
        response = await self.http.get(path)
        assert response.status_code == expect, describe(response)
        doc = parse_html(response.text)
        meta = doc.find("meta", name="csrf-token")
        if meta is not None and meta.attrs.get("content"):
            self.csrf = meta.attrs["content"]
        return doc

    async def form_fields(self, path: str) -> dict[str, str]:
        """The hidden fields (csrf_token, next, ...) of the page's form, as a browser sends them."""
        doc = await self.page(path)
        for form in doc.find_all("form"):
            hidden = {
                i.attrs["name"]: i.attrs.get("value", "")
                for i in form.find_all("input", type="hidden")
                if i.attrs.get("name")
            }
            if "csrf_token" in hidden:
                assert hidden["csrf_token"], f"{path}: empty csrf_token field"
                return hidden
        raise AssertionError(f"{path} has no form with a csrf_token field")

    async def form_csrf(self, path: str) -> str:
        return (await self.form_fields(path))["csrf_token"]

    async def meta_csrf(self, path: str = "/rooms") -> str:
        doc = await self.page(path)
        meta = doc.find("meta", name="csrf-token")
        assert meta is not None and meta.attrs.get("content"), f"{path} has no csrf-token meta"
        return meta.attrs["content"]

    async def _follow(self, response: httpx.Response) -> None:
        """Follow a 303 like a browser and pick up the new page's CSRF token."""
        location = response.headers.get("location")
        assert location, describe(response)
        await self.page(location)

    async def register(
        self,
        email: str | None = None,
        name: str | None = None,
        password: str = PASSWORD,
        expect: int | None = 303,
    ) -> httpx.Response:
        email = email or self.settings.unique_email()
        name = name or unique_name()
        data = await self.form_fields("/register")
        data.update(email=email, display_name=name, password=password)
        response = await self.http.post("/register", data=data)
        if expect is not None:
            assert response.status_code == expect, describe(response)
        if response.status_code == 303:
            self.email, self.name, self.password = email, name, password
            await self._follow(response)
        return response

    async def login(
        self,
        email: str | None = None,
        password: str | None = None,
        expect: int | None = 303,
        next_: str | None = None,
    ) -> httpx.Response:
        email = email or self.email
        password = password or self.password
        assert email and password, "login needs an account: register first"
        data = await self.form_fields("/login")
        data.update(email=email, password=password)
        if next_ is not None:
            data["next"] = next_
        response = await self.http.post("/login", data=data)
        if expect is not None:
            assert response.status_code == expect, describe(response)
        if response.status_code == 303:
            self.email, self.password = email, password
            await self._follow(response)
        return response

    async def logout(self) -> httpx.Response:
        csrf = await self.meta_csrf("/rooms")
        response = await self.http.post("/logout", data={"csrf_token": csrf})
        assert response.status_code == 303, describe(response)
        assert path_of(response.headers.get("location")) == "/login", describe(response)
        return response

    async def create_room(
        self, name: str | None = None, title: str | None = None, expect: int | None = 303
    ) -> tuple[str, httpx.Response]:
        name = name if name is not None else unique_room()
        title = title if title is not None else f"Room {name}"
        csrf = await self.meta_csrf("/rooms")
        response = await self.http.post(
            "/rooms", data={"name": name, "title": title, "csrf_token": csrf}
        )
        if expect is not None:
            assert response.status_code == expect, describe(response)
        if response.status_code == 303:
            assert path_of(response.headers.get("location")) == f"/rooms/{name}", describe(response)
        return name, response

    async def delete_room(self, name: str, expect: int | None = 303) -> httpx.Response:
        csrf = await self.meta_csrf("/rooms")
        response = await self.http.post(f"/rooms/{name}/delete", data={"csrf_token": csrf})
        if expect is not None:
            assert response.status_code == expect, describe(response)
        return response

    async def api_rooms(self, max_pages: int = 50) -> list[Json]:
        """Every room, following the API's Link rel="next" pages (at most max_pages)."""
        rooms: list[Json] = []
        path: str | None = "/api/rooms?limit=100"
        for _ in range(max_pages):
            if path is None:
                break
            response = await self.http.get(path)
            assert response.status_code == 200, describe(response)
            page = response.json()
            assert isinstance(page, list), describe(response)
            rooms.extend(page)
            path = follow_links(response).get("next")
        return rooms

    async def room_names(self) -> set[str]:
        return {room["name"] for room in await self.api_rooms()}

    async def token_response(self, room: str, csrf: str | None = None) -> httpx.Response:
        headers: dict[str, str] = {}
        csrf = csrf if csrf is not None else self.csrf
        if csrf:
            headers["X-CSRF-Token"] = csrf
        return await self.http.post(f"/api/rooms/{room}/token", headers=headers)

    async def token(self, room: str) -> Json:
        if self.csrf is None:
            await self.meta_csrf("/rooms")
        response = await self.token_response(room)
        assert response.status_code == 200, describe(response)
        body: Json = response.json()
        assert isinstance(body.get("token"), str) and body["token"], body
        sensitive(body["token"])
        return body


# ---------------------------------------------------------------- WebSocket


class Peer:
    """A WebSocket client of the chat service; every wait is bounded."""

    def __init__(self, ws: ClientConnection, label: str) -> None:
        self.ws = ws
        self.label = label
        self.raw: list[str] = []
        self.welcome: Json = {}  # the server's first frame, once read

    @property
    def me(self) -> Json:
        assert self.welcome, f"{self.label}: no welcome frame yet"
        you: Json = self.welcome["you"]
        return you

    async def recv(self, timeout: float = WAIT) -> Json:
        try:
            async with asyncio.timeout(timeout):
                raw = await self.ws.recv()
        except TimeoutError:
            raise AssertionError(f"{self.label}: no frame within {timeout}s") from None
        assert isinstance(raw, str), f"{self.label}: server sent a binary frame"
        self.raw.append(raw)
        frame: Json = json.loads(raw)
        assert isinstance(frame, dict), f"{self.label}: frame is not a JSON object: {raw[:200]}"
        return frame

    async def recv_until(
        self, predicate: Callable[[Json], bool], timeout: float = WAIT
    ) -> tuple[Json, list[Json]]:
        """Read until a frame matches; return it and the frames skipped on the way."""
        skipped: list[Json] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self.recv(timeout=timeout)
                    if predicate(frame):
                        return frame, skipped
                    skipped.append(frame)
        except TimeoutError:
            raise AssertionError(
                f"{self.label}: expected frame not seen within {timeout}s; got {skipped}"
            ) from None

    async def send_json(self, obj: Any) -> None:
        async with asyncio.timeout(WAIT):
            await self.ws.send(json.dumps(obj))

    async def send_raw(self, data: str | bytes) -> None:
        async with asyncio.timeout(WAIT):
            await self.ws.send(data)

    async def say(self, text: str, client_id: str | None = None) -> str:
        client_id = client_id or uuid.uuid4().hex
        sensitive(text)
        await self.send_json({"type": "message", "text": text, "client_id": client_id})
        return client_id

    async def close(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.ws.close()


_UNSET: Any = object()


async def ws_connect(
    settings: Settings,
    token: str | None,
    path: str,
    *,
    mode: str = "subprotocol",
    origin: str | None = _UNSET,
    **kwargs: Any,
) -> ClientConnection:
    """Open a WebSocket through nginx; `mode` is how the token travels."""
    headers = dict(kwargs.pop("additional_headers", {}) or {})
    subprotocols = kwargs.pop("subprotocols", None)
    if token is not None:
        if mode == "subprotocol":
            subprotocols = ["parley.v1", f"bearer.{token}"]
        elif mode == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        else:
            raise ValueError(mode)
    if origin is _UNSET:
        origin = settings.origin if mode == "subprotocol" else None
    async with asyncio.timeout(WAIT):
        return await connect(
            settings.ws_base_url + path,
            origin=Origin(origin) if origin is not None else None,
            subprotocols=subprotocols,
            additional_headers=headers or None,
            proxy=None,
            open_timeout=WAIT,
            close_timeout=2,
            **kwargs,
        )


class MakeClient(Protocol):
    """The make_client fixture: a new anonymous client, closed after the test."""

    async def __call__(self) -> Client: ...


class MakeUser(Protocol):
    """The make_user fixture: a new registered, logged-in client."""

    async def __call__(self, name: str | None = None) -> Client: ...


class Join(Protocol):
    """The join fixture: a client's peer in a room's chat, past its welcome frame."""

    async def __call__(self, client: Client, room: str, *, mode: str = "subprotocol") -> Peer: ...


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------- raw upgrades (hostile tests)


def ws_address(settings: Settings) -> tuple[str, int]:
    """nginx's host and port, from WS_BASE_URL."""
    parts = urlsplit(settings.ws_base_url)
    return parts.hostname or "nginx", parts.port or 80


async def raw_upgrade(
    settings: Settings, path: str, headers: list[tuple[str, str]], host: str | None = None
) -> tuple[int, bytes]:
    """Sends an upgrade request with exactly these extra header lines (UTF-8, repeats kept,
    nothing tidied up) and returns the status and the response head."""
    address = ws_address(settings)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host or urlsplit(settings.ws_base_url).netloc}",
             "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers]
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
    return int(head.split(b" ", 2)[1]), head


# ---------------------------------------------------------------- revocation


REVOKED_WITHIN_S = 5.0  # docs/design.md §4: revocations close sockets within this
SESSION_ENDED = 4401


async def closed_with(peer: Peer, timeout: float = REVOKED_WITHIN_S) -> int | None:
    """The close code the server sent within `timeout` (frames before it are skipped)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await peer.ws.recv()
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code
    except TimeoutError:
        raise AssertionError(f"{peer.label}: still open after {timeout} s") from None


async def still_open(peer: Peer, speaker: Peer) -> None:
    """`peer` still hears what `speaker` says."""
    client_id = await speaker.say(f"still here {uuid.uuid4().hex[:8]}")
    frame, _ = await peer.recv_until(lambda f: f.get("client_id") == client_id)
    assert frame["type"] == "message", frame


# ---------------------------------------------------------------- the operator


OPERATOR_WAIT_S = 180.0  # for the runner beside the suite to carry out one action


def _ask(settings: Settings, action: str) -> Path:
    done = settings.artifacts_dir / "operator-done.txt"
    done.unlink(missing_ok=True)
    (settings.artifacts_dir / "operator-request.txt").write_text(action)
    return done


def _answer(done: Path) -> str | None:
    text = done.read_text().strip() if done.exists() else ""
    return text or None


async def operator(settings: Settings, action: str) -> str:
    """Ask the runner beside the suite (ops/checks/chaos, with Docker at hand) to do `action`
    to the stack; returns what it reports (e.g. how long a stop took) once it is done."""
    done = _ask(settings, action)
    deadline = time.monotonic() + OPERATOR_WAIT_S
    while (answer := _answer(done)) is None:
        assert time.monotonic() < deadline, f"the operator never did {action!r}"
        await asyncio.sleep(0.2)
    status, _, detail = answer.partition(" ")
    assert status == "0", f"the operator failed to {action}: {detail}"
    return detail
