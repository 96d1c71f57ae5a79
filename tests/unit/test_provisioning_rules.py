"""Pure provisioning rules: webhook signatures, the retry schedule, outcome classification,
bouquet mapping and the desired line state."""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.entitlement import Entitlement
from iptv_billing.domain.errors import InvalidInput, Unauthorized
from iptv_billing.domain.provisioning import (
    JITTER_SPREAD,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    Outcome,
    PanelLine,
    RemoteLine,
    bouquets_for,
    line_differences,
    next_attempt,
    outcome_of,
    panel_line_for,
    sign,
    verify,
)
from iptv_billing.domain.subscription import SubscriptionStatus

SECRET = b"whsec_test_0123456789abcdef"
OLD_SECRET = b"whsec_old_fedcba9876543210"
BODY = b'{"created":1800000000,"data":{"n":1},"id":"evt_1","type":"t"}'
T = 1_800_000_000
NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
VERIFY_CODES = {
    "webhook.malformed_signature",
    "webhook.bad_signature",
    "webhook.timestamp_too_old",
    "webhook.timestamp_in_future",
}


def reference_v1(secret: bytes, body: bytes, t: int) -> str:
    """The documented recipe, spelled out independently of the module."""
    return hmac.new(secret, str(t).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_code(header: str, body: bytes, now: int) -> str | None:
    """verify's error code, None when it accepts; anything else it raises fails the test."""
    try:
        verify(SECRET, body, header, now)
    except Unauthorized as exc:
        return exc.code
    return None


def code_of(header: object, *, body: bytes = BODY, now: int = T) -> str:
    with pytest.raises(Unauthorized) as caught:
        verify(SECRET, body, header, now)  # type: ignore[arg-type]
    return caught.value.code


# --- signatures -------------------------------------------------------------------------------


def test_signature_header_follows_the_documented_recipe() -> None:
    assert sign(SECRET, BODY, T) == f"t={T},v1={reference_v1(SECRET, BODY, T)}"


def test_round_trip() -> None:
    verify(SECRET, BODY, sign(SECRET, BODY, T), T)


def test_tampered_body_is_refused() -> None:
    header = sign(SECRET, BODY, T)
    assert code_of(header, body=BODY.replace(b'"n":1', b'"n":2')) == "webhook.bad_signature"


def test_tampered_timestamp_is_refused() -> None:
    header = sign(SECRET, BODY, T).replace(f"t={T}", f"t={T + 60}")
    assert code_of(header) == "webhook.bad_signature"


def test_wrong_secret_is_refused() -> None:
    header = sign(OLD_SECRET, BODY, T)
    assert code_of(header) == "webhook.bad_signature"


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (T, None),
        (T + 300, None),
        (T - 300, None),
        (T + 301, "webhook.timestamp_too_old"),
        (T - 301, "webhook.timestamp_in_future"),
    ],
)
def test_tolerance_window(now: int, code: str | None) -> None:
    header = sign(SECRET, BODY, T)
    if code is None:
        verify(SECRET, BODY, header, now)
    else:
        assert code_of(header, now=now) == code


def test_a_custom_tolerance() -> None:
    header = sign(SECRET, BODY, T)
    verify(SECRET, BODY, header, T + 3000, tolerance_seconds=3600)
    with pytest.raises(Unauthorized):
        verify(SECRET, BODY, header, T + 11, tolerance_seconds=10)


def test_rotation_signs_with_both_secrets_and_either_verifies() -> None:
    header = sign([OLD_SECRET, SECRET], BODY, T)
    assert header.count("v1=") == 2
    verify(SECRET, BODY, header, T)
    verify(OLD_SECRET, BODY, header, T)


def test_a_receiver_may_accept_several_secrets() -> None:
    verify([SECRET, OLD_SECRET], BODY, sign(OLD_SECRET, BODY, T), T)
    with pytest.raises(Unauthorized):
        verify([SECRET], BODY, sign(OLD_SECRET, BODY, T), T)


