"""Settings from the environment; secrets come from files mounted at /run/secrets."""

from pathlib import Path

from pydantic import Field
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

    # The chat's internal control port: room deletions (4404) and revoked users (4401).
    chat_control_url: str = "http://chat:8002"

    session_idle_seconds: int = Field(default=2 * 3600, ge=60)
    session_absolute_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    def database_url(self) -> URL:
        return URL.create(
            "postgresql+asyncpg",
            username=self.database_user,
            password=self.database_password_file.read_text().strip(),
            host=self.database_host,
            port=self.database_port,
            database=self.database_name,
        )
