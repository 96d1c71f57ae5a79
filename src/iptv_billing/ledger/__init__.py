"""The transparency log: RFC 9162 hashing and proofs, C2SP notes, checkpoints, cosignatures,
tiles, receipts. Pure: no I/O; storage and chains sit behind ports in ``services``."""
