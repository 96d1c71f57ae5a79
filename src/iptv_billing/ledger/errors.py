"""Why a proof, note, checkpoint or receipt was refused: a stable code and a precise message.

Verifiers raise ``LedgerError`` for every malformed or failing input (never another exception
type), so callers can report the reason and carry on.
"""

from __future__ import annotations


class LedgerError(ValueError):
    """A refused ledger artefact, e.g. ``LedgerError("proof.root_mismatch", "…")``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"LedgerError({self.code!r}, {self.message!r})"
