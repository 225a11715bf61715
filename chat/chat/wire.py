"""The wire contract between website, browser and chat: values both services must agree on.

Stdlib only and importing nothing from this package: a cross-service test loads this file by
path and compares it with website/website/wire.py and docs/design.md §6. The names in the
first block are shared and fixed; the named members after it are the chat's own spelling of
the same values.
"""

from __future__ import annotations

# --- Shared with website/website/wire.py (same names, same values) --------------------------
ROOM_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$"
WS_PATH_PREFIX = "/ws/rooms/"
SUBPROTOCOL = "parley.v1"
BEARER_PREFIX = "bearer."  # browsers offer their token as the subprotocol `bearer.<jwt>`
TOKEN_ISSUER = "parley-website"
TOKEN_AUDIENCE = "parley-chat"
TOKEN_ALGORITHM = "EdDSA"
TOKEN_MAX_LIFETIME_S = 120
NOTICE_MAX_LIFETIME_S = 30
NOTICE_ROOM_DELETED = "room_deleted"
NOTICE_USER_REVOKED = "user_revoked"

FRAME_WELCOME = "welcome"
FRAME_MESSAGE = "message"
FRAME_PRESENCE = "presence"  # who joined and left, coalesced per tick (chat/presence_batch.py)
FRAME_ERROR = "error"
FRAME_TYPING = "typing"  # relayed to the others, never stored (chat/typing.py)
FRAME_TYPES = (FRAME_WELCOME, FRAME_MESSAGE, FRAME_PRESENCE, FRAME_ERROR, FRAME_TYPING)

ERROR_BAD_MESSAGE = "bad_message"
ERROR_TOO_LONG = "too_long"
ERROR_RATE_LIMITED = "rate_limited"
ERROR_CODES = (ERROR_BAD_MESSAGE, ERROR_TOO_LONG, ERROR_RATE_LIMITED)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_SESSION_ENDED = 4401
CLOSE_ROOM_DELETED = 4404
CLOSE_SLOW_CONSUMER = 4008  # fell behind: buffer over the bound, or no pong in time
CLOSE_TOO_MANY_CONNECTIONS = 4429  # the user already has MAX_CONNECTIONS_PER_USER sockets

MAX_FRAME_BYTES = 16384
MAX_TEXT_CHARS = 2000
MAX_CLIENT_ID_CHARS = 64

# --- The chat's own ---------------------------------------------------------------------------
# A notice's `sub`: the website speaking for itself, not for a user.
NOTICE_SUBJECT = TOKEN_ISSUER
# User ids are the website's UUIDs; anything id-like is accepted, nothing path-like.
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"  # 503 while this replica is cut off from the bus
# The `sid` claim (user tokens, user_revoked notices): an opaque handle of a website session.
SID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
