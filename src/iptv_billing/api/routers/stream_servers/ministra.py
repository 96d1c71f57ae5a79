"""Ministra (Stalker) portal hooks: ``oss_url`` (a box's account), its login/password form,
and ``on_subscribe_hook_url`` / ``on_unsubscribe_hook_url``.

Answers are Ministra's envelope, always HTTP 200: ``{"status":"OK","results":…}`` or
``{"status":"ERROR","error":"…"}``. With ``strict_oss_url_check = true`` Ministra reads an
error, or no answer, as "switched off": hence no database read on the way (the plan's code,
Ministra's tariff ``external_id``, is remembered per process and left out when unknown, which
makes Ministra keep the box's current tariff).

Pay-per-view from the box: the operator sets a Ministra package's external id to a PPV event's
code (a ``single`` package, ``rent_duration`` covering the event and its replay). When
``on_subscribe_hook_url`` names such a package, the box's subscription buys the event from its
wallet: approved on success (or when it has bought it already), ``Insufficient funds`` when the
wallet does not cover it. ``on_unsubscribe_hook_url`` gives it back, refunded to where the
money came from, only before the event starts; afterwards the answer is an error, so Ministra
keeps the package (the purchase, and the right to watch, stay). A purchase is a write: it runs
in a worker thread through the same unit of work as the API, then this process's authorization
index follows the log at once.

VOD rentals from the box: a package whose external id is a VOD item's code (a ``single``
package with ``rent_duration`` equal to the item's rental hours) is rented from the wallet the
same way (approved when a rental of it is still running). ``on_unsubscribe_hook_url`` refunds a
rental only within ``vod.STB_RETURN_WINDOW`` (five minutes) of renting it, a mistaken press;
afterwards the answer is an error and the rental stays (its window runs out by itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
from iptv_billing.domain.errors import BillingError, Conflict, InsufficientFunds
from iptv_billing.domain.stream_protocols import (
    INACTIVE,
    client_ip,
    purchase_refusal,
    value,
    watching,
)
from iptv_billing.domain.vod import rented
from iptv_billing.services import ppv, ppv_refunds, vod
from iptv_billing.services.context import Context, load_context
from iptv_billing.services.ports import UnitOfWork
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
INSUFFICIENT_FUNDS = "Insufficient funds"
PURCHASE_FAILED = "The purchase could not be made"


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
    """``on_subscribe_hook_url``: a PPV event's package is bought from the wallet; any other
    package is approved only when the subscription already has it."""
    stream = authorizer(request)
    fields = query_fields(request)
    mac = value(fields, "mac")
    if mac is None:
        return _error("mac is required")
    account = await call(stream, stream.account, Presented.device(mac), peer(request))
    if isinstance(account, Reason):
        return _error(LOGIN_ERRORS.get(account, UNKNOWN_DEVICE))
    package = value(fields, "package_id")
    if _is_ppv(stream, account, package) and package is not None:
        return await _buy(request, stream, account, package)
    if _is_vod(stream, account, package) and package is not None:
        return await _rent(request, stream, account, package)
    refusal = purchase_refusal(account.entitlement, account.now, package)
    return _ok(True) if refusal is None else _error(refusal)


def _is_ppv(stream: StreamAuthorizer, account: Account, package: str | None) -> bool:
    access = stream.index.tenant(account.credential.tenant_id)
    return package is not None and access is not None and package in access.catalog.ppv_by_code


def _is_vod(stream: StreamAuthorizer, account: Account, package: str | None) -> bool:
    access = stream.index.tenant(account.credential.tenant_id)
    item = access.catalog.vod_by_code.get(package) if access and package else None
    return item is not None and item.item.rentable


async def _rent(
    request: Request, stream: StreamAuthorizer, account: Account, code: str
) -> Response:
    if rented(account.entitlement.purchases, code, account.now) is not None:
        return _ok(True)  # still renting it (Ministra asks again after a reboot)
    if not watching(account.entitlement, account.now):
        return _error(INACTIVE)
    sub_id = account.credential.subscription_id
    try:
        await _write(request, stream, account, lambda u, c: vod.rent_by_code(u, c, code, sub_id))
    except InsufficientFunds:
        return _error(INSUFFICIENT_FUNDS)
    except BillingError as exc:
        return _error(exc.message)
    except Exception:  # Ministra reads an error as "denied"; the box must get an answer
        log.exception("VOD rental of %s for %s failed", code, sub_id)
        return _error(PURCHASE_FAILED)
    return _ok(True)


async def _buy(request: Request, stream: StreamAuthorizer, account: Account, code: str) -> Response:
    if any(w.code == code for w in account.entitlement.purchases):
        return _ok(True)  # bought already (Ministra asks again after a reboot)
    if not watching(account.entitlement, account.now):
        return _error(INACTIVE)
    sub_id = account.credential.subscription_id
    try:
        await _write(request, stream, account, lambda u, c: ppv.buy_by_code(u, c, code, sub_id))
    except InsufficientFunds:
        return _error(INSUFFICIENT_FUNDS)
    except BillingError as exc:
        return _error(exc.message)
    except Exception:  # Ministra reads an error as "denied"; the box must get an answer
        log.exception("PPV purchase of %s for %s failed", code, sub_id)
        return _error(PURCHASE_FAILED)
    return _ok(True)


async def _write(
    request: Request,
    stream: StreamAuthorizer,
    account: Account,
    work: Callable[[UnitOfWork, Context], object],
) -> None:
    """``work`` committed in a worker thread (off the event loop), then this process's index
    follows the tenant's log so the box can watch at once."""
    services = get_services(request)
    tenant_id = account.credential.tenant_id

    def attempt(uow: UnitOfWork) -> object:
        return work(uow, load_context(uow, tenant_id, services.system_clock, services.ids))

    await run_in_threadpool(services.database.transact, attempt)
    await run_in_threadpool(stream.index.follow_now, tenant_id)


@router.get(
    f"{PREFIX}/unsubscribe",
    openapi_extra=query_doc("mac", "tariff_id", "package_id"),
    responses=ENVELOPE,
)
async def unsubscribe(request: Request) -> Response:
    """``on_unsubscribe_hook_url``: a PPV event's package is refunded before the event starts
    and refused after; a VOD rental is refunded within five minutes of renting and refused
    after; for any other package there is nothing to undo."""
    stream = authorizer(request)
    fields = query_fields(request)
    mac, package = value(fields, "mac"), value(fields, "package_id")
    if mac is None or package is None:
        return _ok(True)
    account = await call(stream, stream.account, Presented.device(mac), peer(request))
    if isinstance(account, Reason):
        return _ok(True)
    sub_id = account.credential.subscription_id
    returns = _RETURNS.get(_kind(stream, account, package) or "")
    if returns is None or package is None:
        return _ok(True)
    try:
        await _write(request, stream, account, lambda u, c: returns(u, c, package, sub_id))
    except Conflict as exc:
        return _error(exc.message)
    except Exception:
        log.exception("return of %s for %s failed", package, sub_id)
        return _error(PURCHASE_FAILED)
    return _ok(True)


_RETURNS: dict[str, Callable[[UnitOfWork, Context, str, str], object]] = {
    "ppv": ppv_refunds.return_by_code,
    "vod": vod.return_by_code,
}


def _kind(stream: StreamAuthorizer, account: Account, package: str | None) -> str | None:
    if _is_ppv(stream, account, package):
        return "ppv"
    return "vod" if _is_vod(stream, account, package) else None


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
