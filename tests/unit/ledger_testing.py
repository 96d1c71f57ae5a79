"""Helpers shared by the ledger format tests (notes, checkpoints, policies, proof files)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import generate_ed25519_seed


@contextmanager
def refused(code: str) -> Iterator[None]:
    """Assert that the block raises a LedgerError with exactly this code."""
    with pytest.raises(LedgerError) as caught:
        yield
    assert caught.value.code == code, repr(caught.value)


def seed(n: int) -> bytes:
    """A reproducible Ed25519 seed."""
    return generate_ed25519_seed(random.Random(n).randbytes)
