"""The FastAPI application: error handling, idempotent routes, health, metrics, routers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from iptv_billing import __version__
from iptv_billing.api.deps import AppServices, Services
from iptv_billing.api.errors import install_error_handlers
from iptv_billing.api.fast_paths import FastPathMiddleware, all_routes, fast_routes
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.metrics import MetricsMiddleware, RequestMetrics
from iptv_billing.api.routers import ROUTERS, usage
from iptv_billing.domain.errors import InvariantViolated, Unavailable

DESCRIPTION = """Verifiable billing for IPTV operators and their resellers.

Errors are RFC 9457 `application/problem+json` with a stable `code`. Every POST accepts an
`Idempotency-Key`; money is `{"amount": "12.50", "currency": "EUR"}`, never a float."""


class Health(BaseModel):
    status: str


def _check_idempotent(routers: Iterable[APIRouter]) -> None:
    # Fail at start-up, not on the first retried payment, if a router forgot the route class.
    for router in routers:
        for route in all_routes(router.routes):
            if not isinstance(route, APIRoute) or isinstance(route, IdempotentRoute):
                continue
            if "POST" in (route.methods or ()):
                raise InvariantViolated(f"POST {route.path} must use IdempotentRoute")


def _add_operational_routes(app: FastAPI, metrics: RequestMetrics) -> None:
    @app.get("/healthz", tags=["operations"])
    def healthz(services: Services) -> Health:
        try:
            # One indexed read: proves the database answers and carries the schema.
            with services.database.uow(read_only=True) as uow:
                uow.tenants.get("")
        except Exception as exc:
            raise Unavailable(
                "health.database_unavailable", "the database does not answer"
            ) from exc
        return Health(status="ok")

    app.add_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)


def create_app(services: AppServices, routers: Iterable[APIRouter] = ROUTERS) -> FastAPI:
    routers = list(routers)
    _check_idempotent(routers)
    # FastAPIOffline serves the Swagger UI and ReDoc assets from the installed package: /docs
    # works on a machine (or a browser) without internet access.
    app = FastAPIOffline(
        title="iptv-billing",
        version=__version__,
        description=DESCRIPTION,
        responses=_PROBLEM_RESPONSES,
    )
    app.router.route_class = IdempotentRoute
    app.state.services = services
    metrics = RequestMetrics()
    _add_operational_routes(app, metrics)
    for router in routers:
        app.include_router(router)
    # Middleware added later wraps what came before: the body limit, then the callbacks'
    # fast path inside it, all measured by the metrics.
    app.add_middleware(FastPathMiddleware, routes=fast_routes(app.routes))
    # Usage batches (10,000 events) may be larger than the 1 MiB every other route takes.
    install_error_handlers(app, {usage.EVENTS_PATH: usage.MAX_BODY_BYTES})
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "a problem with the request (RFC 9457 problem+json)",
        "content": {"application/problem+json": {}},
    },
    "5XX": {
        "description": "the service failed or is unavailable (RFC 9457 problem+json)",
        "content": {"application/problem+json": {}},
    },
}
