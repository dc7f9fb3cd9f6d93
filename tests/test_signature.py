"""Stripe-Signature: ichido's verifier must accept exactly what Stripe's own SDK accepts.

The reference is ``stripe.WebhookSignature.verify_header(payload_str, header, secret,
tolerance=300)`` (stripe-python 16). ichido takes several secrets (a secret roll); it must accept
a header exactly when the SDK accepts it with at least one of those secrets. Any exception from
the SDK counts as a rejection (it raises TypeError, not SignatureVerificationError, when a ``v1``
value holds non-ASCII characters).

Both verifiers are judged at one fixed instant: ichido through its ``now`` argument, the SDK by
pinning ``time.time`` for the duration of the call.
"""

from __future__ import annotations

import hmac
import string
import time
from typing import Sequence
from unittest import mock

import pytest
import stripe
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ichido import signature
from ichido.errors import SignatureError

NOW = 1_767_000_000
A = "whsec_secret_A_0123456789"
B = "whsec_secret_B_9876543210"
WRONG = "whsec_not_the_endpoint_secret"
PAYLOAD = '{"id":"evt_1","object":"event","type":"charge.succeeded","created":1767000000}'


def sig(t: int | str, secret: str = A, payload: str = PAYLOAD) -> str:
    """The v1 value Stripe would send for timestamp ``t`` (signed as the literal ``t``)."""
    return hmac.new(secret.encode(), f"{t}.{payload}".encode(), "sha256").hexdigest()


def sdk_accepts(payload: str, header: str | None, secret: str) -> bool:
    with mock.patch("time.time", return_value=float(NOW)):
        try:
            return stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=300)
        except Exception:  # SignatureVerificationError, and TypeError on non-ASCII signatures
            return False


def sdk_accepts_any(payload: str, header: str | None, secrets: Sequence[str]) -> bool:
    return any(sdk_accepts(payload, header, secret) for secret in secrets)


def ichido_accepts(payload: str, header: str | None, secrets: Sequence[str]) -> bool:
    try:
        signature.verify(payload.encode("utf-8"), header, secrets, tolerance=300, now=NOW)
    except SignatureError:
        return False
    return True


def ichido_code(payload: str, header: str | None, secrets: Sequence[str] = (A,)) -> str:
    with pytest.raises(SignatureError) as caught:
        signature.verify(payload.encode(), header, secrets, tolerance=300, now=NOW)
    return caught.value.code


GOOD = sig(NOW)
UNICODE_PAYLOAD = '{"store":"ファミリーマート","note":"¥1,200"}'

