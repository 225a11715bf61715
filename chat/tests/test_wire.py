"""The wire contract module: the agreed values, loadable by file path, stdlib only."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import chat.wire

WIRE = Path(chat.wire.__file__)
CONTRACT = {
    "ROOM_NAME_PATTERN": r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$",
    "WS_PATH_PREFIX": "/ws/rooms/",
    "SUBPROTOCOL": "parley.v1",
    "BEARER_PREFIX": "bearer.",
    "TOKEN_ISSUER": "parley-website",
    "TOKEN_AUDIENCE": "parley-chat",
    "TOKEN_ALGORITHM": "EdDSA",
    "TOKEN_MAX_LIFETIME_S": 120,
    "NOTICE_MAX_LIFETIME_S": 30,
    "NOTICE_ROOM_DELETED": "room_deleted",
    "NOTICE_USER_REVOKED": "user_revoked",
    "FRAME_TYPES": ("welcome", "message", "presence", "error", "typing"),
    "ERROR_CODES": ("bad_message", "too_long", "rate_limited"),
    "CLOSE_GOING_AWAY": 1001,
    "CLOSE_POLICY_VIOLATION": 1008,
    "CLOSE_MESSAGE_TOO_BIG": 1009,
    "CLOSE_SESSION_ENDED": 4401,
    "CLOSE_ROOM_DELETED": 4404,
    "CLOSE_SLOW_CONSUMER": 4008,
    "CLOSE_TOO_MANY_CONNECTIONS": 4429,
    "MAX_FRAME_BYTES": 16384,
    "MAX_TEXT_CHARS": 2000,
    "MAX_CLIENT_ID_CHARS": 64,
}


def test_wire_loads_by_path_with_the_contract_values() -> None:
    spec = importlib.util.spec_from_file_location("standalone_wire", WIRE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {name: getattr(module, name) for name in CONTRACT} == CONTRACT


def test_wire_imports_only_the_standard_library() -> None:
    tree = ast.parse(WIRE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
