"""Stripe-Signature: parse and check it exactly as Stripe's SDK does, for any of several secrets.

Header: ``t=<unix time>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">[,v1=…][,v0=…]``. Several
``v1`` appear while a secret is rolled; any ``v1`` matching any configured secret is enough.

Parsing mirrors ``stripe.WebhookSignature`` (16.x) on purpose, so that both accept and reject the
same headers: items split on ``,`` then on ``=``, the first ``t`` read with ``int()`` and signed
as ``"%d"``, keys compared without trimming. Like the SDK, a timestamp in the future is not
refused: the HMAC already binds it to whoever holds the secret, and refusing it would only turn
clock skew into lost deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Sequence

from ichido.errors import SignatureError

# The public API (docs/api.md): what an application may import from here.
__all__ = ["sign", "verify"]

SCHEME = "v1"


def parse_header(header: str) -> tuple[int, list[str]]:
    """Return ``(timestamp, v1 signatures)``; raise ``SignatureError`` when unparsable.

    Written as the SDK writes it: every ``t`` and ``v1`` item must have a value, the first ``t``
    must read as an integer.
    """
    items = [item.split("=", 2) for item in header.split(",")]
    try:
        timestamp = int([item[1] for item in items if item[0] == "t"][0])
        signatures = [item[1] for item in items if item[0] == SCHEME]
    except (IndexError, ValueError):
        raise SignatureError("Stripe-Signature has no readable timestamp and signatures") from None
    if not signatures:
        raise SignatureError("Stripe-Signature has no v1 signature")
    return timestamp, signatures


def compute(payload: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``"{t}.{payload}"``: what Stripe puts in ``v1``."""
    return hmac.new(secret.encode(), b"%d." % timestamp + payload, hashlib.sha256).hexdigest()


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: float | None = 300,
    now: float | None = None,
) -> int:
    """Check ``header`` against the raw body; return the signed timestamp or raise.

    Raises ``SignatureError`` with code ``missing_signature``, ``bad_signature`` or
    ``stale_timestamp``. The signature is judged before the timestamp, as Stripe's SDK does.
    """
    if not header:
        raise SignatureError("no Stripe-Signature header", code="missing_signature")
    timestamp, signatures = parse_header(header)
    for secret in secrets:
        expected = compute(payload, secret, timestamp)
        if _any_matches(expected, signatures):
            break
    else:
        raise SignatureError("no v1 signature matches the payload for any configured secret")
    if tolerance and timestamp < (time.time() if now is None else now) - tolerance:
        raise SignatureError(
            f"timestamp {timestamp} is older than the {tolerance:g} s tolerance",
            code="stale_timestamp",
        )
    return timestamp


def _any_matches(expected: str, signatures: list[str]) -> bool:
    """Constant-time comparisons in header order. A non-ASCII value ends the search for this
    secret, at the point where the SDK's ``hmac.compare_digest`` on ``str`` raises."""
    for given in signatures:
        if not given.isascii():
            return False
        if hmac.compare_digest(expected, given):
            return True
    return False


def sign(payload: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """Build a ``Stripe-Signature`` header with one ``v1`` per secret (a roll signs with both)."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"{SCHEME}={compute(payload, s, t)}" for s in secrets)])