# (name, payload, header, ichido's secrets, what both must say)
CASES = [
    ("valid", PAYLOAD, f"t={NOW},v1={GOOD}", [A], True),
    ("wrong_secret", PAYLOAD, f"t={NOW},v1={sig(NOW, WRONG)}", [A], False),
    ("tampered_body", PAYLOAD.replace("1767000000", "1767000001"), f"t={NOW},v1={GOOD}", [A], False),
    ("reserialised_body", PAYLOAD.replace(",", ", "), f"t={NOW},v1={GOOD}", [A], False),
    ("roll_old_then_new", PAYLOAD, f"t={NOW},v1={sig(NOW, B)},v1={GOOD}", [A], True),
    ("roll_new_then_old", PAYLOAD, f"t={NOW},v1={GOOD},v1={sig(NOW, B)}", [A], True),
    ("roll_no_v1_matches", PAYLOAD, f"t={NOW},v1={sig(NOW, B)},v1={sig(NOW, WRONG)}", [A], False),
    ("two_secrets_signed_with_first", PAYLOAD, f"t={NOW},v1={GOOD}", [A, B], True),
    ("two_secrets_signed_with_second", PAYLOAD, f"t={NOW},v1={sig(NOW, B)}", [A, B], True),
    ("two_secrets_signed_with_neither", PAYLOAD, f"t={NOW},v1={sig(NOW, WRONG)}", [A, B], False),
    ("v0_only", PAYLOAD, f"t={NOW},v0={GOOD}", [A], False),
    ("v0_and_v1", PAYLOAD, f"t={NOW},v0=deadbeef,v1={GOOD}", [A], True),
    ("no_t", PAYLOAD, f"v1={GOOD}", [A], False),
    ("t_not_an_integer", PAYLOAD, f"t=soon,v1={GOOD}", [A], False),
    ("t_float", PAYLOAD, f"t={NOW}.0,v1={sig(f'{NOW}.0')}", [A], False),
    ("t_empty", PAYLOAD, f"t=,v1={GOOD}", [A], False),
    ("t_leading_zeros", PAYLOAD, f"t=000{NOW},v1={GOOD}", [A], True),
    ("t_leading_zeros_signed_literally", PAYLOAD, f"t=000{NOW},v1={sig(f'000{NOW}')}", [A], False),
    ("t_plus_sign", PAYLOAD, f"t=+{NOW},v1={GOOD}", [A], True),
    ("t_underscores", PAYLOAD, f"t={NOW:_},v1={GOOD}", [A], True),
    ("t_surrounding_spaces", PAYLOAD, f"t= {NOW} ,v1={GOOD}", [A], True),
    ("t_negative", PAYLOAD, f"t=-{NOW},v1={sig(-NOW)}", [A], False),
    ("duplicate_t_first_is_signed", PAYLOAD, f"t={NOW},t={NOW - 5},v1={GOOD}", [A], True),
    ("duplicate_t_second_is_signed", PAYLOAD, f"t={NOW - 5},t={NOW},v1={GOOD}", [A], False),
    ("duplicate_t_first_unreadable", PAYLOAD, f"t=x,t={NOW},v1={GOOD}", [A], False),
    ("bare_v1_without_equals", PAYLOAD, f"t={NOW},v1,v1={GOOD}", [A], False),
    ("bare_t_without_equals", PAYLOAD, f"t,t={NOW},v1={GOOD}", [A], False),
    ("bare_other_key_is_ignored", PAYLOAD, f"t={NOW},v0,v1={GOOD}", [A], True),
    ("v1_empty", PAYLOAD, f"t={NOW},v1=", [A], False),
    ("v1_with_trailing_equals_part", PAYLOAD, f"t={NOW},v1={GOOD}=junk", [A], True),
    ("uppercase_hex", PAYLOAD, f"t={NOW},v1={GOOD.upper()}", [A], False),
    ("truncated_hex", PAYLOAD, f"t={NOW},v1={GOOD[:-1]}", [A], False),
    ("space_before_v1_key", PAYLOAD, f"t={NOW}, v1={GOOD}", [A], False),
    ("space_before_t_key", PAYLOAD, f" t={NOW},v1={GOOD}", [A], False),
    ("space_after_v1_value", PAYLOAD, f"t={NOW},v1={GOOD} ", [A], False),
    ("space_around_equals", PAYLOAD, f"t={NOW},v1 = {GOOD}", [A], False),
    ("semicolon_separated", PAYLOAD, f"t={NOW};v1={GOOD}", [A], False),
    ("empty_header", PAYLOAD, "", [A], False),
    ("no_header", PAYLOAD, None, [A], False),
    ("only_commas", PAYLOAD, ",,,", [A], False),
    ("stale_301_seconds", PAYLOAD, f"t={NOW - 301},v1={sig(NOW - 301)}", [A], False),
    ("exactly_at_tolerance", PAYLOAD, f"t={NOW - 300},v1={sig(NOW - 300)}", [A], True),
    ("stale_and_wrong_secret", PAYLOAD, f"t={NOW - 301},v1={sig(NOW - 301, WRONG)}", [A], False),
    ("future_timestamp", PAYLOAD, f"t={NOW + 3600},v1={sig(NOW + 3600)}", [A], True),
    ("far_future_timestamp", PAYLOAD, f"t={NOW + 10**7},v1={sig(NOW + 10**7)}", [A], True),
    ("non_ascii_v1_alone", PAYLOAD, f"t={NOW},v1=é{GOOD[1:]}", [A], False),
    ("non_ascii_v1_after_valid", PAYLOAD, f"t={NOW},v1={GOOD},v1=é", [A], True),
    ("unicode_body", UNICODE_PAYLOAD, f"t={NOW},v1={sig(NOW, A, UNICODE_PAYLOAD)}", [A], True),
    ("empty_body", "", f"t={NOW},v1={sig(NOW, A, '')}", [A], True),
]


