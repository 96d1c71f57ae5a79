"""Anchoring checkpoints on an Ethereum chain: (origin, size, root) in a contract, in order.

The chain is slow and may be down; billing never waits for it. Anchoring reads the latest
checkpoint in one short transaction, talks to the chain outside any transaction, and records
the anchor in another; a failure leaves the checkpoint to be anchored on the next attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from iptv_billing.domain.errors import Unavailable
from iptv_billing.services.ports import UnitOfWorkFactory
from iptv_billing.services.records import AnchorRecord

log = logging.getLogger(__name__)


class ChainReceipt(Protocol):
    @property
    def chain_id(self) -> int: ...
    @property
    def contract(self) -> str: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def block_number(self) -> int: ...
    @property
    def anchored_at(self) -> int: ...


class AnchorChain(Protocol):
    """``adapters.chain``: the in-process EVM or any JSON-RPC node. Raises ``Unavailable``
    when the node cannot be reached, ``Conflict`` when the contract refuses."""

    def anchor(self, origin: str, size: int, root: bytes) -> ChainReceipt: ...
    def root_at(self, origin: str, size: int) -> bytes | None: ...
    def describe(self) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class AnchorOutcome:
    tenant_id: str
    anchor: AnchorRecord | None
    status: str  # anchored | already_anchored | nothing_to_anchor | unavailable
    detail: str = ""


def anchor_latest(
    uow_factory: UnitOfWorkFactory,
    chain: AnchorChain,
    tenant_id: str,
    origin: str,
    now: Callable[[], datetime],
) -> AnchorOutcome:
    """Anchor the tenant's latest checkpoint unless it is anchored already."""
    with uow_factory(read_only=True) as uow:
        checkpoint = uow.log.latest_checkpoint(tenant_id)
        latest = uow.log.latest_anchor(tenant_id)
    if checkpoint is None or checkpoint.size == 0:
        return AnchorOutcome(tenant_id, None, "nothing_to_anchor")
    if latest is not None and latest.size >= checkpoint.size:
        return AnchorOutcome(tenant_id, latest, "already_anchored")
    try:
        receipt = chain.anchor(origin, checkpoint.size, checkpoint.root)
    except Unavailable as exc:
        log.warning("anchoring %s delayed: %s", tenant_id, exc.message)
        return AnchorOutcome(tenant_id, None, "unavailable", exc.message)
    record = AnchorRecord(
        tenant_id=tenant_id,
        size=checkpoint.size,
        root=checkpoint.root,
        chain_id=receipt.chain_id,
        contract=receipt.contract,
        tx_hash=receipt.tx_hash,
        block_number=receipt.block_number,
        anchored_at=_block_time(receipt.anchored_at) or now(),
    )
    with uow_factory() as uow:
        uow.log.add_anchor(record)
        uow.commit()
    return AnchorOutcome(tenant_id, record, "anchored")


def _block_time(timestamp: int) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None
