"""The wire contract between the website, the chat and the browser: fixed names and values.

Stdlib only and importing nothing from this package: a test loads this file by path and
compares it with the chat's own copy (chat/chat/wire.py) and with docs/design.md.
"""

# Room names, in URLs, tokens and the database's CHECK constraint.
ROOM_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$"
WS_PATH_PREFIX = "/ws/rooms/"

# The browser offers both subprotocols; the token rides in the second, never in the URL.
SUBPROTOCOL = "parley.v1"
BEARER_PREFIX = "bearer."

# Chat tokens and the website's notices to the chat.
TOKEN_ISSUER = "parley-website"
TOKEN_AUDIENCE = "parley-chat"
TOKEN_ALGORITHM = "EdDSA"
TOKEN_MAX_LIFETIME_S = 120
NOTICE_MAX_LIFETIME_S = 30
NOTICE_ROOM_DELETED = "room_deleted"
NOTICE_USER_REVOKED = "user_revoked"

# Frames on the socket.
FRAME_TYPES = ("welcome", "message", "presence", "error", "typing")
ERROR_CODES = ("bad_message", "too_long", "rate_limited")

# Close codes the browser acts on.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 4008  # fell behind: buffer over the bound, or no pong in time
CLOSE_SESSION_ENDED = 4401
CLOSE_ROOM_DELETED = 4404
CLOSE_TOO_MANY_CONNECTIONS = 4429  # the user's per-user socket cap; sent before welcome

# Limits.
MAX_FRAME_BYTES = 16384
MAX_TEXT_CHARS = 2000
MAX_CLIENT_ID_CHARS = 64
