"""Ministra (Stalker) portal hooks: ``oss_url`` (a box's account), its login/password form,
and ``on_subscribe_hook_url`` / ``on_unsubscribe_hook_url``.

Answers are Ministra's envelope, always HTTP 200: ``{"status":"OK","results":…}`` or
``{"status":"ERROR","error":"…"}``. With ``strict_oss_url_check = true`` Ministra reads an
error, or no answer, as "switched off": hence no database read on the way (the plan's code,
Ministra's tariff ``external_id``, is remembered per process and left out when unknown, which
makes Ministra keep the box's current tariff).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from iptv_billing.api.deps import AppServices, get_services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers.stream_servers._common import (
    answers,
    authorizer,
    call,
    peer,
    query_doc,
    query_fields,
)
from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.stream_protocols import client_ip, purchase_refusal, value, watching
from iptv_billing.services.stream_auth import Account, Presented, StreamAuthorizer

log = logging.getLogger(__name__)
router = APIRouter(route_class=IdempotentRoute, tags=["stream servers"])
PREFIX = "/integrations/ministra"
OSS_FIELDS = ("mac", "serial_number", "type", "locale", "login", "password", "portal", "ip")
ENVELOPE = answers(s200='always: {"status":"OK","results":…} or {"status":"ERROR","error":…}')
MISMATCH = "User not exist or login-password mismatch"
LOGIN_ERRORS = {
    Reason.TOO_MANY_ATTEMPTS: "Too many attempts, try again later",
    Reason.CREDENTIAL_DISABLED: "Login disabled",
}
UNKNOWN_DEVICE = "Unknown device"


def _ok(results: object) -> Response:
    return JSONResponse({"status": "OK", "results": results})


def _error(message: str) -> Response:
    return JSONResponse({"status": "ERROR", "error": message})


@router.get(f"{PREFIX}/oss", openapi_extra=query_doc(*OSS_FIELDS), responses=ENVELOPE)
async def oss(request: Request) -> Response:
    """A box's account by its ``mac``; with ``password``, the login/password check."""
    stream = authorizer(request)
    fields = query_fields(request)
    if "password" in fields:
        return await _authorize(stream, fields)
    ip = client_ip(value(fields, "ip"), peer(request))
    mac = value(fields, "mac")
    if mac is None:
        return _error("mac is required")
    account = await call(stream, stream.account, Presented.device(mac), ip)
    if isinstance(account, Reason):
        return _error(LOGIN_ERRORS.get(account, UNKNOWN_DEVICE))
    results: dict[str, Any] = {
        "ls": account.credential.subscription_id,
        "status": int(watching(account.entitlement, account.now)),
        "additional_services_on": 1,
    }
    tariff = await _tariff(request, stream, account)
    if tariff is not None:
        results["tariff"] = tariff
    return _ok(results)


async def _authorize(stream: StreamAuthorizer, fields: dict[str, str]) -> Response:
    login, password = value(fields, "login"), value(fields, "password")
    if login is None or password is None:
        return JSONResponse({"status": "OK", "results": False, "error": MISMATCH})
    # Ministra sends no box address with a login check: failures are then counted per login,
    # not per portal (one guesser must not lock every subscriber out of the portal).
    ip = client_ip(value(fields, "ip"), f"login:{login}")
    found = await call(stream, stream.login, Presented.line(login, password), ip)
    if isinstance(found, Reason) or not found.enabled:
        reason = found if isinstance(found, Reason) else Reason.CREDENTIAL_DISABLED
        error = LOGIN_ERRORS.get(reason, MISMATCH)
        return JSONResponse({"status": "OK", "results": False, "error": error})
    return _ok(True)


@router.get(
    f"{PREFIX}/subscribe",
    openapi_extra=query_doc("mac", "tariff_id", "package_id"),
    responses=ENVELOPE,
)
async def subscribe(request: Request) -> Response:
    """``on_subscribe_hook_url``: approved only for packages the subscription already has."""
    stream = authorizer(request)
    fields = query_fields(request)
    mac = value(fields, "mac")
    if mac is None:
        return _error("mac is required")
    account = await call(stream, stream.account, Presented.device(mac), peer(request))
    if isinstance(account, Reason):
        return _error(LOGIN_ERRORS.get(account, UNKNOWN_DEVICE))
    refusal = purchase_refusal(account.entitlement, account.now, value(fields, "package_id"))
    return _ok(True) if refusal is None else _error(refusal)


@router.get(
    f"{PREFIX}/unsubscribe",
    openapi_extra=query_doc("mac", "tariff_id", "package_id"),
    responses=ENVELOPE,
)
async def unsubscribe(request: Request) -> Response:
    """``on_unsubscribe_hook_url``: nothing to undo (nothing was bought on the box)."""
    return _ok(True)


# -- the tariff: the plan's code, remembered per process ---------------------------------------


async def _tariff(request: Request, stream: StreamAuthorizer, account: Account) -> str | None:
    credential = account.credential
    access = stream.index.tenant(credential.tenant_id)
    subscription = access.subscriptions.get(credential.subscription_id) if access else None
    if subscription is None:
        return None
    codes = _plan_codes(request.app)
    code = codes.get(subscription.plan_id)
    if code is None:
        services = get_services(request)
        try:
            code = await run_in_threadpool(
                _read_code, services, credential.tenant_id, subscription.plan_id
            )
        except Exception:  # the tariff is optional; the box's status must not wait on it
            log.exception("could not read plan %s for Ministra", subscription.plan_id)
            return None
        if code is not None:
            codes[subscription.plan_id] = code  # plan codes never change
    return code


def _plan_codes(app: FastAPI) -> dict[str, str]:
    codes: dict[str, str] | None = getattr(app.state, "ministra_plan_codes", None)
    if codes is None:
        codes = {}
        app.state.ministra_plan_codes = codes
    return codes


def _read_code(services: AppServices, tenant_id: str, plan_id: str) -> str | None:
    with services.database.uow(read_only=True) as uow:
        plan = uow.catalog.get_plan(tenant_id, plan_id)
    return plan.code if plan else None
