"""Every failure leaves the API as RFC 9457 problem+json, decided in this one place.

Body: ``{"type", "title", "status", "detail", "code", "instance"}`` where ``code`` is the stable
dotted code (``money.float_refused``) and ``type`` is ``PROBLEM_BASE + code``. Validation
failures add ``errors: [{loc, msg, code}]``; a BillingError's details go into ``details``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iptv_billing.domain.errors import BillingError, ErrorKind

logger = logging.getLogger(__name__)

PROBLEM_BASE = "https://iptv-billing.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_BODY_BYTES = 1024 * 1024
# Validation reports are bounded: a hostile body must not turn into a huge error response.
_MAX_REPORTED_ERRORS = 20
_MAX_TEXT = 200

STATUS_BY_KIND: Mapping[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.PAYMENT_REQUIRED: 402,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.RATE_LIMITED: 429,
}
_HTTP_CODES: Mapping[int, str] = {
    400: "request.malformed_json",  # FastAPI raises 400 only when it cannot parse a body
    404: "route.not_found",
    405: "route.method_not_allowed",
    413: "request.too_large",
}

Handler = Callable[[Request, Exception], Awaitable[Response]]


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    body = {
        "type": PROBLEM_BASE + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
        **extensions,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status Python does not name
        return "Error"


def _jsonable(value: Mapping[str, Any]) -> Any:
    # Details are meant for users; anything json cannot say is shown as its str().
    return json.loads(json.dumps(value, default=str))


async def billing_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, BillingError):  # pragma: no cover - registered for BillingError
        raise exc
    status = STATUS_BY_KIND[exc.kind]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    extensions = {"details": _jsonable(exc.details)} if exc.details else {}
    return problem(request, status, exc.code, exc.message, headers, **extensions)


def _clip(value: Any) -> Any:
    return value[:_MAX_TEXT] if isinstance(value, str) else value


def _reported(errors: list[Any]) -> list[dict[str, Any]]:
    """loc, msg and code of each error; never the input, which may be huge or secret."""
    return [
        {
            "loc": [_clip(part) for part in error.get("loc", ())],
            "msg": _clip(str(error.get("msg", ""))),
            "code": _clip(str(error.get("type", ""))),
        }
        for error in errors[:_MAX_REPORTED_ERRORS]
    ]


def _validation_code(errors: list[dict[str, Any]]) -> str:
    # Custom validators raise PydanticCustomError with a dotted domain code
    # (``money.float_refused``); pydantic's own types have no dot.
    dotted = [e["code"] for e in errors if "." in e["code"]]
    return dotted[0] if dotted else "request.invalid"


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    raw = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in raw):
        return problem(request, 400, "request.malformed_json", "the body is not valid JSON")
    errors = _reported(raw)
    code = _validation_code(errors)
    detail = errors[0]["msg"] if len(errors) == 1 else f"{len(raw)} problems in the request"
    return problem(request, 422, code, detail, errors=errors)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover
        raise exc
    status = exc.status_code
    code = _HTTP_CODES.get(status, f"http.{status}")
    detail = exc.detail if isinstance(exc.detail, str) else _title(status)
    return problem(request, status, code, detail, exc.headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal.error", "an unexpected error occurred")


_KNOWN: tuple[tuple[type[Exception], Handler], ...] = (
    (BillingError, billing_error_handler),
    (RequestValidationError, validation_error_handler),
    (HTTPException, http_error_handler),
)


async def render_known_error(request: Request, exc: Exception) -> Response | None:
    """The response for an expected error, or None for a bug (for code that must see
    responses before the exception middleware does, such as idempotency)."""
    for kind, handler in _KNOWN:
        if isinstance(exc, kind):
            return await handler(request, exc)
    return None


def install_error_handlers(app: FastAPI, body_limits: Mapping[str, int] | None = None) -> None:
    """``body_limits``: paths allowed a larger body than ``MAX_BODY_BYTES`` (usage batches)."""
    for kind, handler in _KNOWN:
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES, by_path=body_limits)


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: by Content-Length at once, else while streaming
    (raised from ``receive`` as an HTTPException, so the handler above renders it)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, by_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.by_path = dict(by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.by_path.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = await http_error_handler(Request(scope), BodyTooLarge(limit))
            await response(scope, receive, send)
            return
        await self.app(scope, self._limited(receive, limit), send)

    def _limited(self, receive: Receive, limit: int) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited_receive
