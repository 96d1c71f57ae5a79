"""Transparency log trust policies (c2sp.org/tlog-policy).

```
log <vkey> [<url>]
witness <name> <vkey> [<url>]
group <name> all|any|<k> <member>...
quorum <name>|none
```

A checkpoint is accepted if any listed log signed it and the witnesses whose cosignatures
verified satisfy the quorum. Witness and group names are local to the policy; cosignatures are
matched to witnesses by (key name, key id), never by the local name.

Deviation: the spec treats octets with the high bit set as opaque; here the file must be UTF-8,
since names and vkeys are handled as ``str``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from iptv_billing.ledger.checkpoint import SignedCheckpoint, open_checkpoint
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    NoteSignature,
    NoteVerifier,
    VkeyVerifier,
    parse_vkey,
)

NONE = "none"
# Allowed: tab, newline, 0x20-0x7E and everything non-ASCII.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SEPARATORS = re.compile(r"[ \t]+")
_THRESHOLD = re.compile(r"[1-9][0-9]{0,5}")
_LOG_TYPES = (SIG_ED25519, SIG_COSIGNATURE_V1)
_WITNESS_TYPES = (SIG_COSIGNATURE_V1,)


@dataclass(frozen=True)
class Group:
    """Witnessed when at least ``k`` of its ``members`` (witnesses or groups) witnessed."""

    name: str
    k: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[VkeyVerifier, ...]
    log_urls: tuple[str | None, ...]  # parallel to ``logs``
    witnesses: dict[str, tuple[VkeyVerifier, str | None]]
    groups: dict[str, Group]  # in definition order: members always precede their groups
    quorum: str  # a witness name, a group name, or "none"

    def witness_verifiers(self) -> tuple[VkeyVerifier, ...]:
        return tuple(verifier for verifier, _url in self.witnesses.values())

    def satisfied(self, cosigners: Iterable[str]) -> bool:
        """Whether the witnesses named (policy names) meet the quorum."""
        present = set(cosigners)
        memo: dict[str, bool] = {}

        def witnessed(name: str) -> bool:
            if name not in memo:
                group = self.groups.get(name)
                if group is None:
                    memo[name] = name in present and name in self.witnesses
                else:
                    memo[name] = sum(witnessed(m) for m in group.members) >= group.k
            return memo[name]

        return self.quorum == NONE or witnessed(self.quorum)

    def cosigners_of(self, signatures: Iterable[NoteSignature]) -> frozenset[str]:
        """Policy names of the witnesses that made these (already verified) signatures."""
        by_key = {(v.name, v.key_id): local for local, (v, _url) in self.witnesses.items()}
        return frozenset(
            by_key[(s.name, s.key_id)] for s in signatures if (s.name, s.key_id) in by_key
        )

    def open_checkpoint(
        self,
        data: str | bytes,
        *,
        extra_logs: Sequence[NoteVerifier] = (),
        not_after: int | None = None,
    ) -> SignedCheckpoint:
        """Verify a checkpoint with this policy's logs (plus ``extra_logs``, for policies that
        leave the log to context) and witnesses; refuse it unless the quorum is met."""
        signed = open_checkpoint(
            data, [*self.logs, *extra_logs], self.witness_verifiers(), not_after=not_after
        )
        cosigners = self.cosigners_of(signed.witness_signatures)
        if not self.satisfied(cosigners):
            raise LedgerError(
                "policy.quorum_not_met",
                f"cosigned by {sorted(cosigners) or 'no known witness'}, quorum {self.quorum!r}",
            )
        return signed


def _refuse(code: str, number: int, message: str) -> LedgerError:
    return LedgerError(code, f"policy line {number}: {message}")


def _parse_key(token: str, number: int, allowed: tuple[int, ...], role: str) -> VkeyVerifier:
    try:
        verifier = parse_vkey(token)
    except LedgerError as exc:
        raise _refuse("policy.malformed", number, f"bad {role} vkey: {exc.message}") from exc
    if verifier.sig_type not in allowed:
        raise _refuse(
            "policy.bad_key_type", number, f"a {role} key cannot be type 0x{verifier.sig_type:02x}"
        )
    return verifier


def parse_policy(text: str | bytes) -> Policy:
    """Parse and validate a policy file; every refusal names the line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LedgerError("policy.malformed", "the policy is not valid UTF-8") from exc
    logs: list[VkeyVerifier] = []
    log_urls: list[str | None] = []
    witnesses: dict[str, tuple[VkeyVerifier, str | None]] = {}
    groups: dict[str, Group] = {}
    grouped: set[str] = set()  # names already listed as a member somewhere
    quorum: str | None = None

    def define(name: str, number: int) -> None:
        if name == NONE:
            raise _refuse("policy.duplicate_name", number, "'none' is predefined")
        if name in witnesses or name in groups:
            raise _refuse("policy.duplicate_name", number, f"{name!r} is already defined")

    for number, line in enumerate(text.split("\n"), start=1):
        bad = _FORBIDDEN.search(line)
        if bad is not None:
            raise _refuse(
                "policy.malformed", number, f"forbidden character U+{ord(bad.group()):04X}"
            )
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        keyword, *args = _SEPARATORS.split(stripped)
        if keyword == "log":
            if len(args) not in (1, 2):
                raise _refuse("policy.malformed", number, "expected: log <vkey> [<url>]")
            verifier = _parse_key(args[0], number, _LOG_TYPES, "log")
            if any(v.public_key == verifier.public_key for v in logs):
                raise _refuse("policy.duplicate_key", number, "this log key is already listed")
            logs.append(verifier)
            log_urls.append(args[1] if len(args) == 2 else None)
        elif keyword == "witness":
            if len(args) not in (2, 3):
                raise _refuse("policy.malformed", number, "expected: witness <name> <vkey> [<url>]")
            name = args[0]
            define(name, number)
            verifier = _parse_key(args[1], number, _WITNESS_TYPES, "witness")
            if any(v.public_key == verifier.public_key for v, _url in witnesses.values()):
                raise _refuse("policy.duplicate_key", number, "this witness key is already listed")
            witnesses[name] = (verifier, args[2] if len(args) == 3 else None)
        elif keyword == "group":
            if len(args) < 3:
                raise _refuse("policy.malformed", number, "expected: group <name> <k> <member>...")
            name, threshold, *members = args
            define(name, number)
            for member in members:
                if member == NONE:
                    raise _refuse("policy.undefined_name", number, "'none' cannot be a member")
                if member not in witnesses and member not in groups:
                    raise _refuse("policy.undefined_name", number, f"{member!r} is not defined")
                if member in grouped:
                    raise _refuse(
                        "policy.duplicate_member", number, f"{member!r} is already a member"
                    )
                grouped.add(member)
            if threshold == "all":
                k = len(members)
            elif threshold == "any":
                k = 1
            elif _THRESHOLD.fullmatch(threshold):
                k = int(threshold)
            else:
                raise _refuse("policy.bad_threshold", number, f"threshold {threshold!r}")
            if not 1 <= k <= len(members):
                raise _refuse("policy.bad_threshold", number, f"need 1 <= {k} <= {len(members)}")
            groups[name] = Group(name, k, tuple(members))
        elif keyword == "quorum":
            if len(args) != 1:
                raise _refuse("policy.malformed", number, "expected: quorum <name>")
            if quorum is not None:
                raise _refuse("policy.bad_quorum", number, "the quorum is defined twice")
            if args[0] != NONE and args[0] not in witnesses and args[0] not in groups:
                raise _refuse("policy.undefined_name", number, f"{args[0]!r} is not defined")
            quorum = args[0]
        else:
            raise _refuse("policy.malformed", number, f"unknown keyword {keyword!r}")
    if quorum is None:
        raise LedgerError("policy.bad_quorum", "the policy has no quorum line")
    return Policy(tuple(logs), tuple(log_urls), witnesses, groups, quorum)


