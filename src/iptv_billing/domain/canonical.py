"""Canonical JSON (RFC 8785, JCS) for the float-free subset, and SHA-256 over it.

Terms and log records are identified by the hash of this encoding, so it must never depend on
dict insertion order or on how a platform prints numbers. Floats are refused rather than
canonicalised: money is never a float, and integers are enough for everything hashed here.
"""

from __future__ import annotations

import hashlib
import json

from iptv_billing.domain.errors import InvalidInput

# I-JSON (RFC 7493) integer range: JCS serialises numbers as IEEE doubles, beyond which
# integers would lose precision in other implementations.
_MAX_SAFE_INTEGER = 2**53 - 1
# `json` escapes exactly what JCS escapes (", \\, control characters with \b \t \n \f \r short
# forms and lowercase \u00xx otherwise) and leaves everything else, DEL included, literal.
_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def canonical_json(value: object) -> bytes:
    """The RFC 8785 serialisation of ``value`` as UTF-8 bytes."""
    parts: list[str] = []
    _emit(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate has no UTF-8 form
        raise InvalidInput("canonical.invalid_string", "strings must be valid Unicode") from exc


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _emit(value: object, parts: list[str]) -> None:
    # bool before int: True is an int in Python but a literal in JSON.
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(_encode_string(value))
    elif isinstance(value, int):
        parts.append(_integer(value))
    elif isinstance(value, dict):
        _emit_object(value, parts)
    elif isinstance(value, list | tuple):
        _emit_array(value, parts)
    else:
        raise InvalidInput(
            "canonical.unsupported_type", f"cannot canonicalise {type(value).__name__}"
        )


def _integer(value: int) -> str:
    if abs(value) > _MAX_SAFE_INTEGER:
        raise InvalidInput("canonical.integer_out_of_range", f"integer beyond 2**53-1: {value}")
    return str(int(value))  # int() drops IntEnum and other subclasses' own str()


def _emit_array(items: list[object] | tuple[object, ...], parts: list[str]) -> None:
    parts.append("[")
    for i, item in enumerate(items):
        if i:
            parts.append(",")
        _emit(item, parts)
    parts.append("]")


def _emit_object(obj: dict[object, object], parts: list[str]) -> None:
    parts.append("{")
    for i, (key, item) in enumerate(sorted(obj.items(), key=_utf16_key)):
        if i:
            parts.append(",")
        parts.append(_encode_string(key))
        parts.append(":")
        _emit(item, parts)
    parts.append("}")


def _utf16_key(pair: tuple[object, object]) -> bytes:
    """JCS orders member names by UTF-16 code units; big-endian bytes compare the same way."""
    key = pair[0]
    if not isinstance(key, str):
        raise InvalidInput(
            "canonical.unsupported_type", f"object keys must be strings, not {type(key).__name__}"
        )
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise InvalidInput("canonical.invalid_string", "keys must be valid Unicode") from exc
