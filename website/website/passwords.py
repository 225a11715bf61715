"""Password hashing with argon2id (pwdlib's recommended parameters), off the event loop.

argon2 costs tens of milliseconds of CPU per call by design; run on the event loop it stalls
every other request. Hashes run in worker threads (argon2-cffi releases the GIL), at most
`concurrency` at once and `queue` more waiting; beyond that a request is refused at once
(HasherBusy: 503) instead of piling up.
"""

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from pwdlib import PasswordHash

from website.metrics import HASH_BUSY

T = TypeVar("T")


class HasherBusy(Exception):
    """Every hashing slot and queue place is taken."""


class Hasher:
    def __init__(self, concurrency: int, queue: int) -> None:
        self._hasher = PasswordHash.recommended()
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._bound = concurrency + queue
        self._pending = 0
        # Verified against when the email is unknown, so a miss costs as much time as a hit.
        self._dummy_hash = self._hasher.hash("parley-timing-equaliser")

    @property
    def pending(self) -> int:
        return self._pending

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Return (valid, new_hash); new_hash is set when the stored hash needs an upgrade."""
        if password_hash is None:
            await self._run(self._hasher.verify, password, self._dummy_hash)
            return False, None
        return await self._run(self._hasher.verify_and_update, password, password_hash)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._pending >= self._bound:
            HASH_BUSY.inc()
            raise HasherBusy
        self._pending += 1
        try:
            # Not cancellable once started: the thread runs on, and so must our count.
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self._pending -= 1
