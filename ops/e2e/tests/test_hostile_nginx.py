"""nginx's own bounds (docs/design.md, "Limits at nginx"): oversized requests, slow clients, and
per-address budgets for logins, registrations and WebSockets. Each refusal is a clear status
with a page of its own, and each budget holds and is released.

The test stack runs nginx with the NGINX_* values of ops/compose.test.yml; this container gets
the same values, so the tests know the budgets they are proving."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from support import MakeUser, Settings, ws_connect

WS_CONN_PER_IP = int(os.environ.get("NGINX_WS_CONN_PER_IP", "100"))
WS_BURST = int(os.environ.get("NGINX_WS_BURST", "50"))
AUTH_BURST = int(os.environ.get("NGINX_AUTH_BURST", "10"))


def per_second(rate: str) -> float:
    count, unit = rate.removesuffix("r/s").removesuffix("r/m"), rate[-1]
    return float(count) / (60 if unit == "m" else 1)


WS_RATE = per_second(os.environ.get("NGINX_WS_RATE", "10r/s"))
AUTH_RATE = per_second(os.environ.get("NGINX_AUTH_RATE", "30r/m"))
HEADER_TIMEOUT_S = 10  # nginx.conf: client_header_timeout


@dataclass
class Answer:
    status: int | None  # None: the connection closed without a response
    head: str
    body: str
    seconds: float

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


async def raw(settings: Settings, request: bytes, timeout: float = 5.0) -> Answer:
    """Send bytes exactly as given; read until the server closes (HTTP clients would refuse
    to send most of these requests)."""
    parts = urlsplit(settings.base_url)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    status = int(head.split()[1]) if head.startswith("HTTP/") else None
    return Answer(status, head, body, time.monotonic() - started)


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: nginx", "Connection: close", *headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_nginx_page(answer: Answer, status: int, words: str, retry_after: bool) -> None:
    assert answer.status == status, answer.head
    assert words in answer.body, answer.body[:300]
    assert "text/html" in str(answer.header("Content-Type")), answer.head
    csp = answer.header("Content-Security-Policy") or ""
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, answer.head
    assert answer.header("X-Content-Type-Options") == "nosniff", answer.head
    assert (answer.header("Retry-After") is not None) == retry_after, answer.head


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(["Cookie: big=" + "x" * 9000], id="one-9KiB-cookie"),
        pytest.param([f"X-Filler-{i}: " + "y" * 7000 for i in range(6)], id="six-7KiB-headers"),
        pytest.param(["User-Agent: " + "z" * 9000], id="one-9KiB-header"),
    ],
)
async def test_oversized_headers_get_431_with_a_page(
    settings: Settings, headers: list[str]
) -> None:
    answer = await raw(settings, request("GET", "/", *headers))
    assert_nginx_page(answer, 431, "cookies were too large", retry_after=False)


async def test_an_oversized_request_line_gets_414(settings: Settings) -> None:
    # nginx answers before it has read the whole line and then closes; the kernel may turn
    # that close into a reset that overtakes the answer, so a reset is tried again (bounded).
    for _ in range(5):
        with contextlib.suppress(ConnectionResetError):
            answer = await raw(settings, request("GET", "/" + "a" * 9000))
            break
    else:
        pytest.fail("every attempt was reset before nginx's answer arrived")
    assert answer.status == 414, answer.head


@pytest.mark.parametrize("path", ["/login", "/register", "/api/rooms/some-room/token", "/rooms"])
async def test_bodies_over_64KiB_get_413_with_a_page(settings: Settings, path: str) -> None:
    form = "Content-Type: application/x-www-form-urlencoded"
    answer = await raw(settings, request("POST", path, form, body=b"a=" + b"x" * 65 * 1024))
    assert_nginx_page(answer, 413, "larger than Parley accepts", retry_after=False)


async def test_a_body_just_under_64KiB_reaches_the_website(settings: Settings) -> None:
    form = "Content-Type: application/x-www-form-urlencoded"
    answer = await raw(settings, request("POST", "/rooms", form, body=b"a=" + b"x" * 60 * 1024))
    # The website answers (no session: a redirect to the login page), not nginx's 413.
    assert answer.status == 303, answer.head


async def test_a_client_that_never_finishes_its_headers_is_cut(settings: Settings) -> None:
    started = b"GET / HTTP/1.1\r\nHost: nginx\r\n"  # and then nothing
    answer = await raw(settings, started, timeout=HEADER_TIMEOUT_S + 5)
    # nginx sends no response on a read timeout; it closes and logs 408.
    assert answer.status is None and answer.head == "", answer.head
    assert HEADER_TIMEOUT_S - 1 <= answer.seconds <= HEADER_TIMEOUT_S + 3, answer.seconds


# ---------------------------------------------------------------- pages


async def test_unknown_websocket_paths_get_nginx_404_page(settings: Settings) -> None:
    answer = await raw(settings, request("GET", "/ws/nope"))
    assert_nginx_page(answer, 404, "nothing at this address", retry_after=False)


async def test_the_error_pages_stylesheet_is_served(settings: Settings) -> None:
    answer = await raw(settings, request("GET", "/_parley/errors.css"))
    assert answer.status == 200 and "text/css" in str(answer.header("Content-Type")), answer.head
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert "--accent" in answer.body


async def test_the_error_pages_themselves_are_not_reachable(settings: Settings) -> None:
    answer = await raw(settings, request("GET", "/_errors/too-many.html"))
    assert answer.status == 404, answer.head


# ---------------------------------------------------------------- per-address budgets


async def flood[T](count: int, send: Callable[[], Awaitable[T]]) -> list[T]:
    """`count` requests at once; their answers."""
    return list(await asyncio.gather(*(send() for _ in range(count))))


@pytest.mark.parametrize("path", ["/login", "/register"])
async def test_login_and_registration_posts_are_limited_per_address(
    settings: Settings, path: str
) -> None:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=settings.base_url, limits=limits, timeout=10) as http:
        # Without a CSRF token the website refuses at once (403): no password hashing.
        answers = await flood(AUTH_BURST + 60, lambda: http.post(path, data={"email": "x"}))
        statuses = [answer.status_code for answer in answers]
        limited = [answer for answer in answers if answer.status_code == 429]
        assert len(limited) >= 30, f"{len(limited)} of {len(answers)} limited: {set(statuses)}"
        assert set(statuses) <= {403, 429}, sorted(set(statuses))
        assert all(answer.headers.get("retry-after") == "5" for answer in limited)
        assert all("Too many requests" in answer.text for answer in limited)
        # Reading the form is never limited.
        assert (await http.get(path)).status_code == 200
        # Released: once the budget has refilled, POSTs reach the website again.
        await asyncio.sleep(AUTH_BURST / AUTH_RATE + 1)
        assert await post_status(http, path) == 403


async def post_status(http: httpx.AsyncClient, path: str) -> int:
    return (await http.post(path, data={"email": "nobody@example.com"})).status_code


async def test_websocket_handshakes_are_limited_per_address(settings: Settings) -> None:
    async def handshake() -> int:
        try:
            ws = await ws_connect(settings, None, "/ws/rooms/no-token-here", mode="subprotocol")
        except InvalidStatus as exc:
            return exc.response.status_code
        await ws.close()
        return 101

    statuses = await flood(WS_BURST + 60, handshake)
    assert statuses.count(429) >= 30, sorted(set(statuses))
    assert set(statuses) <= {401, 429}, sorted(set(statuses))  # no token: the chat says 401
    await asyncio.sleep(WS_BURST / WS_RATE + 1)
    assert await handshake() == 401  # released: the chat answers again


async def test_open_websockets_are_capped_per_address(
    settings: Settings, make_user: MakeUser, room: str
) -> None:
    per_user = 15  # under the chat's own per-user cap
    users = [await make_user() for _ in range(WS_CONN_PER_IP // per_user + 1)]
    tokens = [(await user.token(room))["token"] for user in users]
    sockets: list[ClientConnection] = []
    refused: InvalidStatus | None = None
    try:
        for i in range(WS_CONN_PER_IP + 5):
            try:
                sockets.append(
                    await ws_connect(settings, tokens[i // per_user], f"/ws/rooms/{room}")
                )
            except InvalidStatus as exc:
                refused = exc
                break
            if i % 20 == 19:
                await asyncio.sleep(0.5)  # stay within the handshake rate
        assert refused is not None, f"{len(sockets)} sockets open, none refused"
        assert refused.response.status_code == 429
        assert len(sockets) <= WS_CONN_PER_IP, len(sockets)
        # Released: one socket closes, a new one is let in.
        await sockets.pop().close()
        await asyncio.sleep(0.5)
        sockets.append(await ws_connect(settings, tokens[0], f"/ws/rooms/{room}"))
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await ws.close()
