"""Settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8001
    metrics_port: int = 9100
    jwks_url: str = "http://website:8000/.well-known/jwks.json"
    # Browser origins allowed besides the request's own Host, e.g. "https://parley.example".
    allowed_origins: frozenset[str] = frozenset()
    log_level: str = "INFO"
    jwks_ttl_s: float = 300.0
    # Floor between JWKS fetches, so tokens with junk `kid`s cannot make us hammer the website.
    jwks_min_refresh_s: float = 10.0
    jwks_timeout_s: float = 5.0
    rate_per_s: float = 10.0
    rate_burst: int = 20
    flood_rejections: int = 50
    flood_window_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def get(name: str, default: T, cast: Callable[[str], T]) -> T:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return cast(raw)
            except ValueError:
                raise SystemExit(f"invalid value for {name}: {raw!r}") from None

        d = cls()
        origins = env.get("ALLOWED_ORIGINS", "").split(",")
        return cls(
            host=get("CHAT_HOST", d.host, str),
            port=get("CHAT_PORT", d.port, int),
            metrics_port=get("METRICS_PORT", d.metrics_port, int),
            jwks_url=get("JWKS_URL", d.jwks_url, str),
            allowed_origins=frozenset(o.strip().rstrip("/").lower() for o in origins if o.strip()),
            log_level=get("LOG_LEVEL", d.log_level, str.upper),
            jwks_ttl_s=get("JWKS_TTL_S", d.jwks_ttl_s, float),
            jwks_min_refresh_s=get("JWKS_MIN_REFRESH_S", d.jwks_min_refresh_s, float),
            jwks_timeout_s=get("JWKS_TIMEOUT_S", d.jwks_timeout_s, float),
            rate_per_s=get("RATE_LIMIT_PER_S", d.rate_per_s, float),
            rate_burst=get("RATE_LIMIT_BURST", d.rate_burst, int),
            flood_rejections=get("FLOOD_REJECTIONS", d.flood_rejections, int),
            flood_window_s=get("FLOOD_WINDOW_S", d.flood_window_s, float),
        )
