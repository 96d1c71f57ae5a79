"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from operator_harness import Operator


@pytest.fixture
def operator(database_url: str) -> Iterator[Operator]:
    """A fresh tenant on a frozen test clock over a fresh database (see operator_harness)."""
    op = Operator(database_url)
    yield op
    op.close()
