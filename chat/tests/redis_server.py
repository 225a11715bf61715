"""Throwaway Redis servers for the tests: Debian's redis-server (the binary ops/redis runs),
with a generated password in a file and the same no-persistence settings, on a free port."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path

import redis

START_WITHIN_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; stop() and start() again keep its port and password."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.password_file = workdir / "redis_password"
        self.password_file.write_text(self.password)
        self.config = workdir / "redis.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nrequirepass {self.password}\n"
            f'save ""\nappendonly no\ndir {workdir}\nlogfile {workdir}/redis.log\n'
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(["redis-server", str(self.config)])
        deadline = time.monotonic() + START_WITHIN_S
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        if self._proc is None:
            return
        if kill:
            self._proc.kill()
        else:
            self._proc.terminate()
        self._proc.wait(timeout=START_WITHIN_S)
        self._proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=2)

    def settings(self) -> dict[str, object]:
        """The chat's bus settings for this server."""
        return {"redis_host": "127.0.0.1", "redis_port": self.port,
                "redis_password_file": self.password_file}  # fmt: skip
