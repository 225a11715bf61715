"""Settings from the environment; secrets come from files mounted at /run/secrets."""

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import URL

from website.wire import TOKEN_MAX_LIFETIME_S


class Settings(BaseSettings):
    """The website's whole configuration; built once per process (or per test app)."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "0.0.0.0"
    port: int = 8000
    metrics_port: int = 9100

    database_host: str = "db"
    database_port: int = 5432
    database_user: str = "parley"
    database_name: str = "parley"
    database_password_file: Path = Path("/run/secrets/db_password")
    database_pool_size: int = 10

    jwt_signing_key_file: Path = Path("/run/secrets/jwt_signing_key.pem")
    # docs/design.md §4: a chat token lives at most 120 s.
    chat_token_ttl_seconds: int = Field(default=60, ge=10, le=TOKEN_MAX_LIFETIME_S)

    # The bus (Redis): room deletions (4404) and revoked users (4401) go to every chat replica.
    redis_host: str = "redis"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password_file: Path = Path("/run/secrets/redis/redis_password")

    session_idle_seconds: int = Field(default=2 * 3600, ge=60)
    session_absolute_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # Expired sessions are deleted in the background, at most this many per run.
    session_purge_interval_s: float = Field(default=300, gt=0)
    session_purge_batch: int = Field(default=1000, ge=1)

    # The site's address as browsers see it; https makes cookies Secure (__Host-) and sends HSTS.
    public_url: str = ""
    # uvicorn trusts X-Forwarded-* only from these addresses (comma-separated); empty: never.
    forwarded_allow_ips: str = ""

    # Per-account throttles (docs/design.md §3): failed logins, and registration attempts.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=900, gt=0)
    register_max_attempts: int = Field(default=5, ge=1)
    register_window_s: float = Field(default=900, gt=0)
    # How many emails each throttle remembers (least recently seen forgotten first).
    throttle_max_keys: int = Field(default=10_000, ge=1)

    # argon2 runs in worker threads: this many at once, this many more waiting, then 503.
    hash_concurrency: int = Field(default=2, ge=1)
    hash_queue: int = Field(default=8, ge=0)

    rooms_per_user: int = Field(default=50, ge=1)
    rooms_page_size: int = Field(default=50, ge=1, le=100)

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError("PUBLIC_URL must look like https://chat.example.com")
        return value

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    def redis_password(self) -> str:
        return self.redis_password_file.read_text().strip()

    def database_url(self) -> URL:
        return URL.create(
            "postgresql+asyncpg",
            username=self.database_user,
            password=self.database_password_file.read_text().strip(),
            host=self.database_host,
            port=self.database_port,
            database=self.database_name,
        )
