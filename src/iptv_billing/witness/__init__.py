"""An independent C2SP tlog-witness (c2sp.org/tlog-witness): cosigns checkpoints of the logs it
trusts after checking that each one extends the last checkpoint it cosigned for that origin.

``service`` is the protocol logic, ``state`` its durable SQLite state, ``app`` the HTTP surface,
``config`` the trusted-log list and key file, ``cli`` the ``iptv-billing witness`` commands.
"""

from __future__ import annotations

from iptv_billing.witness.service import (
    AddCheckpointRequest,
    Witness,
    WitnessResponse,
    format_add_checkpoint_request,
    parse_add_checkpoint_request,
    parse_cosignature_response,
)

__all__ = [
    "AddCheckpointRequest",
    "Witness",
    "WitnessResponse",
    "format_add_checkpoint_request",
    "parse_add_checkpoint_request",
    "parse_cosignature_response",
]
