"""The tlog-witness service: every row of the spec's add-checkpoint status table, the returned
cosignature, rollback and fork refusal, evidence of refused submissions, the monitoring read,
and racing submissions against the real SQLite state."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iptv_billing.ledger.checkpoint import (
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    timestamp_of,
)
from iptv_billing.ledger.errors import LedgerError
from iptv_billing.ledger.merkle import EMPTY_ROOT, MemoryTree, leaf_hash
from iptv_billing.ledger.note import (
    CosignatureV1Signer,
    CosignatureV1Verifier,
    Ed25519Signer,
    NoteSignature,
    encode_base64,
    parse_note,
    sign_note,
)
from iptv_billing.witness.service import (
    MAX_BODY,
    StoredCheckpoint,
    Witness,
    WitnessResponse,
    format_add_checkpoint_request,
    parse_add_checkpoint_request,
    parse_cosignature_response,
)
from iptv_billing.witness.state import SqliteWitnessState, origin_hash

ORIGIN = "billing.example/log/ten_1"
OTHER_ORIGIN = "billing.example/log/ten_2"
WITNESS_NAME = "witness.example/w1"
NOW = 1_700_000_000


def _seed(tag: int) -> bytes:
    return bytes([tag]) * 32


LOG_KEY = Ed25519Signer.from_seed(ORIGIN, _seed(1))
ROTATED_LOG_KEY = Ed25519Signer.from_seed(ORIGIN, _seed(2))
OTHER_LOG_KEY = Ed25519Signer.from_seed(OTHER_ORIGIN, _seed(3))
WITNESS_KEY = CosignatureV1Signer.from_seed(WITNESS_NAME, _seed(4), clock=lambda: 1)


def _tree(size: int, tag: bytes = b"entry") -> MemoryTree:
    return MemoryTree(leaf_hash(tag + b"-%d" % i) for i in range(size))


TREE = _tree(200)


def _signed(
    size: int,
    *,
    root: bytes | None = None,
    origin: str = ORIGIN,
    signers: Sequence[Ed25519Signer] = (LOG_KEY,),
    tree: MemoryTree = TREE,
) -> str:
    cp = Checkpoint(origin, size, tree.root(size) if root is None else root)
    return sign_note(format_checkpoint(cp), signers)


def _body(
    old: int, note: str, proof: Sequence[bytes] | None = None, tree: MemoryTree = TREE
) -> bytes:
    if proof is None:
        size = parse_note(note).text.split("\n")[1]
        proof = tree.consistency_proof(old, int(size)) if old else []
    return format_add_checkpoint_request(old, proof, note)


@pytest.fixture
def state(tmp_path: Path) -> SqliteWitnessState:
    return SqliteWitnessState(tmp_path / "witness.db")


@pytest.fixture
def witness(state: SqliteWitnessState) -> Witness:
    return Witness(
        WITNESS_KEY,
        {
            ORIGIN: [LOG_KEY.verifier(), ROTATED_LOG_KEY.verifier()],
            OTHER_ORIGIN: [OTHER_LOG_KEY.verifier()],
        },
        state,
    )


def _submit(witness: Witness, old: int, size: int, now: int = NOW) -> WitnessResponse:
    return witness.add_checkpoint(_body(old, _signed(size)), now)


def _assert_conflict(response: WitnessResponse, size: int) -> None:
    assert response.status == 409
    assert response.body == f"{size}\n".encode()
    assert response.content_type == "text/x.tlog.size"


def _stored_size(state: SqliteWitnessState, origin: str = ORIGIN) -> int | None:
    stored = state.latest(origin)
    return None if stored is None else stored.size


# --- 200 and the cosignature ------------------------------------------------------------------


def test_first_checkpoint_from_old_zero_is_cosigned(witness: Witness) -> None:
    note = _signed(10)
    response = witness.add_checkpoint(_body(0, note), NOW)

    assert response.status == 200
    assert response.content_type is not None
    assert response.content_type.startswith("text/plain")
    text = response.body.decode()
    assert text.startswith("\u2014 " + WITNESS_NAME + " ")
    assert text.endswith("\n")
    assert text.count("\n") == 1
    (line,) = parse_cosignature_response(response.body)
    verifier = CosignatureV1Verifier(WITNESS_NAME, WITNESS_KEY.public_key)
    assert line.name == WITNESS_NAME
    assert line.key_id == verifier.key_id == WITNESS_KEY.key_id
    assert len(line.signature) == 8 + 64
    assert timestamp_of(line.signature) == NOW
    assert verifier.verify(parse_note(note).text, line.signature)
    # As the spec suggests, a client appends the response to its checkpoint and verifies.
    opened = open_checkpoint(note + text, [LOG_KEY.verifier()], [verifier])
    assert opened.cosignatures == {WITNESS_NAME: NOW}
    assert opened.checkpoint.size == 10


def test_extension_with_a_consistency_proof_is_cosigned_and_persisted(
    witness: Witness, state: SqliteWitnessState
) -> None:
    assert _submit(witness, 0, 10).status == 200
    response = _submit(witness, 10, 137, now=NOW + 5)
    assert response.status == 200
    (line,) = parse_cosignature_response(response.body)
    assert timestamp_of(line.signature) == NOW + 5
    stored = state.latest(ORIGIN)
    assert stored is not None
    assert (stored.size, stored.root, stored.cosigned_at) == (137, TREE.root(137), NOW + 5)


def test_every_proof_shape_between_small_sizes_verifies(witness: Witness) -> None:
    old = 0
    for size in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65, 127, 128, 129, 200]:
        assert _submit(witness, old, size).status == 200, (old, size)
        old = size


def test_a_rotated_log_key_is_accepted(witness: Witness) -> None:
    note = _signed(5, signers=[ROTATED_LOG_KEY])
    assert witness.add_checkpoint(_body(0, note), NOW).status == 200


def test_unknown_signatures_are_ignored_and_not_kept(
    witness: Witness, state: SqliteWitnessState
) -> None:
    stranger = Ed25519Signer.from_seed("stranger.example", _seed(9))
    note = _signed(12, signers=[LOG_KEY, stranger])
    assert witness.add_checkpoint(_body(0, note), NOW).status == 200
    stored = state.latest(ORIGIN)
    assert stored is not None
    names = [s.name for s in parse_note(stored.note).signatures]
    assert names == [ORIGIN, WITNESS_NAME]


def test_equal_size_and_root_is_cosigned_again(witness: Witness, state: SqliteWitnessState) -> None:
    assert _submit(witness, 0, 40).status == 200
    again = _submit(witness, 40, 40, now=NOW + 60)
    assert again.status == 200
    (line,) = parse_cosignature_response(again.body)
    assert timestamp_of(line.signature) == NOW + 60
    stored = state.latest(ORIGIN)
    assert stored is not None
    assert (stored.size, stored.cosigned_at) == (40, NOW + 60)


def test_a_size_zero_checkpoint_with_the_empty_root_is_cosigned(
    witness: Witness, state: SqliteWitnessState
) -> None:
    assert witness.add_checkpoint(_body(0, _signed(0, root=EMPTY_ROOT)), NOW).status == 200
    assert _stored_size(state) == 0
    assert _submit(witness, 0, 3).status == 200  # old 0 now matches the stored size 0
    assert _stored_size(state) == 3


def test_cosignature_time_never_steps_back(witness: Witness) -> None:
    assert _submit(witness, 0, 10, now=NOW).status == 200
    response = _submit(witness, 10, 20, now=NOW - 100)  # the clock stepped back
    (line,) = parse_cosignature_response(response.body)
    assert timestamp_of(line.signature) == NOW


def test_a_clock_at_zero_is_a_fault_not_a_cosignature(witness: Witness) -> None:
    with pytest.raises(ValueError, match="clock"):
        _submit(witness, 0, 10, now=0)


# --- 404 / 403 ------------------------------------------------------------------------------


def test_unknown_origin_is_404(witness: Witness) -> None:
    other = Ed25519Signer.from_seed("unknown.example/log", _seed(7))
    note = _signed(10, origin="unknown.example/log", signers=[other])
    assert witness.add_checkpoint(_body(0, note), NOW).status == 404


def test_no_signature_by_a_trusted_key_is_403(witness: Witness) -> None:
    impostor = Ed25519Signer.from_seed(ORIGIN, _seed(8))  # right name, other key id
    note = _signed(10, signers=[impostor])
    assert witness.add_checkpoint(_body(0, note), NOW).status == 403


def test_another_trusted_logs_key_does_not_count_for_this_origin(witness: Witness) -> None:
    note = _signed(10, signers=[OTHER_LOG_KEY])
    assert witness.add_checkpoint(_body(0, note), NOW).status == 403


def test_a_failing_signature_by_a_known_key_is_403_even_next_to_a_good_one(
    witness: Witness, state: SqliteWitnessState
) -> None:
    good = parse_note(_signed(10))
    (signature,) = good.signatures
    bad = NoteSignature(signature.name, signature.key_id, bytes(64))
    forged = NoteSignature(ROTATED_LOG_KEY.name, ROTATED_LOG_KEY.key_id, signature.signature)
    for extra in (bad, forged):
        note = good.text + "\n" + signature.line() + extra.line()
        assert witness.add_checkpoint(_body(0, note), NOW).status == 403
    assert state.latest(ORIGIN) is None


# --- 400 / 413 ------------------------------------------------------------------------------


def test_old_size_above_the_checkpoint_size_is_400(witness: Witness) -> None:
    note = _signed(10)
    assert witness.add_checkpoint(_body(11, note, proof=[]), NOW).status == 400


def _good_note() -> str:
    return _signed(10)


H = encode_base64(bytes(32))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"old 0", id="no-newline"),
        pytest.param(("\n" + _good_note()).encode(), id="no-old-line"),
        pytest.param(("old 0\n" + _good_note()).encode(), id="no-blank-line"),
        pytest.param(("old 00\n\n" + _good_note()).encode(), id="leading-zero"),
        pytest.param(("old -1\n\n" + _good_note()).encode(), id="negative"),
        pytest.param(("old  1\n\n" + _good_note()).encode(), id="two-spaces"),
        pytest.param(("Old 0\n\n" + _good_note()).encode(), id="capital"),
        pytest.param(("old 0 \n\n" + _good_note()).encode(), id="trailing-space"),
        pytest.param(("old 18446744073709551616\n\n" + _good_note()).encode(), id="above-u64"),
        pytest.param(("old 1\nnot base64!\n\n" + _good_note()).encode(), id="bad-proof-line"),
        pytest.param(
            ("old 1\n" + encode_base64(bytes(31)) + "\n\n" + _good_note()).encode(), id="short-hash"
        ),
        pytest.param(("old 1\n" + H[:-1] + "\n\n" + _good_note()).encode(), id="unpadded-hash"),
        pytest.param(("old 1\n" + (H + "\n") * 64 + "\n" + _good_note()).encode(), id="64-lines"),
        pytest.param(b"old 0\n\n", id="no-checkpoint"),
        pytest.param(("old 0\n\n" + _good_note().split("\n\n")[0] + "\n").encode(), id="unsigned"),
        pytest.param(
            ("old 0\n\n" + _good_note().replace("\n10\n", "\n010\n")).encode(), id="bad-size"
        ),
        pytest.param(("old 0\n\n" + _good_note()[:-1]).encode(), id="no-final-newline"),
        pytest.param(b"old 0\n\n\xff\xfe\n\n", id="not-utf8"),
        pytest.param(b"old 0\n\x00\n\n", id="control"),
    ],
)
def test_malformed_requests_are_400(
    witness: Witness, state: SqliteWitnessState, body: bytes
) -> None:
    response = witness.add_checkpoint(body, NOW)
    assert response.status == 400, response.body
    assert state.latest(ORIGIN) is None


def test_63_proof_lines_are_allowed_by_the_parser() -> None:
    body = ("old 1\n" + (H + "\n") * 63 + "\n" + _good_note()).encode()
    request, _note = parse_add_checkpoint_request(body)
    assert len(request.proof) == 63


def test_too_many_note_signatures_are_400(state: SqliteWitnessState) -> None:
    witness = Witness(WITNESS_KEY, {ORIGIN: [LOG_KEY.verifier()]}, state, max_signatures=3)
    keys = [Ed25519Signer.from_seed(f"s{i}.example", _seed(20 + i)) for i in range(3)]
    note = _signed(10, signers=[LOG_KEY, *keys])
    assert witness.add_checkpoint(_body(0, note), NOW).status == 400


def test_an_oversized_body_is_413(witness: Witness) -> None:
    body = _body(0, _signed(10)) + b"x" * MAX_BODY
    assert witness.add_checkpoint(body, NOW).status == 413


# --- 409 ------------------------------------------------------------------------------------


def test_old_size_other_than_zero_without_state_is_409_zero(witness: Witness) -> None:
    _assert_conflict(_submit(witness, 5, 10), 0)


def test_old_size_zero_with_state_is_409_with_the_stored_size(witness: Witness) -> None:
    assert _submit(witness, 0, 21).status == 200
    _assert_conflict(_submit(witness, 0, 30), 21)
    _assert_conflict(_submit(witness, 20, 30), 21)


def test_rollback_is_refused(witness: Witness, state: SqliteWitnessState) -> None:
    assert _submit(witness, 0, 100).status == 200
    # A smaller checkpoint either claims the smaller old size (409) or the stored one (400).
    _assert_conflict(_submit(witness, 50, 60), 100)
    assert witness.add_checkpoint(_body(100, _signed(60), proof=[]), NOW).status == 400
    _assert_conflict(_submit(witness, 0, 60), 100)
    assert _stored_size(state) == 100


# --- 422 and evidence -----------------------------------------------------------------------


def _assert_evidence(state: SqliteWitnessState, old: int, note: str, reason: str) -> None:
    refusals = state.refusals(ORIGIN)
    assert refusals, "no evidence recorded"
    last = refusals[-1]
    assert (last.origin, last.old_size, last.checkpoint, last.refused_at) == (
        ORIGIN,
        old,
        note,
        NOW,
    )
    assert last.reason.startswith(reason), last.reason


def test_size_zero_with_a_non_empty_root_is_422(
    witness: Witness, state: SqliteWitnessState
) -> None:
    note = _signed(0, root=TREE.root(1))
    assert witness.add_checkpoint(_body(0, note), NOW).status == 422
    _assert_evidence(state, 0, note, "empty_tree.bad_root")
    assert state.latest(ORIGIN) is None


def test_old_zero_with_a_proof_is_422(witness: Witness, state: SqliteWitnessState) -> None:
    note = _signed(10)
    assert witness.add_checkpoint(_body(0, note, proof=[TREE.root(4)]), NOW).status == 422
    _assert_evidence(state, 0, note, "proof.not_empty")
    assert state.latest(ORIGIN) is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda p: [bytes(32), *p[1:]], id="wrong-hash"),
        pytest.param(lambda p: p[:-1], id="too-short"),
        pytest.param(lambda p: [*p, bytes(32)], id="too-long"),
        pytest.param(lambda p: [], id="empty"),
        pytest.param(lambda p: list(reversed(p)), id="reordered"),
    ],
)
def test_a_failing_consistency_proof_is_422(
    witness: Witness, state: SqliteWitnessState, mangle: object
) -> None:
    assert _submit(witness, 0, 13).status == 200
    note = _signed(77)
    proof = mangle(TREE.consistency_proof(13, 77))  # type: ignore[operator]
    assert witness.add_checkpoint(_body(13, note, proof=proof), NOW).status == 422
    _assert_evidence(state, 13, note, "proof.")
    assert _stored_size(state) == 13
    assert state.refusals(ORIGIN)[-1].proof == tuple(proof)


def test_equal_size_with_a_different_root_is_422(
    witness: Witness, state: SqliteWitnessState
) -> None:
    assert _submit(witness, 0, 50).status == 200
    fork = _signed(50, tree=_tree(50, b"forked"))
    assert witness.add_checkpoint(_body(50, fork, proof=[]), NOW).status == 422
    _assert_evidence(state, 50, fork, "fork")
    stored = state.latest(ORIGIN)
    assert stored is not None
    assert stored.root == TREE.root(50)


def test_a_fork_that_rewrites_history_is_422(witness: Witness, state: SqliteWitnessState) -> None:
    assert _submit(witness, 0, 50).status == 200
    forked = _tree(80, b"forked")
    note = _signed(80, tree=forked)
    # The fork's own proof is internally valid but ends at a root the witness never saw.
    proof = forked.consistency_proof(50, 80)
    assert witness.add_checkpoint(_body(50, note, proof=proof), NOW).status == 422
    _assert_evidence(state, 50, note, "proof.root_mismatch")
    assert _stored_size(state) == 50


def test_refusals_are_append_only(
    witness: Witness, state: SqliteWitnessState, tmp_path: Path
) -> None:
    note = _signed(0, root=TREE.root(1))
    witness.add_checkpoint(_body(0, note), NOW)
    conn = sqlite3.connect(tmp_path / "witness.db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM refusals")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE refusals SET reason = 'nothing'")
        assert _submit(witness, 0, 30).status == 200
        with pytest.raises(sqlite3.DatabaseError, match="roll back"):
            conn.execute("UPDATE checkpoints SET size = '9'")
    finally:
        conn.close()
    assert len(state.refusals(ORIGIN)) == 1


# --- monitoring -----------------------------------------------------------------------------


def test_the_monitoring_checkpoint_carries_log_and_witness_signatures(witness: Witness) -> None:
    assert witness.get_checkpoint(origin_hash(ORIGIN)).status == 404
    assert _submit(witness, 0, 10).status == 200
    assert _submit(witness, 10, 33, now=NOW + 1).status == 200

    response = witness.get_checkpoint(origin_hash(ORIGIN))
    assert response.status == 200
    opened = open_checkpoint(
        response.body, [LOG_KEY.verifier()], [WITNESS_KEY.verifier()], not_after=NOW + 1
    )
    assert (opened.checkpoint.size, opened.cosignatures) == (33, {WITNESS_NAME: NOW + 1})
    assert witness.get_checkpoint(origin_hash(OTHER_ORIGIN)).status == 404
    assert witness.get_checkpoint(origin_hash(ORIGIN).upper()).status == 404
    assert witness.get_checkpoint("../etc/passwd").status == 404


# --- wire helpers and construction ----------------------------------------------------------


def test_request_format_round_trips() -> None:
    note = _signed(77)
    proof = TREE.consistency_proof(13, 77)
    request, parsed = parse_add_checkpoint_request(format_add_checkpoint_request(13, proof, note))
    assert (request.old_size, list(request.proof), request.checkpoint) == (13, proof, note)
    assert parsed.text == format_checkpoint(Checkpoint(ORIGIN, 77, TREE.root(77)))
    with pytest.raises(LedgerError):
        format_add_checkpoint_request(-1, [], note)
    with pytest.raises(LedgerError):
        format_add_checkpoint_request(1, [bytes(31)], note)


def test_log_keys_must_be_named_like_their_origin(state: SqliteWitnessState) -> None:
    with pytest.raises(ValueError, match="named like"):
        Witness(WITNESS_KEY, {OTHER_ORIGIN: [LOG_KEY.verifier()]}, state)


# --- concurrency ----------------------------------------------------------------------------


class _RacingState:
    """Lets every racer read the state before any of them writes: the worst interleaving."""

    def __init__(self, inner: SqliteWitnessState, racers: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(racers)

    def latest(self, origin: str) -> StoredCheckpoint | None:
        return self.inner.latest(origin)

    def latest_by_hash(self, hash_hex: str) -> StoredCheckpoint | None:
        return self.inner.latest_by_hash(hash_hex)

    def compare_and_swap(
        self, expected_size: int, expected_root: bytes | None, new: StoredCheckpoint
    ) -> int | None:
        self.barrier.wait(timeout=30)
        return self.inner.compare_and_swap(expected_size, expected_root, new)

    def record_refusal(
        self,
        origin: str,
        old_size: int,
        proof: Sequence[bytes],
        checkpoint: str,
        reason: str,
        refused_at: int,
    ) -> None:
        self.inner.record_refusal(origin, old_size, proof, checkpoint, reason, refused_at)


@pytest.mark.parametrize("start", [0, 10])
def test_racing_sizes_n_and_n_plus_k_one_wins_the_other_gets_409(
    state: SqliteWitnessState, start: int
) -> None:
    if start:
        plain = Witness(WITNESS_KEY, {ORIGIN: [LOG_KEY.verifier()]}, state)
        assert _submit(plain, 0, start).status == 200
    for _round in range(10):
        old = _stored_size(state) or 0
        n, n_plus_k = old + 5, old + 12
        racing = Witness(WITNESS_KEY, {ORIGIN: [LOG_KEY.verifier()]}, _RacingState(state, 2))
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(_submit, racing, old, size) for size in (n, n_plus_k)]
            results = [f.result(timeout=60) for f in futures]
        assert sorted(r.status for r in results) == [200, 409], results
        winner = n if results[0].status == 200 else n_plus_k
        loser = results[1] if results[0].status == 200 else results[0]
        _assert_conflict(loser, winner)
        # Either order is fine; what matters is that the state is the winner's, never less.
        assert _stored_size(state) == winner


def test_many_free_running_racers_never_roll_back(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    # Each racer has its own state object, as separate witness processes sharing the file would.
    witnesses = [
        Witness(WITNESS_KEY, {ORIGIN: [LOG_KEY.verifier()]}, SqliteWitnessState(path))
        for _ in range(8)
    ]
    assert _submit(witnesses[0], 0, 10).status == 200
    start = threading.Barrier(len(witnesses))

    def race(index: int) -> WitnessResponse:
        start.wait(timeout=30)
        return _submit(witnesses[index], 10, 11 + index * 7)

    with ThreadPoolExecutor(len(witnesses)) as pool:
        results = list(pool.map(race, range(len(witnesses))))
    winners = [11 + i * 7 for i, r in enumerate(results) if r.status == 200]
    assert len(winners) == 1, [r.status for r in results]
    for response in results:
        if response.status != 200:
            _assert_conflict(response, winners[0])
    final = SqliteWitnessState(path).latest(ORIGIN)
    assert final is not None
    assert final.size == winners[0]


# --- fuzzing: bad input is a 4xx, never an exception --------------------------------------------

_VALID = _body(0, _signed(10))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.binary(max_size=3), st.integers(0, 3)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_requests_never_raise(
    witness: Witness, edits: list[tuple[int, bytes, int]]
) -> None:
    body = bytearray(_VALID)
    for position, insert, delete in edits:
        body[position : position + delete] = insert
    response = witness.add_checkpoint(bytes(body), NOW)
    assert response.status in (200, 400, 403, 404, 409, 413, 422)
