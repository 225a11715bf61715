"""The bus: this replica's link to Redis (pub/sub and a few commands), kept up by itself.

One supervisor task owns the link. Each session opens a fresh client and a fresh pub/sub
connection (redis-py's own retries are off: half-reconnected pub/sub connections are what we
avoid), subscribes to every channel wanted at that moment, and is "up" once Redis confirmed
them all. The session then runs three tasks: the reader (hands each message to `on_message`),
the writer (publishes and presence writes, in order, pipelined on a connection of its own) and
a pinger (a dead or unreachable Redis ends the session within about BUS_TIMEOUT_S + 1 s).
Any failure ends the session: the bus is down (chat_bus_up 0, one warning, /readyz 503),
writes are dropped, and the supervisor reconnects with capped, jittered backoff and
subscribes again, by itself.

Local members never wait for any of this: the handler writes to them first, and only queues
the publication here (docs/design.md §5, "Bus")."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.typing import EncodableT

from . import metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")
Command = tuple[EncodableT, ...]  # one Redis command as its words: ("PUBLISH", channel, data)
Queued = tuple[bool, Command]  # (is a publication, the command)
QUEUE_BOUND = 10_000  # writes waiting for Redis; beyond it they are dropped (and counted)
BATCH = 256  # writes per round trip
# Connections per session, the pub/sub one included: the reader and the writer hold one each,
# the pinger, the presence reads and the sweep each use one at a time. redis-py's default pool
# has no bound (a connect storm into 500 new rooms opened 98); at the bound a command waits
# for a free connection (at most the bus timeout).
CONNECTIONS = 8
PING_S = 1.0
FIRST_BACKOFF_S = 0.1
DRAIN_S = 1.0  # at shutdown, how long queued writes (the last leaves) may take


class BusDown(Exception):
    """The bus is not connected: the caller carries on with what this replica knows."""


class Bus:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        password: str,
        node: str,
        timeout_s: float,
        backoff_max_s: float,
        on_message: Callable[[str, bytes], None],
    ) -> None:
        self.node = node
        self._host, self._port, self._password = host, port, password
        self._timeout = timeout_s
        self._backoff_max = backoff_max_s
        self._on_message = on_message
        self._wanted: set[str] = set()  # channels to be subscribed, connected or not
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._writes: asyncio.Queue[Queued] = asyncio.Queue(QUEUE_BOUND)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._on_up: list[Callable[[], None]] = []
        self._last_read = 0.0
        self._down_said = False  # one warning per outage, the first failed start included
        self.up = False
        self.up_since = 0.0  # monotonic; when the current session came up
        metrics.BUS_UP.set(0)

    # --- for the rest of the chat ------------------------------------------------------------

    def on_up(self, callback: Callable[[], None]) -> None:
        """Called each time a session comes up (the first time and after each outage)."""
        self._on_up.append(callback)

    def up_for(self) -> float:
        """Seconds the current session has been up (0 while down)."""
        return time.monotonic() - self.up_since if self.up else 0.0

    def write(self, command: Command, *, publication: bool = False) -> None:
        """Queues a write (a publication, a presence entry); dropped while the bus is down.
        Never waits: writes leave in the order they were queued, on one connection."""
        if not self.up:
            metrics.BUS_DROPPED.inc()
            return
        try:
            self._writes.put_nowait((publication, command))
        except asyncio.QueueFull:
            metrics.BUS_DROPPED.inc()

    def publish(self, channel: str, data: bytes) -> None:
        self.write(("PUBLISH", channel, data), publication=True)

    async def call(self, command: Callable[[Redis], Awaitable[T]]) -> T:
        """A command on this session's client; BusDown while there is none."""
        client = self._client
        if client is None or not self.up:
            raise BusDown
        return await command(client)

    async def subscribe(self, channel: str) -> None:
        """Wanted from now on (again after every reconnection). Returns once Redis confirmed
        it, or at once while the bus is down; callers bound the wait."""
        self._wanted.add(channel)
        pubsub = self._pubsub
        if pubsub is None:  # no session: the next one subscribes to everything wanted
            return
        confirmed = self._confirmed.get(channel)
        if confirmed is None or confirmed.done():  # else one is on its way: share it
            confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
        try:
            await pubsub.subscribe(channel)
            await confirmed
        except Exception as exc:  # the session is failing; the reconnection subscribes again
            log.debug("bus subscribe failed", error=type(exc).__name__)

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._confirmed.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None:
            task = asyncio.create_task(self._quietly(pubsub.unsubscribe(channel)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Bus]:
        # Every session subscribes to what is wanted, and SUBSCRIBE needs a channel: without
        # one each session would be refused and the bus would reconnect forever.
        if not self._wanted:
            raise ValueError("subscribe() to a channel before the bus runs")
        supervisor = asyncio.create_task(self._supervise(), name="bus")
        try:
            yield self
        finally:
            # The last writes (leaves at shutdown) get a moment to leave.
            if self.up:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_S):
                        await self._writes.join()
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            self._set_down(None)

    # --- the session -------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = FIRST_BACKOFF_S
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                was_up = self.up
                self._set_down(exc)
                if was_up:
                    delay = FIRST_BACKOFF_S
            # Jittered, so replicas cut off together do not all come back at the same instant.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff_max)

    async def _session(self) -> None:
        client = Redis.from_pool(  # closing the client closes its pool
            BlockingConnectionPool(
                max_connections=CONNECTIONS,
                timeout=self._timeout,
                host=self._host,
                port=self._port,
                password=self._password,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),  # failures end the session; the supervisor retries
                client_name=f"chat-{self.node}",
            )
        )
        pubsub = client.pubsub()
        try:
            await client.ping()
            # From here on subscribe() sends its own SUBSCRIBE too, so a channel wanted while
            # this session starts is never missed (no await between these three lines).
            self._pubsub = pubsub
            channels = sorted(self._wanted)
            loop = asyncio.get_running_loop()
            self._confirmed = {ch: loop.create_future() for ch in channels}
            initial = list(self._confirmed.values())
            await pubsub.subscribe(*channels)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(pubsub))
                async with asyncio.timeout(self._timeout):
                    await asyncio.gather(*initial)
                self._client = client
                self._set_up()
                group.create_task(self._write_loop(client))
                group.create_task(self._ping(client, pubsub))
        finally:
            self._client = self._pubsub = None
            for future in self._confirmed.values():
                if not future.done():  # a subscriber waiting: let it go on without the bus
                    future.set_result(None)
            self._confirmed = {}
            await self._quietly(pubsub.aclose())  # type: ignore[no-untyped-call]
            await self._quietly(client.aclose())

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            self._last_read = time.monotonic()
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if kind == "message":
                try:
                    self._on_message(channel, message["data"])
                except Exception:  # one bad message must not end the session
                    log.exception("bus message not handled", channel=channel)
            elif kind == "subscribe":
                future = self._confirmed.get(channel)
                if future is not None and not future.done():
                    future.set_result(None)

    async def _write_loop(self, client: Redis) -> None:
        # The writer's connection is taken once per session: redis-py's pipeline takes one
        # from the pool and gives it back on every execute(), and that cost more CPU than a
        # lone publication's own round trip
        # (docs/design.md §11, "The bus's writes keep one connection").
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            while True:
                batch = [await self._writes.get()]
                # One loop turn first, so that the writes of whatever else is ready (a storm's
                # joins) share this round trip rather than each take the next.
                await asyncio.sleep(0)
                while len(batch) < BATCH and not self._writes.empty():
                    batch.append(self._writes.get_nowait())
                try:
                    replies = await round_trip(conn, [command for _, command in batch])
                except Exception:
                    metrics.BUS_DROPPED.inc(len(batch))
                    raise
                finally:
                    for _ in batch:
                        self._writes.task_done()
                published = 0
                for (publication, _), reply in zip(batch, replies, strict=True):
                    if isinstance(reply, ResponseError):  # OOM under maxmemory: said, not fatal
                        log.warning("bus write refused", error=str(reply)[:200])
                        metrics.BUS_DROPPED.inc()
                    elif publication:
                        published += 1
                metrics.BUS_PUBLISHED.inc(published)
        finally:
            with contextlib.suppress(Exception):  # a broken link: the client's close ends it
                await pool.release(conn)

    async def _ping(self, client: Redis, pubsub: PubSub) -> None:
        """Ends the session when Redis stops answering: a command ping on the client, and one
        on the pub/sub connection, whose pong the reader must see."""
        while True:
            await asyncio.sleep(PING_S)
            await client.ping()
            await pubsub.ping()
            if time.monotonic() - self._last_read > 2 * PING_S + self._timeout:
                raise ConnectionError("pub/sub connection silent")

    def _set_up(self) -> None:
        self.up, self.up_since = True, time.monotonic()
        self._down_said = False
        self._last_read = self.up_since
        metrics.BUS_UP.set(1)
        metrics.BUS_CONNECTS.inc()
        log.info("bus up", node=self.node, channels=len(self._wanted))
        for callback in self._on_up:
            try:
                callback()
            except Exception:
                log.exception("bus up callback failed")

    def _set_down(self, exc: BaseException | None) -> None:
        # Queued writes would be stale by the time the bus is back: drop them.
        dropped = 0
        while not self._writes.empty():
            self._writes.get_nowait()
            self._writes.task_done()
            dropped += 1
        metrics.BUS_DROPPED.inc(dropped)
        self.up = False
        metrics.BUS_UP.set(0)
        if exc is None:
            return
        cause = _leaf(exc)
        if self._down_said:
            log.debug("bus still down", error=type(cause).__name__)
            return
        self._down_said = True
        log.warning("bus down", error=type(cause).__name__, detail=str(cause)[:200],
                    dropped_writes=dropped)  # fmt: skip

    @staticmethod
    async def _quietly(awaitable: Awaitable[Any]) -> None:
        with contextlib.suppress(Exception):
            await awaitable


async def round_trip(conn: AbstractConnection, commands: list[Command]) -> list[Any]:
    """Sends the commands in one write and reads their replies in order, as a pipeline without
    a transaction does; a command Redis refused has its ResponseError for a reply. A broken or
    silent link (the connection's socket timeout) raises."""
    await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except ResponseError as refused:
            replies.append(refused)
    return replies


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside a TaskGroup's ExceptionGroup."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
