"""The operator's way in to Prometheus: the generated credentials and a client through nginx.

The password is read from the `nginx-auth` volume (mounted read-only into the e2e service)
and never printed: it lives only in a field left out of every repr, so neither pytest's
assertion messages nor its tracebacks (which show function arguments) can reveal it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD_FILE = "/run/nginx-auth/prometheus_password"
USER = "ops"  # the only user in nginx's prometheus.htpasswd


@dataclass(frozen=True)
class Credentials:
    """The basic-auth credentials nginx asks for at /ops/prometheus/."""

    source: Path
    password: str = field(repr=False)
    user: str = USER

    @classmethod
    def from_env(cls) -> Credentials:
        source = Path(os.environ.get("PROMETHEUS_PASSWORD_FILE", PASSWORD_FILE))
        try:
            password = source.read_text().strip()
        except OSError as exc:
            raise AssertionError(
                f"cannot read the generated Prometheus password from {source}: {exc.strerror}; "
                "is the nginx-auth volume mounted with group 33 (ops/compose.test.yml)?"
            ) from None
        return cls(source=source, password=password)

    @property
    def length(self) -> int:
        return len(self.password)

    def auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.user, self.password)

    def wrong_password(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.user, self.password + "x")

    def wrong_user(self) -> httpx.BasicAuth:
        return httpx.BasicAuth("admin", self.password)


def base_url() -> str:
    """Where nginx answers, as the e2e suite sees it (BASE_URL)."""
    return os.environ.get("BASE_URL", "http://nginx").rstrip("/")


def client() -> httpx.Client:
    """A plain client for nginx: no proxies from the environment, bounded per request."""
    return httpx.Client(base_url=base_url(), timeout=10.0, trust_env=False)