def test_unknown_schemes_are_ignored_and_hex_case_does_not_matter() -> None:
    good = reference_v1(SECRET, BODY, T)
    verify(SECRET, BODY, f"t={T},v0=legacy,v1={'0' * 64},v1={good.upper()}", T)
    verify(SECRET, BODY, f" t={T} , v1={good} ", T)


GOOD = reference_v1(SECRET, BODY, T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        None,
        b"t=1,v1=00",
        f"t={T}",
        f"v1={GOOD}",
        f"t=,v1={GOOD}",
        f"t=abc,v1={GOOD}",
        f"t=-{T},v1={GOOD}",
        f"t={T}.5,v1={GOOD}",
        f"t=１８００,v1={GOOD}",  # non-ASCII digits
        f"t={'9' * 16},v1={GOOD}",
        f"t={T},t={T},v1={GOOD}",
        f"t={T},v1={GOOD[:-1]}",
        f"t={T},v1={GOOD}zz",
        f"t={T},v1={GOOD[:-1]}g",
        f"t={T};v1={GOOD}",
        f"t={T},v1={GOOD},",
        f"t={T},={GOOD}",
        f"t={T},v1 {GOOD}",
        f"t={T}," + ",".join([f"v1={GOOD}"] * 9),
        f"t={T},v1={GOOD}," + "x" * 5000,
        "garbage",
    ],
)
def test_malformed_headers_are_refused(header: object) -> None:
    assert code_of(header) == "webhook.malformed_signature"


def test_weak_or_missing_secrets_are_refused() -> None:
    for secret in (b"short", [], [SECRET, b""], "a text secret of some length"):
        with pytest.raises(InvalidInput) as caught:
            sign(secret, BODY, T)  # type: ignore[arg-type]
        assert caught.value.code == "webhook.weak_secret"
    with pytest.raises(InvalidInput):
        sign(SECRET, BODY, -1)


@given(header=st.text(max_size=300), body=st.binary(max_size=200), now=st.integers())
def test_verify_only_ever_raises_its_own_error(header: str, body: bytes, now: int) -> None:
    assert verify_code(header, body, now) in {*VERIFY_CODES, None}


@given(
    body=st.binary(max_size=200),
    at=st.integers(min_value=0, max_value=10**12),
    position=st.integers(min_value=0),
    replacement=st.characters(codec="utf-8"),
)
def test_verify_of_a_mutated_header_only_raises_its_own_error(
    body: bytes, at: int, position: int, replacement: str
) -> None:
    header = sign(SECRET, body, at)
    index = position % len(header)
    mutated = header[:index] + replacement + header[index + 1 :]
    code = verify_code(mutated, body, at)
    assert code in VERIFY_CODES or mutated.lower() == header or mutated.strip() == header


@given(
    body=st.binary(max_size=500),
    at=st.integers(min_value=0, max_value=10**12),
    skew=st.integers(min_value=-300, max_value=300),
)
def test_every_signature_verifies_within_tolerance(body: bytes, at: int, skew: int) -> None:
    verify(SECRET, body, sign(SECRET, body, at), at + skew)


# --- retry schedule ---------------------------------------------------------------------------


def delay(attempts: int, jitter: float = 0.0) -> float:
    moment = next_attempt(attempts, NOW, jitter)
    assert moment is not None
    return (moment - NOW).total_seconds()


def test_the_documented_schedule() -> None:
    assert [delay(n) for n in range(1, 10)] == [10, 30, 120, 600, 1800, 3600, 7200, 7200, 7200]
    assert RETRY_DELAYS[-1] == 7200


def test_attempt_zero_is_due_now() -> None:
    assert next_attempt(0, NOW, 0.7) == NOW


def test_the_schedule_ends_with_none_for_an_operator() -> None:
    assert next_attempt(MAX_ATTEMPTS - 1, NOW, 0.0) is not None
    assert next_attempt(MAX_ATTEMPTS, NOW, 0.0) is None
    assert next_attempt(MAX_ATTEMPTS + 100, NOW, 1.0) is None


