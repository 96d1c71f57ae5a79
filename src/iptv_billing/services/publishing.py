"""Publishing a tenant log: checkpoint → witness cosignatures → chain anchor.

Each step is its own short transaction and network calls happen outside any transaction, so a
slow witness or chain never holds a lock that billing needs. Every step is idempotent and can
be retried: a checkpoint of an unchanged log is the one already signed, a witness that already
cosigned a size is not asked again, an anchored size is not anchored twice.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from iptv_billing.domain.errors import BillingError, NotFound, Unavailable
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import CosignatureV1Verifier, NoteVerifier, parse_note
from iptv_billing.ledger.policy import Policy
from iptv_billing.services import anchoring, transparency
from iptv_billing.services.context import get_tenant
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.records import CheckpointRecord, CosignatureRecord

log = logging.getLogger(__name__)
PUBLISHED_LOOKBACK = 50  # checkpoints searched for one the witnesses have cosigned


class WitnessTransport(Protocol):
    def add_checkpoint(self, url: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``<url>/add-checkpoint``: (status, body). Raises ``Unavailable``
        when the witness cannot be reached."""
        ...


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], signed_note: str) -> bytes:
    """The c2sp.org/tlog-witness request: ``old N``, proof lines, a blank line, the note."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("\n".join(lines) + "\n\n" + signed_note).encode("utf-8")


@dataclass
class WitnessOutcome:
    size: int
    cosigned: set[str] = field(default_factory=set)  # policy names of witnesses that cosigned
    failures: dict[str, str] = field(default_factory=dict)
    satisfied: bool = False


@dataclass
class PublishOutcome:
    tenant_id: str
    checkpoint: CheckpointRecord
    witnesses: WitnessOutcome | None
    anchor: anchoring.AnchorOutcome | None


@dataclass
class LedgerPublisher:
    uow_factory: UnitOfWorkFactory
    keys: transparency.LogKeys
    origin_prefix: str
    now: Callable[[], datetime]
    policy: Policy | None = None
    transport: WitnessTransport | None = None
    chain: anchoring.AnchorChain | None = None

    def origin(self, tenant_id: str) -> str:
        return transparency.log_origin(self.origin_prefix, tenant_id)

    def _require_tenant(self, tenant_id: str) -> None:
        """Keys are made on first use: never for a tenant that does not exist."""
        with self.uow_factory(read_only=True) as uow:
            get_tenant(uow, tenant_id)

    def public_vkeys(self, tenant_id: str) -> list[str]:
        self._require_tenant(tenant_id)
        origin = self.origin(tenant_id)
        self.keys.ensure(origin, self.now())
        return self.keys.public_vkeys(origin)

    def checkpoint(self, tenant_id: str) -> CheckpointRecord:
        self._require_tenant(tenant_id)
        origin, now = self.origin(tenant_id), self.now()
        self.keys.ensure(origin, now)
        signers = self.keys.signers(origin, now)
        with self.uow_factory() as uow:
            record = transparency.issue_checkpoint(uow, tenant_id, origin, signers, now)
            uow.commit()
        return record

    def witness(self, tenant_id: str) -> WitnessOutcome | None:
        if self.policy is None or self.transport is None or not self.policy.witnesses:
            return None
        with self.uow_factory(read_only=True) as uow:
            checkpoint = transparency.latest_checkpoint(uow, tenant_id)
        outcome = WitnessOutcome(checkpoint.size)
        for name, (verifier, url) in self.policy.witnesses.items():
            if url is None:
                outcome.failures[name] = "no submission URL in the policy"
                continue
            try:
                if self._cosign(checkpoint, verifier, url):
                    outcome.cosigned.add(name)
            except (Unavailable, LedgerError) as exc:
                outcome.failures[name] = exc.message
                log.warning("witness %s: %s", name, exc.message)
        outcome.satisfied = self.policy.satisfied(outcome.cosigned)
        return outcome

    def anchor(self, tenant_id: str) -> anchoring.AnchorOutcome | None:
        self._require_tenant(tenant_id)
        if self.chain is None:
            return None
        return anchoring.anchor_latest(
            self.uow_factory, self.chain, tenant_id, self.origin(tenant_id), self.now
        )

    def publish(self, tenant_id: str, *, anchor: bool = True) -> PublishOutcome:
        checkpoint = self.checkpoint(tenant_id)
        witnesses = self.witness(tenant_id)
        anchored = self.anchor(tenant_id) if anchor else None
        return PublishOutcome(tenant_id, checkpoint, witnesses, anchored)

    def publish_all(self, *, anchor: bool) -> list[PublishOutcome]:
        """Checkpoint (and witness) every log that grew since its last checkpoint; anchor the
        latest checkpoints when ``anchor``. One tenant's failure does not stop the others."""
        with self.uow_factory(read_only=True) as uow:
            grown = []
            for tenant_id in uow.log.tenants():
                latest = uow.log.latest_checkpoint(tenant_id)
                if latest is None or latest.size < uow.log.size(tenant_id) or anchor:
                    grown.append(tenant_id)
        outcomes = []
        for tenant_id in grown:
            try:
                outcomes.append(self.publish(tenant_id, anchor=anchor))
            except (BillingError, LedgerError) as exc:
                log.error("publishing the log of %s failed: %s", tenant_id, exc)
        return outcomes

    def published_checkpoint(self, uow: UnitOfWork, tenant_id: str) -> CheckpointRecord:
        """What the log shows the world: the newest checkpoint whose cosignatures meet the
        witness policy (as a client applying that policy would require), else the newest."""
        recent = uow.log.recent_checkpoints(tenant_id, PUBLISHED_LOOKBACK)
        if not recent:
            raise NotFound("ledger.no_checkpoint", "this log has no checkpoint yet")
        if self.policy is None or not self.policy.witnesses:
            return recent[0]
        names = {v.name: local for local, (v, _url) in self.policy.witnesses.items()}
        for checkpoint in recent:
            cosigners = {
                names.get(c.witness) for c in uow.log.cosignatures(tenant_id, checkpoint.size)
            }
            if self.policy.satisfied(n for n in cosigners if n is not None):
                return checkpoint
        return recent[0]

    def checkpoint_quietly(self, tenant_id: str) -> None:
        """A checkpoint, failures logged: for callers that must not fail because of it."""
        try:
            self.checkpoint(tenant_id)
        except (BillingError, LedgerError, OSError) as exc:
            log.error("checkpoint of %s failed: %s", tenant_id, exc)

    def after_billing_run(self, tenant_id: str) -> None:
        """A billing run's entries get their checkpoint (and cosignatures) at once."""
        try:
            self.publish(tenant_id, anchor=False)
        except (BillingError, LedgerError) as exc:
            log.error("checkpoint after the billing run of %s failed: %s", tenant_id, exc)

    # -- one witness ---------------------------------------------------------------------
    def _cosign(self, checkpoint: CheckpointRecord, verifier: NoteVerifier, url: str) -> bool:
        """Ask one witness to cosign ``checkpoint``; True once its cosignature is stored."""
        tenant_id, size = checkpoint.tenant_id, checkpoint.size
        with self.uow_factory(read_only=True) as uow:
            if any(c.witness == verifier.name for c in uow.log.cosignatures(tenant_id, size)):
                return True
            old = min(uow.log.witness_size(tenant_id, verifier.name), size)
        if self.transport is None:
            raise Unavailable("witness.no_transport", "no witness transport configured")
        for _attempt in range(2):  # a 409 tells the size the witness holds: retry from it
            body = self._request(checkpoint, old)
            status, answer = self.transport.add_checkpoint(url, body)
            if status == 200:
                self._store(checkpoint, verifier, answer)
                return True
            if status == 409:
                old = _conflict_size(answer, size)
                continue
            raise LedgerError(
                "witness.refused", f"{verifier.name} answered {status}: {_short(answer)}"
            )
        raise LedgerError("witness.conflict", f"{verifier.name} holds a size the log cannot prove")

    def _request(self, checkpoint: CheckpointRecord, old: int) -> bytes:
        with self.uow_factory(read_only=True) as uow:
            proof = transparency.consistency_proof(uow, checkpoint.tenant_id, old, checkpoint.size)
        return add_checkpoint_body(old, proof, checkpoint.note)

    def _store(self, checkpoint: CheckpointRecord, verifier: NoteVerifier, answer: bytes) -> None:
        text = answer.decode("utf-8", errors="replace")
        note = parse_note(checkpoint.note + text)
        mine = [
            s
            for s in note.signatures
            if s.name == verifier.name and bytes(s.key_id) == bytes(verifier.key_id)
        ]
        good = [s for s in mine if verifier.verify(note.text, s.signature)]
        if not good:
            raise LedgerError("witness.bad_cosignature", f"{verifier.name}: no valid cosignature")
        signature = good[0]
        record = CosignatureRecord(
            tenant_id=checkpoint.tenant_id,
            size=checkpoint.size,
            witness=verifier.name,
            line=signature.line(),
            cosigned_at=CosignatureV1Verifier.timestamp_of(signature.signature),
            created_at=self.now(),
        )
        with self.uow_factory() as uow:
            uow.log.add_cosignature(record)
            uow.commit()


def _conflict_size(answer: bytes, size: int) -> int:
    text = answer.decode("ascii", errors="replace").strip()
    if not text.isdigit() or int(text) > size:
        raise LedgerError("witness.conflict", f"the witness holds size {text!r}, beyond {size}")
    return int(text)


def _short(answer: bytes) -> str:
    return answer[:200].decode("utf-8", errors="replace").strip() or "(empty body)"
