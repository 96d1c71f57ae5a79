"""Start-up checks that look into included routers too (FastAPI keeps them nested)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Request
from starlette.responses import Response

from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.api.fast_paths import fast_routes
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.domain.errors import InvariantViolated


def test_a_plain_post_route_inside_an_included_router_is_refused() -> None:
    inner = APIRouter()

    @inner.post("/v1/sneaky")
    def sneaky() -> None: ...

    outer = APIRouter(route_class=IdempotentRoute)
    outer.include_router(inner)
    with pytest.raises(InvariantViolated, match="/v1/sneaky"):
        create_app(AppServices(None, None, None), [outer])  # type: ignore[arg-type]


def test_nested_callbacks_are_found_for_the_fast_path() -> None:
    inner = APIRouter(route_class=IdempotentRoute)

    @inner.get("/integrations/demo/auth")
    async def auth(request: Request) -> Response:
        return Response(status_code=204)

    @inner.get("/integrations/demo/{name}")
    async def named(request: Request, name: str) -> Response:
        return Response(status_code=204)

    outer = APIRouter(route_class=IdempotentRoute)
    outer.include_router(inner)
    app = create_app(AppServices(None, None, None), [outer])  # type: ignore[arg-type]
    assert set(fast_routes(app.routes)) == {("GET", "/integrations/demo/auth")}
