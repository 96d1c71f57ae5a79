"""Pick the anchoring chain from configuration."""

from __future__ import annotations

from pathlib import Path

from iptv_billing.adapters.chain.anchor import AnchorChain, JsonRpcChain


def open_chain(
    url: str | None,
    state_path: Path,
    private_key: str | None = None,
    contract: str | None = None,
    *,
    timeout: float = 10.0,
) -> AnchorChain:
    """A JSON-RPC chain when ``url`` is given, else the embedded dev chain at ``state_path``.

    ``private_key`` and ``contract`` only apply to JSON-RPC; the embedded chain has its own
    dev key and keeps its contract address in its state file.
    """
    if url is None:
        # Deferred: eth-tester and py-evm are only needed for the embedded chain.
        from iptv_billing.adapters.chain.embedded import EmbeddedChain

        return EmbeddedChain(state_path)
    return JsonRpcChain(url, private_key, contract, timeout)