def test_the_whole_schedule_spans_about_a_day_and_a_half() -> None:
    total = sum(delay(n) for n in range(1, MAX_ATTEMPTS))
    assert timedelta(hours=34) < timedelta(seconds=total) < timedelta(hours=37)
    with_jitter = sum(delay(n, 1.0) for n in range(1, MAX_ATTEMPTS))
    assert with_jitter == pytest.approx(total * (1 + JITTER_SPREAD))


@given(jitter=st.floats(min_value=0.0, max_value=1.0))
def test_schedule_is_monotone_and_capped(jitter: float) -> None:
    delays = [delay(n, jitter) for n in range(1, MAX_ATTEMPTS)]
    assert delays == sorted(delays)
    assert all(d <= RETRY_DELAYS[-1] * (1 + JITTER_SPREAD) for d in delays)
    assert all(d >= 10 for d in delays)


@given(attempts=st.integers(min_value=1, max_value=MAX_ATTEMPTS - 1))
def test_jitter_only_ever_lengthens_by_at_most_the_spread(attempts: int) -> None:
    base = delay(attempts, 0.0)
    assert base <= delay(attempts, 0.5) <= delay(attempts, 1.0) == base * (1 + JITTER_SPREAD)


@pytest.mark.parametrize(
    ("attempts", "now", "jitter", "code"),
    [
        (-1, NOW, 0.0, "provisioning.invalid_attempts"),
        (1, NOW, -0.1, "provisioning.invalid_jitter"),
        (1, NOW, 1.1, "provisioning.invalid_jitter"),
        (1, NOW, math.nan, "provisioning.invalid_jitter"),
        (1, datetime(2027, 1, 1), 0.0, "time.naive_datetime"),
    ],
)
def test_bad_retry_arguments(attempts: int, now: datetime, jitter: float, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        next_attempt(attempts, now, jitter)
    assert caught.value.code == code


# --- outcomes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, Outcome.RETRY),
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (408, Outcome.RETRY),
        (425, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (504, Outcome.RETRY),
        (599, Outcome.RETRY),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (409, Outcome.REJECTED),
        (410, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (422, Outcome.REJECTED),
        (301, Outcome.REJECTED),
        (302, Outcome.REJECTED),
        (100, Outcome.REJECTED),
        (600, Outcome.REJECTED),
    ],
)
def test_outcome_table(status: int | None, outcome: Outcome) -> None:
    assert outcome_of(status) is outcome


# --- bouquets and lines -----------------------------------------------------------------------

MAPPING = {"basic": [1, 2], "sports": [5, 2], "vod": [], "kids": [9]}


def test_bouquets_are_the_sorted_union() -> None:
    assert bouquets_for(["sports", "basic", "sports"], MAPPING) == (1, 2, 5)
    assert bouquets_for(["vod"], MAPPING) == ()  # mapped to nothing on this panel, on purpose
    assert bouquets_for([], MAPPING) == ()


def test_an_unmapped_package_is_refused_not_dropped() -> None:
    with pytest.raises(InvalidInput) as caught:
        bouquets_for(["basic", "movies", "adult"], MAPPING)
    assert caught.value.code == "provisioning.unmapped_package"
    assert caught.value.details["packages"] == ["adult", "movies"]


@pytest.mark.parametrize("bad", [0, -3, True, "4", 2.0])
def test_bouquet_ids_are_positive_integers(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        bouquets_for(["x"], {"x": [bad]})  # type: ignore[list-item]
    assert caught.value.code == "provisioning.invalid_bouquet"


def line(**changes: object) -> PanelLine:
    fields: dict[str, object] = {
        "username": "alice01",
        "password": "pw-secret-123",
        "enabled": True,
        "exp_date": NOW,
        "max_connections": 2,
        "bouquets": (5, 1, 5),
        "is_trial": False,
    }
    fields.update(changes)
    return PanelLine(**fields)  # type: ignore[arg-type]


def test_a_line_is_normalised() -> None:
    cet = timezone(timedelta(hours=1))
    made = line(exp_date=datetime(2027, 1, 15, 9, 0, tzinfo=cet), mac="00-1a-79-ab-cd-ef")
    assert made.bouquets == (1, 5)
    assert made.exp_date == NOW
    assert made.exp_date.tzinfo is UTC
    assert made.exp_unix == int(NOW.timestamp())
    assert made.mac == "00:1A:79:AB:CD:EF"
    assert "pw-secret-123" not in repr(made)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"max_connections": 0}, "provisioning.invalid_connections"),  # 0 is unlimited on Xtream
        ({"max_connections": True}, "provisioning.invalid_connections"),
        ({"exp_date": datetime(2027, 1, 1)}, "time.naive_datetime"),
        ({"username": ""}, "provisioning.invalid_username"),
        ({"password": ""}, "provisioning.invalid_password"),
        ({"username": "a\nb"}, "provisioning.invalid_username"),
        ({"bouquets": (0,)}, "provisioning.invalid_bouquet"),
        ({"mac": "not-a-mac"}, "credential.invalid_mac"),
    ],
)
def test_bad_lines_are_refused(changes: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        line(**changes)
    assert caught.value.code == code


def test_a_mag_line_needs_no_username() -> None:
    assert line(username="", password="", mac="00:1A:79:00:00:01").mac == "00:1A:79:00:00:01"


def remote(**changes: object) -> RemoteLine:
    fields: dict[str, object] = {
        "username": "alice01",
        "password": "pw-secret-123",
        "enabled": True,
        "exp_date": NOW + timedelta(microseconds=900_000),  # same second
        "max_connections": 2,
        "bouquets": (5, 1),
        "is_trial": False,
    }
    fields.update(changes)
    return RemoteLine(**fields)  # type: ignore[arg-type]


def test_no_differences_when_equal() -> None:
    assert line_differences(line(), remote()) == ()
    assert "pw-secret-123" not in repr(remote())


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"enabled": False}, ("enabled",)),
        ({"exp_date": NOW + timedelta(seconds=1)}, ("exp_date",)),
        ({"exp_date": None}, ("exp_date",)),
        ({"max_connections": 0}, ("max_connections",)),
        ({"bouquets": (1,)}, ("bouquets",)),
        ({"is_trial": True}, ("is_trial",)),
        ({"enabled": False, "bouquets": ()}, ("enabled", "bouquets")),
        ({"admin_enabled": False, "password": "x", "panel_id": 7}, ()),  # not ours to sync
    ],
)
def test_differences_name_the_fields(changes: dict[str, object], expected: tuple[str, ...]) -> None:
    assert line_differences(line(), remote(**changes)) == expected


