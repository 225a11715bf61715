"""Per-key attempt throttles (failed logins, registrations), in memory and bounded.

One website replica keeps its own counters (docs/design.md §3 says why that is enough); each
throttle remembers at most `max_keys` keys, each with at most `limit` timestamps.
"""

import hashlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class Throttle:
    """At most `limit` attempts per key within any `window_s` seconds (a sliding log)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._log: OrderedDict[bytes, deque[float]] = OrderedDict()

    @staticmethod
    def _key(raw: str) -> bytes:
        # A digest: fixed size whatever the input, and no email addresses kept in memory.
        return hashlib.sha256(raw.encode("utf-8", "replace")).digest()[:16]

    def _recent(self, key: bytes, now: float) -> deque[float]:
        log = self._log.get(key)
        if log is None:
            return deque(maxlen=self.limit)
        while log and log[0] <= now - self.window_s:
            log.popleft()
        return log

    def attempt(self, raw_key: str) -> int | None:
        """Count an attempt; or, if the key is over its limit, the seconds until it is not."""
        key, now = self._key(raw_key), self._clock()
        log = self._recent(key, now)
        if len(log) >= self.limit:
            return max(1, math.ceil(log[0] + self.window_s - now))
        log.append(now)
        self._log[key] = log
        self._log.move_to_end(key)
        while len(self._log) > self._max_keys:
            self._log.popitem(last=False)  # the least recently seen key
        return None

    def undo(self, raw_key: str) -> None:
        """Take back the last attempt (it never reached the check it was counted for)."""
        log = self._log.get(self._key(raw_key))
        if log:
            log.pop()

    def clear(self, raw_key: str) -> None:
        """Forget the key (a successful login clears its failures)."""
        self._log.pop(self._key(raw_key), None)

    def __len__(self) -> int:
        return len(self._log)
