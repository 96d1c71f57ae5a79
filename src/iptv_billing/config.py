"""Settings from the environment (prefix ``IPTV_BILLING_``) or a ``.env`` file."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./iptv-billing.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IPTV_BILLING_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    # A fixed admin key for the seeded demo tenant (handy for scripts); random when unset.
    demo_api_key: str | None = None
    log_level: str = "info"
    # Seconds between passes of the recurring jobs in `serve` (billing runs for tenants on real
    # time, settling confirmed card payments); 0 turns them off.
    job_interval_seconds: float = 60.0