def entitlement(status: SubscriptionStatus, *, enabled: bool = True) -> Entitlement:
    return Entitlement(
        subscription_id="sub_1",
        status=status,
        valid_until=NOW,
        packages=frozenset({"basic", "kids"}),
        max_connections=3,
        enabled=enabled,
    )


@pytest.mark.parametrize(
    ("status", "enabled", "is_trial"),
    [
        (SubscriptionStatus.ACTIVE, True, False),
        (SubscriptionStatus.TRIALING, True, True),
        (SubscriptionStatus.PAST_DUE, True, False),  # grace: still watching
        (SubscriptionStatus.PAUSED, False, False),
        (SubscriptionStatus.SUSPENDED, False, False),
        (SubscriptionStatus.CANCELLED, False, False),
        (SubscriptionStatus.EXPIRED, False, False),
    ],
)
def test_the_line_an_entitlement_asks_for(
    status: SubscriptionStatus, enabled: bool, is_trial: bool
) -> None:
    made = panel_line_for(entitlement(status), username="u1x", password="p1x", mapping=MAPPING)
    assert (made.enabled, made.is_trial) == (enabled, is_trial)
    assert (made.exp_date, made.max_connections, made.bouquets) == (NOW, 3, (1, 2, 9))


def test_a_disabled_credential_disables_the_line() -> None:
    ent = entitlement(SubscriptionStatus.ACTIVE, enabled=False)
    assert panel_line_for(ent, username="u1x", password="p1x", mapping=MAPPING).enabled is False
