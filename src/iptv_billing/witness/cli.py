"""``iptv-billing witness``: keygen, vkey, serve.

A refused input (bad config, unsafe key file, ...) is one line ``<code>: <message>`` on stderr
and exit status 2, like the main CLI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from iptv_billing.ledger.note import (
    SIG_COSIGNATURE_V1,
    generate_ed25519_seed,
    is_valid_key_name,
    private_key_text,
)
from iptv_billing.witness.config import (
    WitnessConfigError,
    load_config,
    load_witness_key,
    write_private_key,
)

if TYPE_CHECKING:
    from iptv_billing.witness.service import Witness

witness_app = typer.Typer(
    help="An independent C2SP tlog-witness (c2sp.org/tlog-witness).", no_args_is_help=True
)

KeyFile = Annotated[Path, typer.Option("--key", help="the witness private key file (mode 0600)")]


def _refuse(code: str, message: str) -> NoReturn:
    typer.echo(f"{code}: {message}", err=True)
    raise typer.Exit(2)


def _int_clock(clock: Callable[[], float]) -> Callable[[], int]:
    return lambda: int(clock())


@witness_app.command()
def keygen(
    name: Annotated[str, typer.Option("--name", help="witness key name, e.g. witness.example/w1")],
    out: Annotated[Path, typer.Option("--out", help="private key file to create (0600)")],
) -> None:
    """Create a cosignature/v1 (type 0x04) Ed25519 key; print its vkey."""
    if not is_valid_key_name(name):
        _refuse("key.malformed", f"invalid key name {name!r} (no spaces, no '+')")
    seed = generate_ed25519_seed(os.urandom)
    text = private_key_text(name, SIG_COSIGNATURE_V1, seed)
    try:
        write_private_key(out, text + "\n")
        signer = load_witness_key(out, clock=_int_clock(time.time))
    except WitnessConfigError as exc:
        _refuse(exc.code, exc.message)
    typer.echo(signer.vkey)


@witness_app.command("vkey")
def vkey_command(key: KeyFile) -> None:
    """Print the witness's public vkey."""
    try:
        signer = load_witness_key(key, clock=_int_clock(time.time))
    except WitnessConfigError as exc:
        _refuse(exc.code, exc.message)
    typer.echo(signer.vkey)


def build_witness(
    config: Path, key: Path, state: Path, *, clock: Callable[[], float] = time.time
) -> Witness:
    """The witness from its files; ``WitnessConfigError`` for a bad one."""
    from iptv_billing.witness.service import Witness
    from iptv_billing.witness.state import SqliteWitnessState, WitnessStateError

    settings = load_config(config)
    signer = load_witness_key(key, clock=_int_clock(clock))
    if settings.name is not None and settings.name != signer.name:
        raise WitnessConfigError(
            "config.name_mismatch",
            f"the config names the witness {settings.name!r}, the key is {signer.name!r}",
        )
    try:
        witness_state = SqliteWitnessState(state)
    except WitnessStateError as exc:
        raise WitnessConfigError("state.unusable", str(exc)) from exc
    return Witness(signer, settings.logs, witness_state)


@witness_app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", help="trusted logs: 'log <vkey> [<url>]'")],
    key: KeyFile,
    state: Annotated[Path, typer.Option("--state", help="SQLite state file (created if absent)")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 7380,
    submission_prefix: Annotated[
        str, typer.Option(help="URL prefix of add-checkpoint, e.g. /witness")
    ] = "",
    monitoring_prefix: Annotated[
        str, typer.Option(help="URL prefix of <origin hash>/checkpoint")
    ] = "",
) -> None:
    """Serve add-checkpoint and the monitoring endpoint with uvicorn."""
    import uvicorn

    from iptv_billing.witness.app import create_app

    clock = time.time
    try:
        witness = build_witness(config, key, state, clock=clock)
        app = create_app(
            witness,
            clock=clock,
            submission_prefix=submission_prefix,
            monitoring_prefix=monitoring_prefix,
        )
    except WitnessConfigError as exc:
        _refuse(exc.code, exc.message)
    except ValueError as exc:  # a bad prefix
        _refuse("config.malformed", str(exc))
    origins = ", ".join(witness.origins)
    typer.echo(f"witness {witness.vkey} for {origins} on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def main() -> None:
    witness_app(prog_name="iptv-billing witness")
