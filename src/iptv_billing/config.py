"""Settings from the environment (prefix ``IPTV_BILLING_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path

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

    # -- the transparency log -------------------------------------------------------------
    # Checkpoint origin of tenant T's log: "<prefix>/<T>" (a schema-less URL naming the log).
    log_origin_prefix: str = "iptv-billing.localhost/log"
    # Ed25519 log keys, one directory per log, files 0600 in directories 0700.
    key_dir: Path = Path("./iptv-billing-keys")
    # A c2sp.org/tlog-policy file naming the witnesses (with submission URLs) and the quorum.
    witness_policy: Path | None = None
    # Seconds between checkpoints of logs that grew, and between anchoring passes; 0 = off.
    checkpoint_interval_seconds: float = 60.0
    anchor_interval_seconds: float = 600.0
    # Any Ethereum JSON-RPC node; unset = the in-process EVM whose state lives in chain_state.
    chain_url: str | None = None
    chain_state: Path = Path("./iptv-billing-chain.db")
    chain_private_key: str | None = None
    chain_contract: str | None = None
    chain_timeout_seconds: float = 10.0
    # Anchoring can be switched off (a deployment with no chain at all).
    anchoring: bool = True