@pytest.mark.parametrize("payload, header, secrets, expected",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_ichido_and_the_stripe_sdk_agree(payload: str, header: str | None,
                                         secrets: list[str], expected: bool) -> None:
    sdk = sdk_accepts_any(payload, header, secrets)
    ours = ichido_accepts(payload, header, secrets)
    assert sdk is expected, "the table itself is wrong about the SDK"
    assert ours is sdk


def test_non_ascii_v1_before_the_valid_one_is_judged_as_by_the_sdk() -> None:
    """The SDK compares ``str`` values with ``hmac.compare_digest``, which raises on non-ASCII:
    a non-ASCII ``v1`` met before the valid one rejects the header; met after it, it does not
    matter. (Found as a divergence; ichido now follows the SDK.)"""
    before, after = f"t={NOW},v1=é,v1={GOOD}", f"t={NOW},v1={GOOD},v1=é"
    assert (sdk_accepts(PAYLOAD, before, A), sdk_accepts(PAYLOAD, after, A)) == (False, True)
    assert (ichido_accepts(PAYLOAD, before, [A]), ichido_accepts(PAYLOAD, after, [A])) == (
        False, True)
    # with two secrets the SDK is asked once per secret: the other secret's v1 may still match
    rolled = f"t={NOW},v1={sig(NOW, B)},v1=é,v1={GOOD}"
    assert ichido_accepts(PAYLOAD, rolled, [A, B]) == sdk_accepts_any(PAYLOAD, rolled, [A, B])


# -- error codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, ""])
def test_absent_header_is_missing_signature(header: str | None) -> None:
    assert ichido_code(PAYLOAD, header) == "missing_signature"


@pytest.mark.parametrize("header", [
    f"t={NOW},v1={sig(NOW, WRONG)}",  # wrong secret
    f"v1={GOOD}",  # no timestamp
    f"t={NOW},v0={GOOD}",  # no v1
    "garbage",
    f"t={NOW - 301},v1={sig(NOW - 301, WRONG)}",  # stale AND unsigned: the signature is judged first
])
def test_unverifiable_header_is_bad_signature(header: str) -> None:
    assert ichido_code(PAYLOAD, header) == "bad_signature"


def test_old_but_correctly_signed_timestamp_is_stale_timestamp() -> None:
    assert ichido_code(PAYLOAD, f"t={NOW - 301},v1={sig(NOW - 301)}") == "stale_timestamp"


def test_tolerance_none_or_zero_disables_the_age_check_as_in_the_sdk() -> None:
    header = f"t={NOW - 10**6},v1={sig(NOW - 10**6)}"
    for tolerance in (None, 0):
        assert signature.verify(PAYLOAD.encode(), header, [A], tolerance=tolerance,
                                now=NOW) == NOW - 10**6


def test_verify_returns_the_signed_timestamp() -> None:
    header = f"t=+000{NOW},v1={GOOD}"
    assert signature.verify(PAYLOAD.encode(), header, [A], now=NOW) == NOW


def test_verify_uses_the_real_clock_by_default() -> None:
    fresh = signature.sign(PAYLOAD.encode(), [A])
    assert signature.verify(PAYLOAD.encode(), fresh, [A]) > 0
    stale = signature.sign(PAYLOAD.encode(), [A], timestamp=int(time.time()) - 3600)
    with pytest.raises(SignatureError) as caught:
        signature.verify(PAYLOAD.encode(), stale, [A])
    assert caught.value.code == "stale_timestamp"


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    signature.verify(PAYLOAD.encode(), f"t={NOW},v1={sig(NOW, B)},v1={GOOD}", [A], now=NOW)
    with pytest.raises(SignatureError):
        signature.verify(PAYLOAD.encode(), f"t={NOW},v1={sig(NOW, B)}", [A], now=NOW)
    assert calls, "signatures must be compared with hmac.compare_digest"


# -- interoperability with the SDK's own signer ----------------------------------------------------


def test_sdk_signed_header_is_accepted_by_ichido() -> None:
    header = stripe.WebhookSignature.generate_signature_header(PAYLOAD, A, timestamp=NOW)
    assert ichido_accepts(PAYLOAD, header, [A])
    assert not ichido_accepts(PAYLOAD, header, [B])


def test_ichido_signed_roll_header_is_accepted_by_the_sdk_with_either_secret() -> None:
    header = signature.sign(PAYLOAD.encode(), [A, B], timestamp=NOW)
    assert sdk_accepts(PAYLOAD, header, A)
    assert sdk_accepts(PAYLOAD, header, B)
    assert not sdk_accepts(PAYLOAD, header, WRONG)


# -- property: random headers from fragments, random bodies -----------------------------------------

ASCII = string.ascii_letters + string.digits + string.punctuation + " "
HEADER_CHARS = ASCII + "éü¥\u3042\x80\xff"  # what a latin-1 decoded header can carry, and more
TIMESTAMPS = st.one_of(
    st.sampled_from([NOW, NOW - 1, NOW - 299, NOW - 300, NOW - 301, NOW + 1, NOW + 86_400, 0]),
    st.integers(min_value=NOW - 1000, max_value=NOW + 1000),
    st.integers(min_value=-(10**12), max_value=10**12),
)


@st.composite
def signed_deliveries(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    payload = draw(st.text(max_size=60))
    t = draw(TIMESTAMPS)
    other_t = draw(TIMESTAMPS)
    good = {s: sig(t, s, payload) for s in (A, B, WRONG)}
    t_forms = [f"t={t}", f"t=0{t}" if t >= 0 else f"t=-0{-t}", f"t=+{t}", f"t={t:_}",
               f"t= {t}", f"t={t} ", f"t={other_t}", "t=", "t", f"t={t}.0", " t=" + str(t)]
    v1_forms = [f"v1={good[A]}", f"v1={good[B]}", f"v1={good[WRONG]}",
                f"v1={sig(other_t, A, payload)}", f"v1={sig(f'0{t}', A, payload)}",
                f"v1={good[A].upper()}", f"v1={good[A][:-2]}", f"v1={good[A]}=x", "v1", "v1=",
                f" v1={good[A]}", f"v1={good[A]} ", f"v0={good[A]}", f"V1={good[A]}",
                "v1=é", f"v1=\xe9{good[A][1:]}", f"v1={good[A][:-1]}\u3042"]
    fragment = st.one_of(st.sampled_from(t_forms), st.sampled_from(v1_forms),
                         st.text(alphabet=HEADER_CHARS, max_size=12))
    pieces = draw(st.lists(fragment, max_size=6))
    header = ",".join(pieces) if draw(st.booleans()) else ", ".join(pieces)
    secrets = draw(st.sampled_from([[A], [B], [A, B], [B, A], [WRONG]]))
    return payload, header, secrets


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_deliveries())
@example((PAYLOAD, f"t={NOW},v1={GOOD}", [A]))
@example((PAYLOAD, f"t=0{NOW},t=1,v1,v1={GOOD}", [A]))
@example((PAYLOAD, f"t={NOW},v1=é,v1={GOOD}", [A]))
@example((PAYLOAD, f"t={NOW},v1={sig(NOW, B)},v1=é,v1={GOOD}", [A, B]))
def test_random_headers_are_judged_as_by_the_sdk(delivery: tuple[str, str, list[str]]) -> None:
    payload, header, secrets = delivery
    assert ichido_accepts(payload, header, secrets) == sdk_accepts_any(payload, header, secrets)


@settings(max_examples=200, deadline=None)
@given(payload=st.text(max_size=200), t=TIMESTAMPS,
       secrets=st.lists(st.sampled_from([A, B]), min_size=1, max_size=2, unique=True))
def test_any_header_ichido_signs_verifies_in_both(payload: str, t: int,
                                                   secrets: list[str]) -> None:
    header = signature.sign(payload.encode(), secrets, timestamp=t)
    expected = t >= NOW - 300
    assert ichido_accepts(payload, header, secrets) is expected
    for secret in secrets:
        assert sdk_accepts(payload, header, secret) is expected
