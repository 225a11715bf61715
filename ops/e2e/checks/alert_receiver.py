"""The test stack's webhook receiver: keeps every notification Alertmanager posts, in memory.

Run as the `alert-receiver` service (ops/compose.test.yml): `python -m checks.alert_receiver`.
Alertmanager posts its webhook payload (JSON, version 4) to `POST /alerts`;
checks/test_alerts.py reads them back from `GET /notifications`, each with the time it
arrived. `GET /healthz` is the container's healthcheck. Standard library only; one JSON log
line per notification. Internal to the compose network: nothing publishes its port.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORT = int(os.environ.get("ALERT_RECEIVER_PORT", "9095"))
MAX_BODY = 1 << 20  # Alertmanager's payloads are a few KiB; refuse anything absurd
KEEP = 1000  # notifications kept; the oldest go first

_lock = threading.Lock()
_notifications: deque[dict[str, Any]] = deque(maxlen=KEEP)


def _log(level: str, msg: str, **fields: Any) -> None:
    line = {"ts": datetime.now(UTC).isoformat(), "level": level, "msg": msg, **fields}
    # One write per line, under the lock: handler threads never interleave their lines.
    with _lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    """POST /alerts stores a notification; GET /notifications lists them; GET /healthz."""

    server_version = "parley-alert-receiver"

    def do_POST(self) -> None:
        if self.path != "/alerts":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "bad length"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "not JSON"})
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "not an Alertmanager payload"})
            return
        with _lock:
            _notifications.append({"received": time.time(), "payload": payload})
        _log(
            "info",
            "notification",
            status=payload.get("status"),
            alerts=[
                f"{a.get('labels', {}).get('alertname')}:{a.get('status')}"
                for a in payload["alerts"]
            ],
        )
        self._reply(HTTPStatus.OK, {"status": "stored"})

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/notifications":
            with _lock:
                notifications = list(_notifications)
            self._reply(HTTPStatus.OK, {"notifications": notifications})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are logged as JSON above (notifications) or not at all (polls, probes).
        return


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    # As PID 1 the process would ignore SIGTERM by default: `docker stop` must not wait 10 s.
    signal.signal(signal.SIGTERM, _stop)
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # on the compose network
    _log("info", "listening", port=PORT)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
