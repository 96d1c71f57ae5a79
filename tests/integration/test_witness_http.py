"""The witness over real HTTP: ``python -m iptv_billing.witness serve`` in a subprocess, driven
with httpx; then killed (SIGKILL) and restarted on the same state file. Also the CLI (keygen,
vkey, refusals), the configuration file, and the app's routing in process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from iptv_billing.ledger.checkpoint import Checkpoint, format_checkpoint, open_checkpoint
from iptv_billing.ledger.merkle import MemoryTree, leaf_hash
from iptv_billing.ledger.note import (
    SIG_ED25519,
    Ed25519Signer,
    parse_note,
    parse_vkey,
    private_key_text,
    sign_note,
)
from iptv_billing.witness.app import create_app
from iptv_billing.witness.cli import build_witness, witness_app
from iptv_billing.witness.config import WitnessConfigError, load_witness_key, parse_config
from iptv_billing.witness.service import (
    format_add_checkpoint_request,
    parse_cosignature_response,
)
from iptv_billing.witness.state import origin_hash

HOST = "127.0.0.1"
ORIGIN = "billing.example/log/ten_http"
WITNESS_NAME = "witness.example/http"
LOG_KEY = Ed25519Signer.from_seed(ORIGIN, bytes([11]) * 32)
TREE = MemoryTree(leaf_hash(b"leaf-%d" % i) for i in range(64))
START_TIMEOUT = 30.0
runner = CliRunner()


def _signed(size: int, tree: MemoryTree = TREE, signer: Ed25519Signer = LOG_KEY) -> str:
    return sign_note(format_checkpoint(Checkpoint(signer.name, size, tree.root(size))), [signer])


def _body(old: int, size: int) -> bytes:
    proof = TREE.consistency_proof(old, size) if old else []
    return format_add_checkpoint_request(old, proof, _signed(size))


@dataclass
class WitnessFiles:
    directory: Path
    config: Path
    key: Path
    state: Path
    vkey: str


@pytest.fixture
def files(tmp_path: Path) -> WitnessFiles:
    key = tmp_path / "witness.key"
    made = runner.invoke(witness_app, ["keygen", "--name", WITNESS_NAME, "--out", str(key)])
    assert made.exit_code == 0, made.output
    config = tmp_path / "witness.conf"
    config.write_text(
        f"# trusted logs\nname {WITNESS_NAME}\nlog {LOG_KEY.vkey} https://billing.example/log\n"
    )
    return WitnessFiles(tmp_path, config, key, tmp_path / "state.db", made.stdout.strip())


class WitnessProcess:
    def __init__(self, files: WitnessFiles, free_port: Callable[[], int]) -> None:
        self.files = files
        self.free_port = free_port
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.log = files.directory / "server.log"

    def start(self) -> None:
        for _attempt in range(3):  # a "free" port can be taken before the server binds it
            port = self.free_port()
            self.base_url = f"http://{HOST}:{port}"
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "iptv_billing.witness",
                        "serve",
                        "--config",
                        str(self.files.config),
                        "--key",
                        str(self.files.key),
                        "--state",
                        str(self.files.state),
                        "--host",
                        HOST,
                        "--port",
                        str(port),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self.kill()
        raise AssertionError("the witness did not start:\n" + self.log.read_text())

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, so whatever survives was durable before the reply."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def server(files: WitnessFiles, free_port: Callable[[], int]) -> Iterator[WitnessProcess]:
    process = WitnessProcess(files, free_port)
    process.start()
    try:
        yield process
    finally:
        process.kill()


def test_add_checkpoint_and_monitoring_over_http_survive_a_restart(
    server: WitnessProcess, files: WitnessFiles
) -> None:
    witness_verifier = parse_vkey(files.vkey)
    monitor_url = f"{server.base_url}/{origin_hash(ORIGIN)}/checkpoint"
    with httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as http:
        assert http.get(monitor_url).status_code == 404

        before = int(time.time())
        first = http.post("/add-checkpoint", content=_body(0, 10))
        after = int(time.time())
        assert first.status_code == 200, first.text
        (line,) = parse_cosignature_response(first.content)
        assert (line.name, line.key_id) == (WITNESS_NAME, witness_verifier.key_id)
        opened = open_checkpoint(_signed(10) + first.text, [LOG_KEY.verifier()], [witness_verifier])
        assert before <= opened.cosignatures[WITNESS_NAME] <= after

        second = http.post("/add-checkpoint", content=_body(10, 37))
        assert second.status_code == 200, second.text

        conflict = http.post("/add-checkpoint", content=_body(0, 40))
        assert conflict.status_code == 409
        assert conflict.content == b"37\n"
        assert conflict.headers["content-type"] == "text/x.tlog.size"

        monitored = http.get(monitor_url)
        assert monitored.status_code == 200
        seen = open_checkpoint(monitored.content, [LOG_KEY.verifier()], [witness_verifier])
        assert seen.checkpoint.size == 37
        assert WITNESS_NAME in seen.cosignatures

    server.kill()
    server.start()  # same state file, new process and port

    with httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as http:
        conflict = http.post("/add-checkpoint", content=_body(0, 40))
        assert conflict.status_code == 409
        assert conflict.content == b"37\n"
        assert conflict.headers["content-type"] == "text/x.tlog.size"
        restored = http.get(f"/{origin_hash(ORIGIN)}/checkpoint")
        assert restored.status_code == 200
        assert restored.content == monitored.content
        assert http.post("/add-checkpoint", content=_body(37, 40)).status_code == 200


def test_refusals_over_http_are_never_500(server: WitnessProcess) -> None:
    stranger = Ed25519Signer.from_seed("unknown.example/log", bytes([12]) * 32)
    unknown = format_add_checkpoint_request(0, [], _signed(5, signer=stranger))
    impostor = Ed25519Signer.from_seed(ORIGIN, bytes([13]) * 32)
    unsigned = format_add_checkpoint_request(0, [], _signed(5, signer=impostor))
    with httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as http:
        assert http.post("/add-checkpoint", content=_body(0, 8)).status_code == 200
        bad_proof = format_add_checkpoint_request(8, [bytes(32)], _signed(20))
        cases = {
            "garbage": (b"\xff\x00 nonsense", 400),
            "old above size": (format_add_checkpoint_request(9, [], _signed(8)), 400),
            "unknown origin": (unknown, 404),
            "untrusted key": (unsigned, 403),
            "stale old size": (_body(0, 9), 409),
            "bad proof": (bad_proof, 422),
            "too large": (b"old 0\n" + b"A" * (1 << 20), 413),
        }
        for name, (body, status) in cases.items():
            response = http.post("/add-checkpoint", content=body)
            assert response.status_code == status, (name, response.text)

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b"A" * 65536

        chunked = http.post("/add-checkpoint", content=chunks())  # no Content-Length
        assert chunked.status_code == 413
        assert http.get("/add-checkpoint").status_code == 405
        assert http.get("/nothing/checkpoint").status_code == 404
        assert http.get("/healthz").text == "ok\n"


# --- the app in process: prefixes --------------------------------------------------------------


def test_submission_and_monitoring_prefixes(files: WitnessFiles) -> None:
    witness = build_witness(files.config, files.key, files.state)
    app = create_app(
        witness,
        clock=lambda: 1_700_000_123.9,
        submission_prefix="/w",
        monitoring_prefix="/m/v1",
    )

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://witness") as http:
            assert (await http.post("/add-checkpoint", content=_body(0, 3))).status_code == 404
            response = await http.post("/w/add-checkpoint", content=_body(0, 3))
            assert response.status_code == 200
            (line,) = parse_cosignature_response(response.content)
            assert int.from_bytes(line.signature[:8], "big") == 1_700_000_123
            path = f"/{origin_hash(ORIGIN)}/checkpoint"
            assert (await http.get(path)).status_code == 404
            assert (await http.get("/m/v1" + path)).status_code == 200

    asyncio.run(drive())
    with pytest.raises(ValueError, match="prefix"):
        create_app(witness, submission_prefix="w/")


# --- CLI and files -----------------------------------------------------------------------------


def test_keygen_writes_a_private_0x04_key_and_vkey_prints_it(files: WitnessFiles) -> None:
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert files.key.read_text().startswith(f"PRIVATE+KEY+{WITNESS_NAME}+")
    verifier = parse_vkey(files.vkey)
    assert verifier.sig_type == 0x04
    printed = runner.invoke(witness_app, ["vkey", "--key", str(files.key)])
    assert printed.exit_code == 0
    assert printed.stdout.strip() == files.vkey
    again = runner.invoke(witness_app, ["keygen", "--name", WITNESS_NAME, "--out", str(files.key)])
    assert again.exit_code == 2
    assert "key.exists" in again.output


def test_serve_refuses_a_key_readable_by_others(files: WitnessFiles) -> None:
    files.key.chmod(0o640)
    state = str(files.state)
    refused = runner.invoke(
        witness_app,
        ["serve", "--config", str(files.config), "--key", str(files.key), "--state", state],
    )
    assert refused.exit_code == 2
    assert "key.not_private" in refused.output
    assert not files.state.exists()


def test_serve_refuses_a_symlinked_key_and_a_note_key(files: WitnessFiles, tmp_path: Path) -> None:
    link = tmp_path / "link.key"
    link.symlink_to(files.key)
    with pytest.raises(WitnessConfigError) as refused:
        load_witness_key(link, clock=lambda: 1)
    assert refused.value.code == "key.unreadable"
    note_key = tmp_path / "note.key"
    note_key.write_text(private_key_text(WITNESS_NAME, SIG_ED25519, bytes(32)))
    note_key.chmod(0o600)
    with pytest.raises(WitnessConfigError) as wrong:
        load_witness_key(note_key, clock=lambda: 1)
    assert wrong.value.code == "key.wrong_type"


def test_the_config_name_must_match_the_key(files: WitnessFiles) -> None:
    files.config.write_text(f"name someone.else/w\nlog {LOG_KEY.vkey}\n")
    with pytest.raises(WitnessConfigError) as refused:
        build_witness(files.config, files.key, files.state)
    assert refused.value.code == "config.name_mismatch"


def test_config_parsing() -> None:
    rotated = Ed25519Signer.from_seed(ORIGIN, bytes([14]) * 32)
    other = Ed25519Signer.from_seed("other.example/log", bytes([15]) * 32)
    config = parse_config(
        f"\t# comment\nlog {LOG_KEY.vkey} https://a.example\nlog\t{rotated.vkey}\n"
        f"log {other.vkey}\n"
    )
    assert config.name is None
    assert [v.key_id for v in config.logs[ORIGIN]] == [LOG_KEY.key_id, rotated.key_id]
    assert config.urls == {ORIGIN: ("https://a.example",)}
    assert set(config.logs) == {ORIGIN, "other.example/log"}
    cases: list[tuple[str | bytes, str]] = [
        ("", "config.no_logs"),
        ("# only a comment\n", "config.no_logs"),
        (f"witness w {LOG_KEY.vkey}\n", "config.malformed"),
        ("quorum none\n", "config.malformed"),
        ("log not-a-vkey\n", "policy.malformed"),
        (f"log {LOG_KEY.vkey}\nlog {LOG_KEY.vkey}\n", "policy.duplicate_key"),
        (f"name a b\nlog {LOG_KEY.vkey}\n", "config.malformed"),
        (f"name a\nname a\nlog {LOG_KEY.vkey}\n", "config.malformed"),
        (b"log \xff\n", "config.malformed"),
    ]
    for bad, code in cases:
        with pytest.raises(WitnessConfigError) as refused:
            parse_config(bad)
        assert refused.value.code == code, bad


def test_the_witness_note_drops_nothing_it_verified(files: WitnessFiles) -> None:
    witness = build_witness(files.config, files.key, files.state, clock=lambda: 1_700_000_000)
    assert witness.add_checkpoint(_body(0, 12), 1_700_000_000).status == 200
    stored = witness.get_checkpoint(origin_hash(ORIGIN))
    names = [s.name for s in parse_note(stored.body).signatures]
    assert names == [ORIGIN, WITNESS_NAME]
