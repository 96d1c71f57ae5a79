"""The witness's HTTP surface (Starlette):

* ``POST <submission prefix>/add-checkpoint``
* ``GET <monitoring prefix>/<lowercase hex SHA-256(origin)>/checkpoint``
* ``GET /healthz``

Bodies are read with a hard size limit before anything is parsed (413 beyond it), and the
blocking work (signature checks, SQLite commit with fsync) runs in the thread pool so that one
slow disk does not stall the event loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from iptv_billing.witness.service import Witness, WitnessResponse

_PREFIX = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*")
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class _TooLarge(Exception):
    pass


def _check_prefix(prefix: str, what: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"the {what} prefix must be empty or '/segment[/...]' without a final /")
    return prefix


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:  # chunked bodies have no Content-Length: count as they arrive
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _respond(result: WitnessResponse) -> Response:
    headers = dict(_HEADERS)
    if result.content_type is not None:
        headers["Content-Type"] = result.content_type
    return Response(result.body, status_code=result.status, headers=headers)


def create_app(
    witness: Witness,
    *,
    clock: Callable[[], float] = time.time,
    submission_prefix: str = "",
    monitoring_prefix: str = "",
) -> Starlette:
    """The ASGI app; ``clock`` (POSIX seconds) dates the cosignatures."""
    submission_prefix = _check_prefix(submission_prefix, "submission")
    monitoring_prefix = _check_prefix(monitoring_prefix, "monitoring")

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _read_body(request, witness.max_body)
        except _TooLarge:
            return PlainTextResponse(
                f"the body is larger than {witness.max_body} bytes\n", 413, headers=_HEADERS
            )
        except ClientDisconnect:
            return PlainTextResponse("client disconnected\n", 400, headers=_HEADERS)
        now = int(clock())
        return _respond(await run_in_threadpool(witness.add_checkpoint, body, now))

    async def checkpoint(request: Request) -> Response:
        hash_hex = str(request.path_params["origin_hash"])
        return _respond(await run_in_threadpool(witness.get_checkpoint, hash_hex))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=_HEADERS)

    routes = [
        Route(f"{submission_prefix}/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route(f"{monitoring_prefix}/{{origin_hash}}/checkpoint", checkpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes)
