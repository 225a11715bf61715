"""A join storm in one process: one chat replica on a throwaway redis-server, one early member,
then N joiners (at most CONC handshakes at a time) into one room, every socket reading and
counting its frames. Prints how long until all were welcomed, how many frames the early member
and all sockets got, and `chat_presence_frames_total`. Not a benchmark: a before/after look at
presence coalescing (docs/design.md §5, "Presence frames"); client and server share one core.

Usage (in the chat test image, which has the chat, its test helpers and redis-server):
    docker run --rm --network none --read-only --tmpfs /tmp \\
        -v "$PWD/ops/bench/join_storm.py:/bench.py:ro" <project>-chat-tests \\
        python /bench.py [N=1000] [CONC=50]
Bounded: N at most 5000; wrap it in `flock /work/heavy.lock timeout 60 …` on a shared machine.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import structlog
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, "/app")
from chat import wire  # noqa: E402
from chat.config import Settings  # noqa: E402
from chat.server import build_servers  # noqa: E402
from tests.conftest import _JWKSHandler, _JWKSServer  # noqa: E402
from tests.helpers import FakeWebsite, until  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

ROOM = "storm"


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def storm(n: int, conc: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    httpd = _JWKSServer(("127.0.0.1", 0), _JWKSHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    website = FakeWebsite(port=httpd.server_address[1])
    website.rotate()
    httpd.fake = website
    redis = RedisServer(Path(tempfile.mkdtemp()))
    redis.start()
    try:
        settings = Settings(host="127.0.0.1", port=0, jwks_url=website.jwks_url,
                            node_id="bench", **redis.settings())  # fmt: skip
        async with build_servers(settings) as servers:
            await until(lambda: servers.bus.up, "the bus to be up")
            port = servers.chat.sockets[0].getsockname()[1]
            counts: list[int] = []
            sockets: list[ClientConnection] = []
            readers: list[asyncio.Task[None]] = []

            async def read(ws: ClientConnection, index: int) -> None:
                async for _ in ws:
                    counts[index] += 1

            async def member(i: int) -> None:
                token = website.mint(ROOM, f"u{i}", f"User {i}")
                ws = await connect(f"ws://127.0.0.1:{port}{wire.WS_PATH_PREFIX}{ROOM}",
                                   proxy=None, open_timeout=30,
                                   subprotocols=[wire.SUBPROTOCOL, wire.BEARER_PREFIX + token])  # fmt: skip
                await ws.recv()  # welcome
                sockets.append(ws)
                counts.append(0)
                readers.append(asyncio.create_task(read(ws, len(counts) - 1)))

            await member(-1)
            before = metric("chat_presence_frames_total")
            gate = asyncio.Semaphore(conc)

            async def joiner(i: int) -> None:
                async with gate:
                    await member(i)

            started = time.perf_counter()
            await asyncio.gather(*(joiner(i) for i in range(n)))
            welcomed = time.perf_counter() - started
            last, quiet = -1, 0
            while quiet < 5:  # no frame for 0.5 s
                await asyncio.sleep(0.1)
                total = sum(counts)
                quiet, last = (quiet + 1 if total == last else 0), total
            print(f"{n} joiners ({conc} handshakes at a time): all welcomed in {welcomed:.2f} s;"
                  f" the early member got {counts[0]} frames, all sockets {sum(counts)};"
                  f" chat_presence_frames_total +{metric('chat_presence_frames_total') - before:.0f}")  # fmt: skip
            for ws in sockets:
                await ws.close()
            for task in readers:
                task.cancel()
    finally:
        redis.stop()


if __name__ == "__main__":
    n = min(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, 5000)
    conc = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    asyncio.run(storm(n, conc))
