"""Streaming servers and middleware asking "may this viewer play?", each in its own protocol.

One module per protocol; all public (the credentials the viewer presented authenticate, no
API key) under ``/integrations/``. Every malformed request gets its protocol's own "deny",
never a 500. ``docs/integrations.md`` has the server configuration for each.
"""

from __future__ import annotations

from fastapi import APIRouter

from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers import (
    flussonic,
    mediamtx,
    ministra,
    nginx_http,
    nginx_rtmp,
    secure_link,
    srs,
)

router = APIRouter(route_class=IdempotentRoute)
for _module in (nginx_rtmp, nginx_http, flussonic, mediamtx, srs, ministra, secure_link):
    router.include_router(_module.router)
