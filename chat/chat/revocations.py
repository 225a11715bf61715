"""Revocation memory: after a user_revoked notice, older tokens of that user (or of that
session, when the notice named a `sid`) are refused before the upgrade (401 revoked_token),
for as long as such a token could still be valid."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from .auth import Identity

Key = tuple[str, str | None]  # (user id, sid or None for all the user's sessions)


class Revocations:
    def __init__(self, memory_s: float, clock: Callable[[], float] = time.time) -> None:
        # Wall-clock time: compared with the tokens' `iat`, which the website stamps.
        self._memory_s = memory_s
        self._clock = clock
        self._at: OrderedDict[Key, float] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        self._forget_old()
        return len(self._at)

    def revoke(self, user_id: str, sid: str | None = None) -> None:
        key = (user_id, sid)
        self._at[key] = self._clock()
        self._at.move_to_end(key)
        self._forget_old()

    def refuses(self, identity: Identity) -> bool:
        """True if the token was issued at or before a revocation that covers it."""
        self._forget_old()
        keys: list[Key] = [(identity.user_id, None)]
        if identity.sid is not None:
            keys.append((identity.user_id, identity.sid))
        return any(
            (at := self._at.get(key)) is not None and identity.issued_at <= at for key in keys
        )

    def _forget_old(self) -> None:
        horizon = self._clock() - self._memory_s
        while self._at:
            key, at = next(iter(self._at.items()))
            if at > horizon:
                return
            del self._at[key]
