"""Per-connection flow control: a token bucket and a flood detector."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class FloodGuard:
    """Counts rejections in a sliding window; trips when `limit` fall within `window_s`."""

    __slots__ = ("_clock", "_hits", "_limit", "_window_s")

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        # Made at the first rejection: an empty deque costs ~0.7 KiB, and most connections
        # are never rate limited.
        self._hits: deque[float] | None = None

    def record(self) -> bool:
        now = self._clock()
        if self._hits is None:
            self._hits = deque(maxlen=self._limit)
        self._hits.append(now)
        return len(self._hits) == self._limit and now - self._hits[0] <= self._window_s
