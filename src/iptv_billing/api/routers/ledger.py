"""The transparency log over HTTP.

Public and read-only, in the c2sp.org/tlog-tiles layout, so that any tiled-log client,
monitor or witness can follow a tenant's log: ``/ledger/{tenant}/checkpoint`` and
``/ledger/{tenant}/tile/…`` (entry bundles carry commitments only; records stay private).
With an API key: the log's state and an invoice's receipt.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from iptv_billing.api.deps import AppServices, ReadAccess, Services
from iptv_billing.api.idempotency import IdempotentRoute
from iptv_billing.api.routers._common import ResourceId
from iptv_billing.api.routers._work import read
from iptv_billing.domain.errors import Conflict, NotFound, Unavailable
from iptv_billing.ledger import tiles
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.receipt import b64
from iptv_billing.services import receipts, transparency
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.publishing import LedgerPublisher

router = APIRouter(route_class=IdempotentRoute, tags=["ledger"])

IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_CACHE = "public, max-age=5"


def _publisher(services: AppServices) -> LedgerPublisher:
    if services.publisher is None:
        raise Unavailable("ledger.not_configured", "this server publishes no transparency log")
    return services.publisher


def _require_log(uow: UnitOfWork, tenant_id: str) -> None:
    if uow.tenants.get(tenant_id) is None:
        raise NotFound("ledger.not_found", f"no log {tenant_id}")


@router.get("/ledger/{tenant_id}/checkpoint", response_class=Response)
def public_checkpoint(tenant_id: ResourceId, services: Services) -> Response:
    """The newest checkpoint that meets the witness policy (the newest, without a policy),
    with the log's signatures and the witnesses' cosignatures."""
    with services.database.uow(read_only=True) as uow:
        _require_log(uow, tenant_id)
        if services.publisher is None:
            checkpoint = transparency.latest_checkpoint(uow, tenant_id)
        else:
            checkpoint = services.publisher.published_checkpoint(uow, tenant_id)
        note = transparency.cosigned_note(uow, checkpoint)
    return Response(
        note,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": CHECKPOINT_CACHE},
    )


@router.get("/ledger/{tenant_id}/tile/{path:path}", response_class=Response)
def public_tile(tenant_id: ResourceId, path: str, services: Services) -> Response:
    """A Merkle tile (``tile/<L>/<N>[.p/<W>]``) or entry bundle (``tile/entries/<N>…``)."""
    with services.database.uow(read_only=True) as uow:
        _require_log(uow, tenant_id)
        try:
            ref = tiles.parse_tile_path(f"tile/{path}")
        except LedgerError as exc:
            raise NotFound("tile.not_found", exc.message) from exc
        content = transparency.tile_content(uow, tenant_id, ref)
    if content is None:
        raise NotFound("tile.not_found", f"the log has no {ref.path} yet")
    return Response(
        content, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
    )


@router.get("/v1/ledger")
def ledger_state(caller: ReadAccess, services: Services) -> dict[str, Any]:
    """The caller's log: origin, size, public keys, latest checkpoint and anchor."""
    publisher = _publisher(services)
    tenant_id = caller.tenant_id
    with services.database.uow(read_only=True) as uow:
        checkpoint = uow.log.latest_checkpoint(tenant_id)
        anchor = uow.log.latest_anchor(tenant_id)
        size = uow.log.size(tenant_id)
        note = None if checkpoint is None else transparency.cosigned_note(uow, checkpoint)
    return {
        "object": "ledger",
        "origin": publisher.origin(tenant_id),
        "size": size,
        "keys": publisher.public_vkeys(tenant_id),
        "checkpoint": note,
        "anchor": None
        if anchor is None
        else {
            "size": anchor.size,
            "root": b64(anchor.root),
            "chain_id": anchor.chain_id,
            "contract": anchor.contract,
            "tx_hash": anchor.tx_hash,
            "block_number": anchor.block_number,
        },
    }


@router.get("/v1/invoices/{invoice_id}/receipt")
def invoice_receipt(invoice_id: ResourceId, caller: ReadAccess, services: Services) -> Any:
    """The invoice's receipt: check it offline with ``iptv-billing verify``. If its records
    are newer than the latest checkpoint, a checkpoint is signed first (cosignatures and the
    chain anchor follow on the schedule; a later download carries them)."""
    publisher = _publisher(services)
    origin = publisher.origin(caller.tenant_id)
    vkeys = publisher.public_vkeys(caller.tenant_id)

    def build() -> Any:
        return read(
            services,
            caller,
            lambda uow, ctx: receipts.invoice_receipt(
                uow, ctx.tenant_id, invoice_id, origin, vkeys
            ),
        )

    try:
        return build()
    except Conflict as exc:
        if exc.code != "receipt.not_checkpointed":
            raise
    publisher.checkpoint(caller.tenant_id)
    return build()
