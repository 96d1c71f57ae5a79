"""``iptv-billing ledger …`` for operators and ``iptv-billing verify`` for anyone with a receipt."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from iptv_billing.cli_common import DatabaseUrl, TenantId, console, open_runtime_for

if TYPE_CHECKING:
    from iptv_billing.ledger.receipt import ChainLookup

ledger_app = typer.Typer(help="The tenant transparency logs.", no_args_is_help=True)


def _print_json(value: object) -> None:
    console.print_json(json.dumps(value, default=str))


@ledger_app.command("verify")
def ledger_verify(tenant: TenantId, database_url: DatabaseUrl = None) -> None:
    """Recompute the log from its entries and records and compare with the journal, the
    subscriptions, the stored tiles and every signed checkpoint; exits 1 on any difference
    and names the first bad index."""
    from iptv_billing.ledger.note import parse_vkey
    from iptv_billing.services.ledger_audit import verify_log

    runtime = open_runtime_for(database_url)
    keys = [parse_vkey(v) for v in runtime.publisher.public_vkeys(tenant)]
    with runtime.database.uow(read_only=True) as uow:
        audit = verify_log(uow, tenant, keys)
    _print_json(
        {
            "tenant": tenant,
            "entries": audit.entries,
            "checkpoints": audit.checkpoints,
            "consistent": audit.consistent,
            "first_bad_index": audit.first_bad_index,
            "problems": [dataclasses.asdict(p) for p in audit.problems[:100]],
        }
    )
    if not audit.consistent:
        raise typer.Exit(1)


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    tenant: TenantId,
    database_url: DatabaseUrl = None,
    witnesses: Annotated[bool, typer.Option(help="collect witness cosignatures")] = True,
) -> None:
    """Sign a checkpoint of the log as it is now (and ask the witnesses to cosign it)."""
    from iptv_billing.services import transparency

    runtime = open_runtime_for(database_url)
    publisher = runtime.publisher
    checkpoint = publisher.checkpoint(tenant)
    outcome = publisher.witness(tenant) if witnesses else None
    with runtime.database.uow(read_only=True) as uow:
        note = transparency.cosigned_note(uow, checkpoint)
    print(note, end="")
    if outcome is not None:
        state = "met" if outcome.satisfied else "NOT met"
        console.print(f"witnesses: {sorted(outcome.cosigned)} cosigned; quorum {state}")
        for name, reason in outcome.failures.items():
            console.print(f"[yellow]{name}[/yellow]: {reason}")
        if not outcome.satisfied:  # signed, but not yet trustworthy: let scripts notice
            raise typer.Exit(1)


@ledger_app.command("prove")
def ledger_prove(
    tenant: TenantId,
    index: Annotated[int, typer.Option(min=0, help="entry index")],
    size: Annotated[int | None, typer.Option(min=1, help="checkpoint size; default latest")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a c2sp.org/tlog-proof of one entry against a signed checkpoint."""
    from iptv_billing.domain.errors import NotFound
    from iptv_billing.ledger.proof_file import format_tlog_proof
    from iptv_billing.services import transparency

    runtime = open_runtime_for(database_url)
    with runtime.database.uow(read_only=True) as uow:
        if size is None:
            checkpoint = transparency.latest_checkpoint(uow, tenant)
        else:
            found = uow.log.checkpoint(tenant, size)
            if found is None:
                raise NotFound("ledger.no_checkpoint", f"no checkpoint at size {size}")
            checkpoint = found
        proof = transparency.prove_entry(uow, checkpoint, index)
    print(format_tlog_proof(proof), end="")


