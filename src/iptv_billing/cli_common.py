"""What every ``iptv-billing`` command module shares: options, the console, the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from iptv_billing.config import Settings

if TYPE_CHECKING:
    from iptv_billing.bootstrap import Runtime

console = Console()

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL; env IPTV_BILLING_DATABASE_URL")
]
TenantId = Annotated[str, typer.Option("--tenant", help="tenant id (ten_…)")]


def settings_for(database_url: str | None) -> Settings:
    settings = Settings()
    if database_url:
        settings.database_url = database_url
    return settings


def open_runtime_for(database_url: str | None) -> Runtime:
    from iptv_billing.bootstrap import open_runtime

    return open_runtime(settings_for(database_url))
