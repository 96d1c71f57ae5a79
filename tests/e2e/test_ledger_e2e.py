"""The verifiable ledger end to end, with real processes only, on SQLite and PostgreSQL.

Per engine, a module fixture builds the world through the CLI (``python -m iptv_billing``) in a
fresh database, with every ``IPTV_BILLING_*`` setting pointing into a temporary directory:

1. ``demo`` (a small operator, a few weeks of billing) while two witness keys are generated;
2. ``ledger keys`` → the tenant's log vkey; two ``witness serve`` processes trusting it and
   ``serve`` (the API, background jobs off) start side by side;
3. ``ledger checkpoint`` (both witnesses of a 2-of-2 policy cosign); the log then grows by a
   wallet top-up over HTTP and a second ``ledger checkpoint`` makes the witnesses check a real
   consistency proof;
4. ``ledger anchor`` twice against anvil (``anchored``, then ``already_anchored``);
5. ``ledger receipt`` for a paid invoice and ``verify`` with both witness keys and the chain.

The tests then check those outcomes, the public tiled log over HTTP as an independent client
would (the root recomputed from the served tiles, entry bundles against the leaves), the API's
receipt, the 404s of malformed tile paths and unknown logs, and finally that altering one stored
record is caught by ``ledger verify`` and by ``verify`` of a fresh receipt (the alteration is
undone afterwards, so the tests do not depend on their order).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from web3 import HTTPProvider, Web3

from anvil_fixture import ANVIL_CHAIN_ID, ANVIL_KEYS, anvil_url  # noqa: F401  (fixture)
from iptv_billing.ledger import merkle, tiles
from iptv_billing.ledger.checkpoint import SignedCheckpoint, open_checkpoint
from iptv_billing.ledger.entries import commitment, encode_record
from iptv_billing.ledger.note import parse_note, parse_vkey
from iptv_billing.ledger.policy import Policy, parse_policy
from iptv_billing.ledger.receipt import verify_receipt

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0
ORIGIN_PREFIX = "billing.e2e.example/log"
DEMO = ("--subscribers", "12", "--days", "35", "--seed", "7")
PROBLEM = "application/problem+json"
# The anchor contract's read side, written out by hand: the chain is read without our adapter.
ANCHOR_ABI: list[dict[str, Any]] = [
    {
        "name": "root_at_size",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "origin", "type": "string"}, {"name": "size", "type": "uint64"}],
        "outputs": [{"name": "", "type": "bytes32"}],
    },
    {
        "name": "latest",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "origin", "type": "string"}],
        "outputs": [
            {"name": "", "type": "uint64"},
            {"name": "", "type": "bytes32"},
            {"name": "", "type": "uint256"},
        ],
    },
]


# --------------------------------------------------------------------------- processes


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


@dataclass
class Service:
    """A long-running process (a witness or the API) answering ``GET /healthz``."""

    name: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_service(
    stack: contextlib.ExitStack, name: str, args: Sequence[str], env: dict[str, str], cwd: Path
) -> Service:
    port = args[args.index("--port") + 1]
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "iptv_billing", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    service = Service(name, f"http://{HOST}:{port}", log, process)
    stack.callback(service.stop)
    return service


def wait_until_ready(services: Sequence[Service]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(services)
    with httpx.Client(trust_env=False, timeout=2.0) as probe:
        while waiting:
            for service in list(waiting):
                if service.process.poll() is not None:
                    pytest.fail(
                        f"{service.name} exited ({service.process.returncode}):\n"
                        f"{_tail(service.log)}",
                        pytrace=False,
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if probe.get(f"{service.url}/healthz").status_code == 200:
                        waiting.remove(service)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(s.name for s in waiting)
                logs = "\n".join(f"--- {s.name}\n{_tail(s.log)}" for s in waiting)
                pytest.fail(f"not ready after {START_TIMEOUT}s: {names}\n{logs}", pytrace=False)
            time.sleep(0.05)


def base_env() -> dict[str, str]:
    """The caller's environment without any IPTV_BILLING_* setting of its own; wide, plain
    console output (rich would wrap long lines at 80 columns)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPTV_BILLING_")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"})
    return env


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    engine: str
    directory: Path
    database_url: str
    env: dict[str, str]
    anvil: str
    tenant: str = ""
    api_key: str = ""
    origin: str = ""
    log_vkey: str = ""
    witness_vkeys: list[str] = field(default_factory=list)
    witnesses: list[Service] = field(default_factory=list)
    api: Service | None = None
    policy_text: str = ""
    checkpoint_outputs: list[str] = field(default_factory=list)
    anchor_outputs: list[dict[str, Any]] = field(default_factory=list)
    invoice_id: str = ""
    invoice_total: int = 0
    finalization_index: int = -1
    receipt_path: Path = field(default_factory=Path)
    verify_output: str = ""

    def cli(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m iptv_billing ARGS`` in the world's directory; check its exit code."""
        result = subprocess.run(
            [sys.executable, "-m", "iptv_billing", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.directory,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert result.returncode == expect, (
            f"iptv-billing {' '.join(args)} exited {result.returncode}, expected {expect}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        return result

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return self.api.url

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def policy(self) -> Policy:
        return parse_policy(self.policy_text)

    def open(self, note: str) -> SignedCheckpoint:
        """Open a checkpoint as a verifier holding the policy would: log signature and the
        2-of-2 witness quorum."""
        return self.policy().open_checkpoint(note, extra_logs=[parse_vkey(self.log_vkey)])

    def database(self) -> sa.Engine:
        return sa.create_engine(self.database_url)


def checkpoint_note(output: str) -> str:
    """The signed note ``ledger checkpoint`` printed before its ``witnesses:`` summary."""
    marker = "\nwitnesses: "
    assert marker in output, output
    return output[: output.index(marker) + 1]


def _make_witness(world: World, n: int) -> tuple[str, Path]:
    key = world.directory / f"witness{n}.key"
    out = world.cli("witness", "keygen", "--name", f"witness{n}.e2e.example", "--out", str(key))
    return out.stdout.strip(), key


def build_world(world: World, stack: contextlib.ExitStack, free_port: Callable[[], int]) -> None:
    with ThreadPoolExecutor(3) as pool:
        demo = pool.submit(world.cli, "demo", *DEMO)
        made = [pool.submit(_make_witness, world, n) for n in (1, 2)]
        demo_out = demo.result().stdout
        witness_keys = [m.result() for m in made]
    found = re.search(r"Demo tenant\s+(ten_[A-Za-z0-9]+)\s+admin API key:\s+(\S+)", demo_out)
    assert found is not None, demo_out
    world.tenant = found.group(1)
    assert found.group(2) == world.api_key
    world.origin = f"{ORIGIN_PREFIX}/{world.tenant}"

    keys = world.cli("ledger", "keys", "--tenant", world.tenant).stdout.split()
    assert len(keys) == 1, keys
    assert keys[0].startswith(f"{world.origin}+"), keys
    world.log_vkey = keys[0]

    *witness_ports, api_port = (free_port() for _ in range(3))
    world.witness_vkeys = [vkey for vkey, _key in witness_keys]
    lines = []
    for n, ((vkey, key), port) in enumerate(zip(witness_keys, witness_ports, strict=True), 1):
        assert vkey.startswith(f"witness{n}.e2e.example+"), vkey
        config = world.directory / f"witness{n}.conf"
        config.write_text(f"name witness{n}.e2e.example\nlog {world.log_vkey}\n")
        args = ["witness", "serve", "--config", str(config), "--key", str(key)]
        args += ["--state", str(world.directory / f"witness{n}.state"), "--host", HOST]
        world.witnesses.append(
            start_service(
                stack, f"witness{n}", [*args, "--port", str(port)], world.env, world.directory
            )
        )
        lines.append(f"witness w{n} {vkey} http://{HOST}:{port}")
    # A policy for the log's operator names no log: the log is the one being published.
    world.policy_text = "\n".join([*lines, "group both 2 w1 w2", "quorum both"]) + "\n"
    policy_file = world.directory / "witness-policy.txt"
    policy_file.write_text(world.policy_text)
    world.env["IPTV_BILLING_WITNESS_POLICY"] = str(policy_file)
    api_args = ["serve", "--host", HOST, "--port", str(api_port)]
    world.api = start_service(stack, "api", api_args, world.env, world.directory)
    wait_until_ready([*world.witnesses, world.api])

    world.checkpoint_outputs.append(
        world.cli("ledger", "checkpoint", "--tenant", world.tenant).stdout
    )
    _grow_log(world)
    world.checkpoint_outputs.append(
        world.cli("ledger", "checkpoint", "--tenant", world.tenant).stdout
    )

    for _ in range(2):
        out = world.cli("ledger", "anchor", "--tenant", world.tenant).stdout
        world.anchor_outputs.append(json.loads(out))

    _pick_invoice(world)
    world.receipt_path = world.directory / "receipt.json"
    world.cli(
        "ledger",
        "receipt",
        "--tenant",
        world.tenant,
        "--invoice",
        world.invoice_id,
        "--out",
        str(world.receipt_path),
    )
    world.verify_output = verify_cli(world, world.receipt_path, expect=0)
    for service in [*world.witnesses, world.api]:
        assert service is not None
        assert not server_errors(service.log_text()), service.log_text()


def _grow_log(world: World) -> None:
    """A wallet top-up over HTTP: one more journal entry, so one more log entry."""
    with httpx.Client(base_url=world.api_url, timeout=30.0, trust_env=False) as http:
        listed = http.get("/v1/customers", params={"limit": 1}, headers=world.auth())
        assert listed.status_code == 200, listed.text
        customer = listed.json()["data"][0]
        body = {"amount": {"amount": "12.34", "currency": customer["currency"]}}
        headers = {**world.auth(), "Idempotency-Key": f"ledger-e2e-{secrets.token_hex(8)}"}
        topped = http.post(
            f"/v1/customers/{customer['id']}/wallet/top-ups", json=body, headers=headers
        )
        assert topped.status_code == 201, topped.text


def _pick_invoice(world: World) -> None:
    """The first paid (or finalized) invoice with a positive total, and the index of its
    finalization entry in the log (read straight from the database)."""
    engine = world.database()
    try:
        with engine.connect() as db:
            invoice = db.execute(
                sa.text(
                    "SELECT id, total_minor FROM invoices WHERE tenant_id = :t "
                    "AND status IN ('paid', 'finalized') AND total_minor > 0 ORDER BY id"
                ),
                {"t": world.tenant},
            ).first()
            assert invoice is not None, "the demo made no paid or finalized invoice"
            rows = db.execute(
                sa.text(
                    "SELECT idx, record FROM log_entries WHERE tenant_id = :t "
                    "AND about_id = :i ORDER BY idx"
                ),
                {"t": world.tenant, "i": invoice.id},
            ).all()
    finally:
        engine.dispose()
    world.invoice_id, world.invoice_total = str(invoice.id), int(invoice.total_minor)
    finalizations = [r.idx for r in rows if json.loads(r.record).get("kind") == "invoice_finalized"]
    assert len(finalizations) == 1, rows
    world.finalization_index = int(finalizations[0])


def verify_cli(world: World, receipt: Path, expect: int) -> str:
    args = ["verify", str(receipt), "--key", world.log_vkey]
    for vkey in world.witness_vkeys:
        args += ["--witness", vkey]
    args += ["--chain-url", world.anvil]
    return world.cli(*args, expect=expect).stdout


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
    fresh_database: Callable[[str, Path], contextlib.AbstractContextManager[str]],
    anvil_url: str,  # noqa: F811
) -> Iterator[World]:
    engine: str = request.param
    directory = tmp_path_factory.mktemp(f"ledger-{engine}")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(fresh_database(engine, directory))
        api_key = "ib_live_" + secrets.token_urlsafe(32)
        env = base_env() | {
            "IPTV_BILLING_DATABASE_URL": database_url,
            "IPTV_BILLING_KEY_DIR": str(directory / "log-keys"),
            "IPTV_BILLING_LOG_ORIGIN_PREFIX": ORIGIN_PREFIX,
            "IPTV_BILLING_DEMO_API_KEY": api_key,
            "IPTV_BILLING_CHAIN_URL": anvil_url,
            "IPTV_BILLING_CHAIN_PRIVATE_KEY": ANVIL_KEYS[0],
            "IPTV_BILLING_CHAIN_STATE": str(directory / "chain.db"),
            "IPTV_BILLING_ANCHORING": "true",
            "IPTV_BILLING_JOB_INTERVAL_SECONDS": "0",
            "IPTV_BILLING_CHECKPOINT_INTERVAL_SECONDS": "0",
            "IPTV_BILLING_ANCHOR_INTERVAL_SECONDS": "0",
            "IPTV_BILLING_LOG_LEVEL": "warning",
        }
        world = World(engine, directory, database_url, env, anvil_url, api_key=api_key)
        build_world(world, stack, free_port)
        yield world


@pytest.fixture
def http(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.api_url, timeout=30.0, trust_env=False) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test fails when a server process logged an unhandled error (a 500) during it."""
    if "world" not in request.fixturenames:
        yield
        return
    world: World = request.getfixturevalue("world")
    services = [*world.witnesses, *([world.api] if world.api else [])]
    seen = {s.name: len(s.log_text()) for s in services}
    yield
    for service in services:
        new = service.log_text()[seen[service.name] :]
        assert not server_errors(new), f"{service.name} failed a request:\n{new}"


def server_errors(log: str) -> list[str]:
    """The lines of a server log that tell of an unhandled error (a 500)."""
    return [
        line
        for line in log.splitlines()
        if line.startswith("unhandled error on ") or "Traceback" in line or '" 500 ' in line
    ]


# --------------------------------------------------------------------------- helpers


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of leaf hashes, written out independently of the project."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:split]) + mth(leaves[split:])).digest()


class TiledClient:
    """Reads a tenant's log as any c2sp.org/tlog-tiles client: only the public URLs."""

    def __init__(self, http: httpx.Client, tenant: str, size: int) -> None:
        self.http = http
        self.prefix = f"/ledger/{tenant}"
        self.size = size
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def width(self, level: int, index: int) -> int:
        if index < tiles.full_tile_count(level, self.size):
            return tiles.TILE_WIDTH
        return tiles.tile_width(level, self.size)

    def tile(self, level: int, index: int) -> list[bytes]:
        if (level, index) not in self._tiles:
            width = self.width(level, index)
            response = self.http.get(f"{self.prefix}/{tiles.tile_path(level, index, width)}")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/octet-stream"
            assert len(response.content) == merkle.HASH_SIZE * width
            data = response.content
            self._tiles[level, index] = [data[i : i + 32] for i in range(0, len(data), 32)]
        return self._tiles[level, index]

    def node(self, coordinate: merkle.Coordinate) -> bytes:
        tile_level, tile_index, height, index = tiles.locate(coordinate)
        base = self.tile(tile_level, tile_index)
        return base[index] if height == 0 else tiles.subtree_from_base(base, height, index)

    def root(self) -> bytes:
        return merkle.fold_range([self.node(c) for c in merkle.root_coordinates(self.size)])

    def leaves(self) -> list[bytes]:
        count = -(-self.size // tiles.TILE_WIDTH)
        return [h for index in range(count) for h in self.tile(0, index)]

    def commitments(self) -> list[bytes]:
        out: list[bytes] = []
        for index in range(-(-self.size // tiles.TILE_WIDTH)):
            width = self.width(0, index)
            response = self.http.get(f"{self.prefix}/{tiles.entries_path(index, width)}")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/octet-stream"
            assert len(response.content) == (2 + 32) * width  # uint16 length + commitment
            bundle = tiles.parse_entry_bundle(response.content)
            assert len(bundle) == width
            assert all(len(c) == 32 for c in bundle)
            out.extend(bundle)
        return out


def checks_of(output: str) -> dict[str, tuple[bool, str]]:
    """``verify``'s lines ``✓ name: detail`` / ``✗ name: detail`` by check name."""
    found: dict[str, tuple[bool, str]] = {}
    for line in output.splitlines():
        mark, _, rest = line.partition(" ")
        if mark in ("✓", "✗"):
            name, _, detail = rest.partition(": ")
            found[name] = (mark == "✓", detail)
    return found


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == PROBLEM, response.headers
    body = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body


# --------------------------------------------------------------------------- tests


def test_both_witnesses_cosign_every_checkpoint(world: World) -> None:
    first, second = world.checkpoint_outputs
    notes = [checkpoint_note(first), checkpoint_note(second)]
    for output in (first, second):
        assert "witnesses: ['w1', 'w2'] cosigned; quorum met" in output, output
    opened = [world.open(note) for note in notes]
    sizes = [o.checkpoint.size for o in opened]
    assert 0 < sizes[0] < sizes[1], sizes  # the top-up grew the log
    for signed in opened:
        assert signed.checkpoint.origin == world.origin
        assert len(signed.note.signatures) == 3  # the log and the two witnesses
        assert sorted(signed.cosignatures) == ["witness1.e2e.example", "witness2.e2e.example"]

    # Each witness remembers the newest size it cosigned (its monitoring endpoint).
    origin_hash = hashlib.sha256(world.origin.encode()).hexdigest()
    log_key = parse_vkey(world.log_vkey)
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for service, vkey in zip(world.witnesses, world.witness_vkeys, strict=True):
            response = client.get(f"{service.url}/{origin_hash}/checkpoint")
            assert response.status_code == 200, response.text
            held = open_checkpoint(response.text, [log_key], [parse_vkey(vkey)])
            assert held.checkpoint == opened[1].checkpoint
            assert list(held.cosignatures) == [vkey.split("+")[0]]


def test_anchor_on_anvil_once(world: World) -> None:
    first, again = world.anchor_outputs
    latest = world.open(checkpoint_note(world.checkpoint_outputs[1])).checkpoint
    assert first["status"] == "anchored", first
    assert again["status"] == "already_anchored", again
    assert again["anchor"] == first["anchor"]
    anchor = first["anchor"]
    assert (anchor["size"], anchor["root"]) == (latest.size, latest.root.hex())
    assert anchor["chain_id"] == ANVIL_CHAIN_ID

    # Read the chain directly: the transaction succeeded and the contract holds that root.
    w3 = Web3(HTTPProvider(world.anvil))
    receipt = w3.eth.get_transaction_receipt(anchor["tx_hash"])
    assert receipt["status"] == 1
    assert receipt["blockNumber"] == anchor["block_number"]
    address = Web3.to_checksum_address(anchor["contract"])
    contract = w3.eth.contract(address=address, abi=ANCHOR_ABI)
    assert contract.functions.root_at_size(world.origin, latest.size).call() == latest.root
    size, root, count = contract.functions.latest(world.origin).call()
    assert (size, root, count) == (latest.size, latest.root, 1)  # anchored once, not twice


def test_receipt_verifies_offline_and_on_chain(world: World) -> None:
    receipt = json.loads(world.receipt_path.read_text())
    assert receipt["invoice"]["id"] == world.invoice_id
    assert receipt["invoice"]["total_minor"] == world.invoice_total > 0
    indexes = [e["index"] for e in receipt["entries"]]
    assert world.finalization_index in indexes
    assert receipt["anchor"]["tx_hash"] == world.anchor_outputs[0]["anchor"]["tx_hash"]

    checks = checks_of(world.verify_output)
    assert all(ok for ok, _detail in checks.values()), world.verify_output
    assert "receipt verified" in world.verify_output
    expected = {"checkpoint.signature", "checkpoint.cosignatures", "invoice.charge"}
    expected |= {f"entry[{i}].inclusion" for i in range(len(indexes))} | {"anchor.on_chain"}
    assert set(checks) == expected, world.verify_output
    assert checks["checkpoint.cosignatures"][1].startswith("2 of 2 witnesses cosigned")
    assert f"says {world.invoice_total}" in checks["invoice.charge"][1]
    assert "holds this root" in checks["anchor.on_chain"][1]


def test_served_log_is_the_checkpointed_log(world: World, http: httpx.Client) -> None:
    response = http.get(f"/ledger/{world.tenant}/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == checkpoint_note(world.checkpoint_outputs[1])
    assert len(parse_note(response.text).signatures) == 3
    checkpoint = world.open(response.text).checkpoint

    client = TiledClient(http, world.tenant, checkpoint.size)
    assert client.root() == checkpoint.root
    leaves = client.leaves()
    assert len(leaves) == checkpoint.size
    assert mth(leaves) == checkpoint.root
    commitments = client.commitments()
    assert [merkle.leaf_hash(c) for c in commitments] == leaves

    # The receipt's records and salts are exactly what the public log commits to.
    receipt = json.loads(world.receipt_path.read_text())
    for entry in receipt["entries"]:
        salt = base64.b64decode(entry["salt"])
        assert commitment(salt, encode_record(entry["record"])) == commitments[entry["index"]]


def test_api_receipt_equals_the_cli_receipt(world: World, http: httpx.Client) -> None:
    path = f"/v1/invoices/{world.invoice_id}/receipt"
    assert_problem(http.get(path), 401, "auth.missing_key")
    response = http.get(path, headers=world.auth())
    assert response.status_code == 200, response.text
    served = response.json()
    assert served == json.loads(world.receipt_path.read_text())
    saved = world.directory / "receipt-api.json"
    saved.write_text(response.text)
    output = verify_cli(world, saved, expect=0)
    assert checks_of(output) == checks_of(world.verify_output)

    state = http.get("/v1/ledger", headers=world.auth())
    assert state.status_code == 200, state.text
    ledger = state.json()
    assert ledger["origin"] == world.origin
    assert ledger["keys"] == [world.log_vkey]
    assert ledger["checkpoint"] == checkpoint_note(world.checkpoint_outputs[1])
    assert ledger["anchor"]["tx_hash"] == world.anchor_outputs[0]["anchor"]["tx_hash"]


BAD_TILE_PATHS = (
    "tile/0/000.p/0",  # width 0
    "tile/0/000.p/256",  # a full tile is not a partial one
    "tile/0/000.p/038",  # leading zero
    "tile/00/000",
    "tile/-1/000",
    "tile/64/000",  # beyond the deepest level
    "tile/0/00",
    "tile/0/x000/000",  # redundant leading group
    "tile/0/x999/x999/x999/x999/x999/x999/x999/999",  # beyond uint64
    "tile/0/000.p/",
    "tile/0/000.p",
    "tile/0//000",
    "tile//000",
    "tile/abc",
    "tile/entries",
    "tile/entries/000.p/x",
    "tile/0/%00",
    "tile/%E2%80%94/000",
    "tile/0/000.p/1/extra",
    "tile/0/000",  # well formed, but the log has fewer than 256 entries
    "tile/1/000.p/1",  # no level-1 tile yet either
    "tile/0/001.p/1",
)


def test_bad_tile_paths_and_unknown_logs_are_404(world: World, http: httpx.Client) -> None:
    for path in BAD_TILE_PATHS:
        assert_problem(http.get(f"/ledger/{world.tenant}/{path}"), 404, "tile.not_found")
    size = world.open(checkpoint_note(world.checkpoint_outputs[1])).checkpoint.size
    beyond = tiles.tile_path(0, 0, size + 1)
    assert_problem(http.get(f"/ledger/{world.tenant}/{beyond}"), 404, "tile.not_found")
    beyond = tiles.entries_path(0, size + 1)
    assert_problem(http.get(f"/ledger/{world.tenant}/{beyond}"), 404, "tile.not_found")

    for tenant in ("ten_00000000000000000000", "ten_" + "z" * 60, "nobody"):
        for suffix in ("checkpoint", "tile/0/000.p/1", "tile/entries/000.p/1", "tile/bad"):
            assert_problem(http.get(f"/ledger/{tenant}/{suffix}"), 404, "ledger.not_found")
    for tenant in ("ten-with-dash", "t" * 65, "%F0%9F%92%A9"):
        response = http.get(f"/ledger/{tenant}/checkpoint")
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == PROBLEM


@contextlib.contextmanager
def altered_record(world: World, index: int, delta: int) -> Iterator[None]:
    """As an attacker with database access: switch the append-only trigger off and add
    ``delta`` to the receivable amount in log entry ``index``'s record. Undone afterwards."""
    engine = world.database()
    key = {"t": world.tenant, "i": index}
    select = sa.text("SELECT record FROM log_entries WHERE tenant_id = :t AND idx = :i")
    update = sa.text("UPDATE log_entries SET record = :r WHERE tenant_id = :t AND idx = :i")
    try:
        with engine.begin() as db:
            original = str(db.execute(select, key).scalar_one())
        # The trigger does hold against an ordinary UPDATE.
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as db:
            db.execute(update, {**key, "r": original})
        record = json.loads(original)
        receivable = [p for p in record["postings"] if p["account"].startswith("receivable:")]
        assert len(receivable) == 1, record
        posting = receivable[0]
        amount = "minor" if "minor" in posting else "amount"  # the field's name in either format
        posting[amount] += delta
        forged = encode_record(record).decode()
        with engine.begin() as db:
            restore = _drop_append_only_trigger(world.engine, db)
            db.execute(update, {**key, "r": forged})
        try:
            yield
        finally:
            with engine.begin() as db:
                db.execute(update, {**key, "r": original})
                db.execute(sa.text(restore))
    finally:
        engine.dispose()


def _drop_append_only_trigger(engine: str, db: sa.Connection) -> str:
    """Drop the update trigger of log_entries; return the statement that recreates it."""
    if engine == "sqlite":
        name = "log_entries_no_update"
        found = sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n")
        ddl = str(db.execute(found, {"n": name}).scalar_one())
        db.execute(sa.text(f"DROP TRIGGER {name}"))
        return ddl
    name = "log_entries_append_only"
    found = sa.text(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgname = :n AND tgrelid = 'log_entries'::regclass"
    )
    ddl = str(db.execute(found, {"n": name}).scalar_one())
    db.execute(sa.text(f"DROP TRIGGER {name} ON log_entries"))
    return ddl


def test_an_altered_record_is_caught(world: World, http: httpx.Client) -> None:
    index = world.finalization_index
    size = world.open(checkpoint_note(world.checkpoint_outputs[1])).checkpoint.size
    clean = json.loads(world.cli("ledger", "verify", "--tenant", world.tenant).stdout)
    assert clean["consistent"] is True, clean
    assert (clean["entries"], clean["checkpoints"], clean["first_bad_index"]) == (size, 2, None)

    with altered_record(world, index, delta=100):
        audit = world.cli("ledger", "verify", "--tenant", world.tenant, expect=1).stdout
        report = json.loads(audit)
        assert report["consistent"] is False
        assert report["first_bad_index"] == index, report
        assert {"index": index, "check": "record_changed"} in [
            {"index": p["index"], "check": p["check"]} for p in report["problems"]
        ], report

        tampered = world.directory / "receipt-tampered.json"
        world.cli(
            "ledger",
            "receipt",
            "--tenant",
            world.tenant,
            "--invoice",
            world.invoice_id,
            "--out",
            str(tampered),
        )
        receipt = json.loads(tampered.read_text())
        position = [e["index"] for e in receipt["entries"]].index(index)
        output = verify_cli(world, tampered, expect=1)
        checks = checks_of(output)
        assert "receipt NOT verified" in output
        ok, detail = checks[f"entry[{position}].inclusion"]
        assert not ok, output
        assert detail.startswith(f"entry {index}:"), output
        failing = {name for name, (ok, _detail) in checks.items() if not ok}
        assert failing == {f"entry[{position}].inclusion", "invoice.charge"}, output
        # The signatures and the anchor still hold: only the altered record is refused.
        for name in ("checkpoint.signature", "checkpoint.cosignatures", "anchor.on_chain"):
            assert checks[name][0], output

        # The API hands out the same forged receipt, which fails the same way.
        served = http.get(f"/v1/invoices/{world.invoice_id}/receipt", headers=world.auth())
        assert served.status_code == 200, served.text
        assert served.json() == receipt
        report_api = verify_receipt(
            served.content, [world.log_vkey], world.witness_vkeys, None, None
        )
        assert not report_api.ok
        assert {c.name for c in report_api.failures()} == failing
