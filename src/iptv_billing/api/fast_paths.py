"""A short road for streaming servers' callbacks: they arrive for every play and heartbeat,
and FastAPI's route matching and dependency solving cost several times what the decision does.

Routes under ``/integrations/`` without path parameters whose endpoint takes just the
``Request`` are answered straight from this middleware. They stay declared as FastAPI routes,
so OpenAPI documents them and anything the table does not hold falls through unchanged.
Errors are rendered exactly as the app's handlers would.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from iptv_billing.api.errors import render_known_error, unexpected_error_handler

PREFIX = "/integrations/"
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    path: str  # read by the metrics middleware as the route template
    endpoint: Endpoint


def _takes_only_the_request(endpoint: Callable[..., object]) -> bool:
    if not inspect.iscoroutinefunction(endpoint):
        return False
    parameters = list(inspect.signature(endpoint).parameters.values())
    return len(parameters) == 1 and parameters[0].annotation in (Request, "Request")


def all_routes(routes: Iterable[BaseRoute]) -> Iterable[BaseRoute]:
    """Routes of included routers too (FastAPI >= 0.160 keeps included routers nested)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from all_routes(included.routes)
        else:
            yield route


def fast_routes(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], FastRoute]:
    table: dict[tuple[str, str], FastRoute] = {}
    for route in all_routes(routes):
        if not isinstance(route, APIRoute) or not route.path.startswith(PREFIX):
            continue
        if "{" in route.path or not _takes_only_the_request(route.endpoint):
            continue
        for method in route.methods or ():
            table[(method, route.path)] = FastRoute(route.path, route.endpoint)
    return table


class FastPathMiddleware:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], FastRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], scope["path"]))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except Exception as exc:  # rendered as the exception handlers would
            response = await render_known_error(request, exc) or await unexpected_error_handler(
                request, exc
            )
        await response(scope, receive, send)
