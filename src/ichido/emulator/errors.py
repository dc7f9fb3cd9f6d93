"""Stripe's error objects, as values the routes raise and the HTTP layer renders.

Shape (docs.stripe.com/api/errors): ``{"error": {"type", "code", "message", "param",
"decline_code", "doc_url", "request_log_url", "payment_intent", ...}}``; ``type`` is one of
``api_error``, ``card_error``, ``idempotency_error``, ``invalid_request_error``. Stripe leaves
out the fields that do not apply (``code``, ``param``…), and so do we: the ``api_errors`` schema
types them as plain strings, so a ``null`` there would not be Stripe's shape.
Status codes (same page): 400 bad request, 401 no valid key, 402 request failed (card
declined), 404 missing, 409 conflict with another request (idempotency key in use).
"""

from __future__ import annotations

from typing import Any

DOCS = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An error response. ``saved`` says whether an idempotency key keeps it (see idempotency)."""

    def __init__(self, status: int, type: str, message: str, *, code: str | None = None,
                 param: str | None = None, undo: bool | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type, message
        self.code, self.param, self.extra = code, param, extra
        self._undo = undo

    @property
    def undo(self) -> bool:
        """Whether the request's writes are undone (see journal): a refusal's are, a
        result's (a decline that left a failed charge) are not, unless the raiser says so."""
        return not self.saved if self._undo is None else self._undo

    @property
    def saved(self) -> bool:
        """Stripe stores a key's result only once the endpoint began executing: a validation
        failure or a conflict is not stored (docs.stripe.com/api/idempotent_requests). A 402
        (card declined) is a result, so it is stored."""
        return self.status == 402 or self.status >= 500

    def payload(self) -> dict[str, Any]:
        """The error object, as a PaymentIntent's ``last_payment_error`` shows it too."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"{DOCS}/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return error | self.extra

    def body(self, request_id: str) -> dict[str, Any]:
        log_url = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": self.payload() | {"request_log_url": log_url}}


def invalid(message: str, *, param: str | None = None, code: str | None = None,
            status: int = 400, **extra: Any) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code=code, param=param, **extra)


def missing_param(param: str) -> StripeError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def unknown_param(param: str) -> StripeError:
    return invalid(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    return invalid(f"No such {kind}: '{object_id}'", param=param, code="resource_missing",
                   status=404)


def unexpected_state(message: str, **extra: Any) -> StripeError:
    return invalid(message, code="payment_intent_unexpected_state", **extra)


def unauthenticated(message: str) -> StripeError:
    """401: Stripe answers a missing or wrong key with an ``invalid_request_error``."""
    return StripeError(401, "invalid_request_error", message)