def format_policy(policy: Policy) -> str:
    """A policy file that parses back to an equal policy (thresholds are written as numbers)."""
    lines: list[str] = []
    for verifier, url in zip(policy.logs, policy.log_urls, strict=True):
        lines.append(" ".join(["log", verifier.vkey, *([url] if url else [])]))
    for name, (verifier, url) in policy.witnesses.items():
        lines.append(" ".join(["witness", name, verifier.vkey, *([url] if url else [])]))
    for group in policy.groups.values():
        lines.append(" ".join(["group", group.name, str(group.k), *group.members]))
    lines.append(f"quorum {policy.quorum}")
    return "\n".join(lines) + "\n"


def k_of_n_policy(
    log_vkey: str, witnesses: Sequence[tuple[str, str, str | None]], k: int
) -> Policy:
    """One log and ``k`` of the given ``(name, vkey, url)`` witnesses (``k == 0``: none)."""
    names = {name for name, _vkey, _url in witnesses}
    if not 0 <= k <= len(witnesses):
        raise LedgerError("policy.bad_threshold", f"need 0 <= {k} <= {len(witnesses)}")
    group = "witnesses"
    while group in names:  # local names share one namespace
        group += "_"
    lines = [f"log {log_vkey}"]
    lines += [" ".join(["witness", n, v, *([u] if u else [])]) for n, v, u in witnesses]
    if k == 0:
        lines.append(f"quorum {NONE}")
    else:
        lines.append(" ".join(["group", group, str(k), *(n for n, _v, _u in witnesses)]))
        lines.append(f"quorum {group}")
    return parse_policy("\n".join(lines) + "\n")
