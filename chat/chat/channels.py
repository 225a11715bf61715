"""The bus's names and envelopes (docs/design.md §5, "Bus"): Redis channels and keys, and the
one-line framing of what replicas publish to a room's channel."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .protocol import User

PREFIX = "parley:"
CONTROL = PREFIX + "control"  # the website's signed notices, read by every replica
_ROOM = PREFIX + "room:"  # + room: messages and presence changes between replicas
_PRESENCE = PREFIX + "presence:"  # + room: a hash of node:user_id -> display name, field TTLs

# Envelope kinds: a message frame, a user's first tab on a node, a user's last tab gone.
MESSAGE, JOIN, LEAVE, TYPING = "m", "j", "l", "t"
KINDS = (MESSAGE, JOIN, LEAVE, TYPING)


def room_channel(room: str) -> str:
    return _ROOM + room


def room_of(channel: str) -> str | None:
    return channel[len(_ROOM) :] if channel.startswith(_ROOM) else None


def presence_key(room: str) -> str:
    return _PRESENCE + room


def presence_field(node: str, user_id: str) -> str:
    # Neither a node id nor a user id holds ":" (their patterns), so the split is exact.
    return f"{node}:{user_id}"


def split_field(field: str) -> tuple[str, str] | None:
    node, sep, user_id = field.partition(":")
    return (node, user_id) if sep and node and user_id else None


@dataclass(frozen=True, slots=True)
class Envelope:
    node: str  # the publishing replica
    kind: str
    sent_at: float  # the publisher's wall clock (latency metric; replicas share a host's clock)
    payload: str  # MESSAGE: the server frame, encoded once; JOIN/LEAVE/TYPING: the user as JSON

    def encode(self) -> bytes:
        # Newline-separated: node ids and kinds hold none, and JSON escapes its own.
        return f"{self.node}\n{self.kind}\n{self.sent_at:.6f}\n{self.payload}".encode()

    @classmethod
    def decode(cls, data: bytes) -> Envelope | None:
        try:
            node, kind, sent_at, payload = data.decode().split("\n", 3)
            envelope = cls(node, kind, float(sent_at), payload)
        except ValueError:  # not ours, or not UTF-8
            return None
        return envelope if kind in KINDS and node else None

    def user(self) -> User | None:
        """The user of a JOIN, LEAVE or TYPING."""
        try:
            obj = json.loads(self.payload)
            return User(str(obj["id"]), str(obj["name"]))
        except (ValueError, KeyError, TypeError):
            return None
