"""Public verification keys from the website's JWKS, cached in memory."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable

import structlog
from jwt import PyJWK, PyJWKSet, PyJWTError

from . import wire

log = structlog.get_logger(__name__)

MAX_JWKS_BYTES = 1 << 20


class KeysUnavailable(Exception):
    """No JWKS has ever been fetched, so no token can be verified."""


class KeyStore:
    """Ed25519 keys by `kid`: refetched when the TTL runs out or an unknown `kid` shows up,
    but never more than once per `min_refresh_s` while keys are cached, so junk `kid`s
    cannot make us hammer the website. A failed refresh keeps the keys we have."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 300.0,
        min_refresh_s: float = 10.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts, for tests and debugging
        # The JWKS is an internal URL: never route it through an environment proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def get(self, kid: str) -> PyJWK | None:
        """The key for `kid`, or None when the website does not publish it."""
        fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl_s
        if not fresh or kid not in self._keys:
            await self._refresh()
        if self._fetched_at is None:
            raise KeysUnavailable(self._url)
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        seen = self._attempted_at
        async with self._lock:
            if self._attempted_at != seen:
                return  # another handshake fetched while we waited: share its result
            now = self._clock()
            if self._keys and seen is not None and now - seen < self._min_refresh_s:
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                # urllib is blocking: keep it off the event loop.
                keys = await asyncio.to_thread(self._fetch)
            except (OSError, ValueError, PyJWTError) as exc:
                log.warning("jwks fetch failed", url=self._url, error=str(exc),
                            cached_keys=len(self._keys))  # fmt: skip
                return
            self._keys, self._fetched_at = keys, now
            log.info("jwks fetched", url=self._url, kids=sorted(keys))

    def _fetch(self) -> dict[str, PyJWK]:
        request = urllib.request.Request(self._url, headers={"Accept": "application/json"})
        with self._opener.open(request, timeout=self._timeout_s) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError("JWKS too large")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("JWKS is not a JSON object")
        keys = {
            key.key_id: key
            for key in PyJWKSet.from_dict(data).keys
            if key.key_id and key.algorithm_name == wire.TOKEN_ALGORITHM
        }
        if not keys:
            raise ValueError("JWKS has no EdDSA key with a kid")
        return keys
