"""Settings from the environment (prefix ``IPTV_BILLING_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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

    # -- stream authorization -------------------------------------------------------------
    # Redis shared by every API process for live sessions and failed-login counts; unset =
    # kept in this process (one server).
    redis_url: str | None = None
    # Seconds between reads of the log (and of the catalog's fingerprints) that bring
    # billing's changes into the in-memory authorization index, and between full reloads of
    # every catalog (a safety net).
    access_refresh_seconds: float = 1.0
    catalog_refresh_seconds: float = 300.0
    # Over the connection limit: "refuse_new", or "drop_oldest" (the oldest session is
    # refused at its next heartbeat, so the server ends it).
    over_limit_policy: str = "refuse_new"
    # A session not heard from for this long no longer counts (servers send heartbeats).
    session_ttl_seconds: float = 90.0
    # Credential guessing: this many failed logins per IP and window, then refused.
    guess_max_failures: int = 20
    guess_window_seconds: float = 60.0
    # The base URL players reach this server at (playlists, Xtream server_info); unset = the
    # URL of each request.
    public_url: str | None = None
    # Signed links (GET /integrations/secure-link) for servers configured with nginx's
    # secure_link: the shared secret (16+ characters, no spaces; unset = off) and how long a
    # link stays valid.
    secure_link_secret: str | None = None
    secure_link_ttl_seconds: int = 3600

    # -- provisioning -----------------------------------------------------------------------
    # Seconds between passes of the provisioning worker (Xtream panels and webhooks follow
    # the log, then due deliveries go out); 0 turns it off.
    provisioning_interval_seconds: float = 5.0

    # -- usage metering ---------------------------------------------------------------------
    # How late a usage event may arrive and still be accepted (3 days); events more than five
    # minutes in the future are refused whatever this says.
    usage_grace_seconds: float = 259_200.0
    # Viewing a prepaid metered session reserves from the wallet at a time (a minute when
    # that is all the balance covers); each reservation is charged by an invoice when the
    # next one is made or the session ends.
    usage_reserve_seconds: int = Field(default=900, ge=60, le=86_400)
