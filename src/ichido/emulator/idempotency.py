"""Idempotency keys as Stripe keeps them (docs.stripe.com/api/idempotent_requests).

- ``Idempotency-Key`` on a POST; up to 255 characters.
- The status code and body of the first request are saved once the endpoint began executing
  (successes, a 402 decline, 5xx); a request that failed validation or conflicted with a
  concurrent one is not saved, so it is safe to retry.
- A later request with the same key and the same endpoint + parameters gets the saved answer
  again (same status, same body, so the same object id), marked ``Idempotent-Replayed: true``;
  with other parameters it fails with a 400 ``idempotency_error`` ("Keys for idempotent requests
  can only be used with the same parameters they were first used with…"): stripe-python turns a
  400/404 of that type into ``stripe.IdempotencyError``.
- While the first request is still executing, another one with the key gets 409 with code
  ``idempotency_key_in_use`` (docs.stripe.com/error-codes: "The idempotency key provided is
  currently being used in another request"; api/errors: 409 "The request conflicts with another
  request (perhaps due to using the same idempotent key)").
- Keys may be pruned once at least 24 hours old; we prune at exactly 24 h of emulator clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from ichido.emulator.errors import StripeError, invalid

MAX_KEY_LENGTH = 255
KEEP_FOR = 24 * 3600


@dataclass(frozen=True)
class Saved:
    fingerprint: bytes
    status: int
    body: bytes
    request_id: str
    saved_at: int


@dataclass
class IdempotencyKeys:
    now: Callable[[], int]
    saved: dict[str, Saved] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)

    @staticmethod
    def fingerprint(method: str, path: str, params: dict[str, Any]) -> bytes:
        """What must match for a replay: the endpoint and its parameters (in any order)."""
        return orjson.dumps([method, path, params], option=orjson.OPT_SORT_KEYS)

    def begin(self, key: str, fingerprint: bytes) -> Saved | None:
        """The saved answer to replay, or None after claiming the key; raise on misuse."""
        if len(key) > MAX_KEY_LENGTH:
            raise invalid(f"Invalid idempotency key: keys can be up to {MAX_KEY_LENGTH} "
                          f"characters long, this one has {len(key)}.", param="Idempotency-Key")
        self._prune()
        if key in self.in_flight:
            raise StripeError(409, "invalid_request_error",
                              "The idempotency key provided is currently being used in another "
                              "request. This occurs if your integration is making duplicate "
                              "requests simultaneously.", code="idempotency_key_in_use")
        saved = self.saved.get(key)
        if saved is None:
            self.in_flight.add(key)
            return None
        if saved.fingerprint != fingerprint:
            raise StripeError(400, "idempotency_error",
                              "Keys for idempotent requests can only be used with the same "
                              "parameters they were first used with. Try using a key other than "
                              f"'{key}' if you meant to execute a different request.")
        return saved

    def finish(self, key: str, fingerprint: bytes, status: int, body: bytes, request_id: str,
               keep: bool) -> None:
        self.in_flight.discard(key)
        if keep:
            self.saved[key] = Saved(fingerprint, status, body, request_id, self.now())

    def _prune(self) -> None:
        oldest = self.now() - KEEP_FOR
        for key in [k for k, s in self.saved.items() if s.saved_at <= oldest]:
            del self.saved[key]