@ledger_app.command("consistency")
def ledger_consistency(
    tenant: TenantId,
    old: Annotated[int, typer.Option(min=0, help="the older tree size")],
    new: Annotated[int | None, typer.Option(min=0, help="the newer size; default current")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the RFC 9162 consistency proof from OLD to NEW, one base64 hash a line."""
    from iptv_billing.services import transparency

    runtime = open_runtime_for(database_url)
    with runtime.database.uow(read_only=True) as uow:
        size = uow.log.size(tenant) if new is None else new
        proof = transparency.consistency_proof(uow, tenant, old, size)
        root = transparency.root_at(uow, tenant, size)
    print(f"old {old}\nnew {size}\nroot {base64.b64encode(root).decode()}")
    for node in proof:
        print(base64.b64encode(node).decode())


@ledger_app.command("anchor")
def ledger_anchor(tenant: TenantId, database_url: DatabaseUrl = None) -> None:
    """Anchor the latest checkpoint on the configured chain (exit 1 if the chain is down)."""
    runtime = open_runtime_for(database_url)
    outcome = runtime.publisher.anchor(tenant)
    if outcome is None:
        console.print("anchoring is switched off (IPTV_BILLING_ANCHORING=false)")
        raise typer.Exit(1)
    anchor = outcome.anchor
    _print_json(
        {
            "tenant": tenant,
            "status": outcome.status,
            "detail": outcome.detail,
            "anchor": None
            if anchor is None
            else dataclasses.asdict(anchor)
            | {"root": anchor.root.hex(), "anchored_at": anchor.anchored_at.isoformat()},
        }
    )
    if outcome.status == "unavailable":
        raise typer.Exit(1)


@ledger_app.command("keys")
def ledger_keys(tenant: TenantId, database_url: DatabaseUrl = None) -> None:
    """Print the log's public keys (vkeys), newest last: what verifiers need."""
    runtime = open_runtime_for(database_url)
    for vkey in runtime.publisher.public_vkeys(tenant):
        print(vkey)


@ledger_app.command("rotate-key")
def ledger_rotate_key(
    tenant: TenantId,
    overlap_days: Annotated[int, typer.Option(min=0, help="days the old key keeps signing")] = 30,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a new signing key; the old one co-signs checkpoints during the overlap."""
    runtime = open_runtime_for(database_url)
    publisher = runtime.publisher
    origin = publisher.origin(tenant)
    publisher.keys.ensure(origin, publisher.now())
    signer = publisher.keys.rotate(origin, publisher.now(), timedelta(days=overlap_days))
    console.print(f"new key {signer.key_id.hex()}; public keys:")
    for vkey in publisher.keys.public_vkeys(origin):
        print(vkey)


@ledger_app.command("receipt")
def ledger_receipt(
    tenant: TenantId,
    invoice: Annotated[str, typer.Option(help="invoice id (inv_…)")],
    out: Annotated[Path | None, typer.Option(help="file to write; default stdout")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the receipt of an invoice (JSON): what `iptv-billing verify` checks."""
    from iptv_billing.services.receipts import invoice_receipt

    runtime = open_runtime_for(database_url)
    publisher = runtime.publisher
    vkeys = publisher.public_vkeys(tenant)
    with runtime.database.uow(read_only=True) as uow:
        receipt = invoice_receipt(uow, tenant, invoice, publisher.origin(tenant), vkeys)
    text = json.dumps(receipt, indent=2) + "\n"
    if out is None:
        print(text, end="")
    else:
        out.write_text(text, encoding="utf-8")


def verify_receipt_command(
    receipt: Annotated[Path, typer.Argument(help="the receipt (JSON)", exists=True)],
    key: Annotated[list[str], typer.Option("--key", help="the log's public key (vkey)")],
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="a witness public key (vkey)")
    ] = None,
    quorum: Annotated[
        int | None, typer.Option(min=0, help="cosignatures required; default all witnesses")
    ] = None,
    chain_url: Annotated[
        str | None, typer.Option(help="a JSON-RPC node to check the anchor on; default offline")
    ] = None,
    contract: Annotated[str | None, typer.Option(help="the anchor contract's address")] = None,
) -> None:
    """Check a receipt offline: records, salts, inclusion proofs, checkpoint signature,
    witness cosignatures and anchor. Prints each check; exits 0 only if all hold."""
    from iptv_billing.ledger.receipt import verify_receipt

    lookup: ChainLookup | None = None
    if chain_url is not None:
        lookup = _chain_lookup(chain_url, contract, receipt.read_bytes())
    report = verify_receipt(receipt.read_bytes(), key, witness or (), quorum, lookup)
    for check in report.checks:
        mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    verdict = "[green]receipt verified[/green]" if report.ok else "[red]receipt NOT verified[/red]"
    console.print(verdict)
    if not report.ok:
        raise typer.Exit(1)


def _chain_lookup(url: str, contract: str | None, data: bytes) -> ChainLookup | None:
    """A reader of the anchor contract the receipt names (or ``contract``); None when there
    is none to read, and the receipt's own anchor check then says why."""
    from iptv_billing.adapters.chain.anchor import JsonRpcChain

    address = contract
    try:
        receipt = json.loads(data)
    except ValueError:
        receipt = None
    if address is None and isinstance(receipt, dict) and isinstance(receipt.get("anchor"), dict):
        address = receipt["anchor"].get("contract")
    if not isinstance(address, str):
        return None
    chain = JsonRpcChain(url, None, address, 10.0)
    return chain.root_at
