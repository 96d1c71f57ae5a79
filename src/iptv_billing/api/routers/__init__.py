"""Resource routers, included by ``create_app`` in this order.

Build each with ``APIRouter(route_class=IdempotentRoute)`` (``create_app`` refuses POST routes
of any other class) and declare access with ``AdminWrite`` / ``ReadAccess`` /
``IntegrationAccess`` from ``api.deps``; ``routers/tenants.py`` is the example to follow.
"""

from __future__ import annotations

from fastapi import APIRouter

from iptv_billing.api.routers import (
    account,
    billing,
    catalog,
    credentials,
    customers,
    guide,
    invoices,
    ledger,
    payments,
    players,
    ppv,
    provisioning,
    stream_servers,
    subscriptions,
    tenants,
    upcoming,
    usage,
    vod,
    wallet_holds,
)

ROUTERS: list[APIRouter] = [
    tenants.router,
    catalog.router,
    customers.router,
    wallet_holds.router,
    subscriptions.router,
    upcoming.router,
    credentials.router,
    provisioning.router,
    guide.router,
    invoices.router,
    payments.router,
    ppv.router,
    vod.router,
    billing.router,
    ledger.router,
    players.router,
    account.router,
    stream_servers.router,
    usage.router,
]
