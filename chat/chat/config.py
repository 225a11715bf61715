"""Settings: read once from the environment and validated at start."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import wire
from .auth import LEEWAY_S

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"  # no ":" (presence fields are node:user_id)


class Settings(BaseSettings):
    """Each field reads the environment variable named in its alias; tests pass fields by name:
    `Settings(port=0, jwks_url=...)`. Port 0 picks any free port (tests)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,  # VAR= means the default, as before
        validate_by_name=True,
        validate_by_alias=True,
    )

    host: str = Field(default="0.0.0.0", min_length=1, validation_alias="CHAT_HOST")
    port: int = Field(default=8001, ge=0, le=65535, validation_alias="CHAT_PORT")
    metrics_port: int = Field(default=9100, ge=0, le=65535, validation_alias="METRICS_PORT")
    jwks_url: str = Field(
        default="http://website:8000/.well-known/jwks.json", validation_alias="JWKS_URL"
    )
    # Browser origins allowed besides the request's own Host, e.g. "https://parley.example";
    # comma-separated in the environment.
    allowed_origins: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias="ALLOWED_ORIGINS"
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    jwks_ttl_s: float = Field(default=300.0, gt=0, validation_alias="JWKS_TTL_S")
    # Floor between JWKS fetches, so tokens with junk `kid`s cannot make us hammer the website.
    jwks_min_refresh_s: float = Field(default=10.0, ge=0, validation_alias="JWKS_MIN_REFRESH_S")
    jwks_timeout_s: float = Field(default=5.0, gt=0, validation_alias="JWKS_TIMEOUT_S")
    rate_per_s: float = Field(default=10.0, gt=0, validation_alias="RATE_LIMIT_PER_S")
    rate_burst: int = Field(default=20, ge=1, validation_alias="RATE_LIMIT_BURST")
    flood_rejections: int = Field(default=50, ge=1, validation_alias="FLOOD_REJECTIONS")
    flood_window_s: float = Field(default=10.0, gt=0, validation_alias="FLOOD_WINDOW_S")
    # Keepalive, independent of the write buffer (a client that never reads never pongs).
    ping_interval_s: float = Field(default=10.0, gt=0, validation_alias="PING_INTERVAL_S")
    ping_timeout_s: float = Field(default=15.0, gt=0, validation_alias="PING_TIMEOUT_S")
    # A connection whose transport holds more than this is cut with 4008 (broadcast has no
    # backpressure: without a bound, one stalled reader would hold every message in memory).
    send_buffer_bytes: int = Field(default=64 * 1024, ge=1024, validation_alias="SEND_BUFFER_BYTES")
    max_connections_per_user: int = Field(
        default=16, ge=1, validation_alias="MAX_CONNECTIONS_PER_USER"
    )
    max_connections: int = Field(default=20000, ge=1, validation_alias="MAX_CONNECTIONS")
    # The client port's accept queue: a burst of connects beyond it waits for SYN retries
    # (1 s, 3 s, ...) and nginx answers 504. The kernel caps it at net.core.somaxconn.
    listen_backlog: int = Field(default=4096, ge=1, le=65535, validation_alias="LISTEN_BACKLOG")
    # How long a revocation refuses older tokens: a token lives at most
    # TOKEN_MAX_LIFETIME_S, plus the verifier's clock leeway.
    revocation_memory_s: float = Field(
        default=wire.TOKEN_MAX_LIFETIME_S + LEEWAY_S, gt=0, validation_alias="REVOCATION_MEMORY_S"
    )

    # The bus (Redis): messages and presence between replicas, the website's notices.
    redis_host: str = Field(default="redis", min_length=1, validation_alias="REDIS_HOST")
    redis_port: int = Field(default=6379, ge=1, le=65535, validation_alias="REDIS_PORT")
    redis_password_file: Path = Field(
        default=Path("/run/secrets/redis/redis_password"), validation_alias="REDIS_PASSWORD_FILE"
    )
    # This replica's name on the bus; a fresh one per start, so a restarted replica's
    # presence never mixes with what its previous life left behind.
    node_id: str = Field(
        default_factory=lambda: secrets.token_hex(6),
        pattern=NODE_ID_PATTERN,
        validation_alias="NODE_ID",
    )
    # Presence entries expire PRESENCE_TTL_S after the last heartbeat; a crashed replica's
    # users leave within TTL + PRESENCE_SWEEP_S (20 s by default; the contract says 30 s).
    presence_ttl_s: float = Field(default=15.0, gt=0, validation_alias="PRESENCE_TTL_S")
    presence_heartbeat_s: float = Field(default=5.0, gt=0, validation_alias="PRESENCE_HEARTBEAT_S")
    presence_sweep_s: float = Field(default=5.0, gt=0, validation_alias="PRESENCE_SWEEP_S")
    # Joins and leaves are collected per room and sent as one presence frame per tick.
    presence_coalesce_ms: int = Field(
        default=50, ge=1, le=1000, validation_alias="PRESENCE_COALESCE_MS"
    )
    # ... and the replica's ticks cost its sockets about this many frames a second at most,
    # shared by the rooms ticking: a room over its share x the tick (250 sockets alone, by
    # default) ticks longer.
    presence_frames_per_s: int = Field(
        default=5000, ge=1, le=1_000_000, validation_alias="PRESENCE_FRAMES_PER_S"
    )
    # Connect and command timeout, and the longest pause between reconnection attempts.
    bus_timeout_s: float = Field(default=2.0, gt=0, validation_alias="BUS_TIMEOUT_S")
    bus_backoff_max_s: float = Field(default=5.0, gt=0, validation_alias="BUS_BACKOFF_MAX_S")

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple | set | frozenset):
            return value  # pydantic reports the type error
        return frozenset(o.strip().rstrip("/").lower() for o in items if o.strip())

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        level = value.strip().upper() if isinstance(value, str) else value
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.port and self.port == self.metrics_port:
            raise ValueError("CHAT_PORT and METRICS_PORT must differ")
        if self.presence_heartbeat_s >= self.presence_ttl_s:
            raise ValueError("PRESENCE_HEARTBEAT_S must be below PRESENCE_TTL_S")
        return self

    def redis_password(self) -> str:
        """The bus password, read from its file at start (never from the environment)."""
        try:
            return self.redis_password_file.read_text().strip()
        except OSError as exc:
            raise SystemExit(
                f"invalid chat settings:\n  REDIS_PASSWORD_FILE: cannot read"
                f" {self.redis_password_file} ({exc.strerror})"
            ) from None


def load_settings() -> Settings:
    """The settings from the environment; invalid values end the process with a message
    naming each offending variable (no setting is a secret, so the value is shown too)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']} (got {e['input']!r})"
            if e["loc"] else f"settings: {e['msg']}"
            for e in exc.errors()
        ]  # fmt: skip
        raise SystemExit("invalid chat settings:\n  " + "\n  ".join(problems)) from None

