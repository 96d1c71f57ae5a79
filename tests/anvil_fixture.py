"""pytest fixture: a real local Ethereum JSON-RPC node (anvil) for the session.

``anvil_url`` (session) starts anvil on 127.0.0.1 on a free port (prague hardfork, automine,
silent), waits until it answers JSON-RPC, yields ``http://127.0.0.1:PORT`` and stops it after.

Binary lookup: ``$IPTV_BILLING_ANVIL`` (a path), then ``.tools/anvil`` as installed by
``scripts/install-anvil.sh``, then ``anvil`` on PATH. A missing binary FAILS the tests that use
the fixture (install it with scripts/install-anvil.sh), unless ``IPTV_BILLING_SKIP_ANVIL=1``,
which skips them.

anvil's accounts come from the public "test test ... junk" mnemonic: `ANVIL_KEYS` are their
private keys, funded with 10,000 ETH each at start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALLED_ANVIL = (
    REPO_ROOT / ".tools" / "anvil" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin"
) / "anvil"
HOST = "127.0.0.1"
HARDFORK = "prague"
START_TIMEOUT = 30.0

# Public dev keys of anvil's accounts #0 and #1 (never use them anywhere else).
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)
ANVIL_CHAIN_ID = 31337


def find_anvil() -> Path | None:
    explicit = os.environ.get("IPTV_BILLING_ANVIL")
    if explicit:
        return Path(explicit)
    if INSTALLED_ANVIL.is_file():
        return INSTALLED_ANVIL
    on_path = shutil.which("anvil")
    return Path(on_path) if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return "result" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _start(binary: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    # Another process may grab the port between _free_port() and anvil's bind: retry.
    last_error = "no attempt"
    for _ in range(3):
        port = _free_port()
        url = f"http://{HOST}:{port}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--hardfork",
                    HARDFORK,
                    "--silent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # not hit by the terminal's Ctrl-C before teardown
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(url):
                return process, url
            time.sleep(0.05)
        _stop(process)
        last_error = f"exit code {process.returncode}" if process.returncode else "no answer"
    log_tail = log_path.read_text(errors="replace")[-2000:]
    pytest.fail(f"anvil ({binary}) did not start: {last_error}\n{log_tail}", pytrace=False)


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """URL of a fresh anvil node (chain id 31337) shared by the session."""
    binary = find_anvil()
    if binary is None or not os.access(binary, os.X_OK):
        reason = (
            f"anvil not found (looked at $IPTV_BILLING_ANVIL, {INSTALLED_ANVIL} and PATH): "
            "run scripts/install-anvil.sh"
        )
        if os.environ.get("IPTV_BILLING_SKIP_ANVIL") == "1":
            pytest.skip(reason + " (skipped: IPTV_BILLING_SKIP_ANVIL=1)")
        pytest.fail(reason + ", or set IPTV_BILLING_SKIP_ANVIL=1 to skip", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="iptv-anvil-") as tmp:
        process, url = _start(binary, Path(tmp) / "anvil.log")
        try:
            yield url
        finally:
            _stop(process)
