"""Named errors, and the catalogue of every reason code ichido can answer or print.

Each error carries a machine-readable ``code`` of type ``ReasonCode``, so the type checker
refuses a code that is not in the catalogue at every raise site and every answer; the HTTP
layer (the receiver) decides which status a code gets, the CLI prints it as
``error [code] message``. The shop and the emulator are applications with their own codes (the
shop's in ``ichido.shop.errors``, the emulator's are Stripe's own).
"""

from __future__ import annotations

from typing import Any, ClassVar, Collection, Literal, get_args

# The public API (docs/api.md): what an application may import from here.
__all__ = ["ConfigError", "IchidoError", "NotFound", "REASONS", "ReasonCode", "RetryLater",
           "error_json"]

ReasonCode = Literal[
    # Refused deliveries (4xx from the receiver, nothing stored: I6)
    "source_not_allowed", "missing_signature", "bad_signature", "stale_timestamp",
    "unsupported_media_type", "too_large", "invalid_utf8", "nesting_too_deep", "malformed_json",
    "integer_too_long", "not_an_event", "value_out_of_range", "invalid_characters",
    "field_too_long", "client_disconnected", "method_not_allowed",
    # Refused connections (answered by the HTTP server before any signature is read)
    "headers_too_large", "request_timeout", "too_many_connections",
    "too_many_connections_from_address",
    # Not stored now, retry later (503: Stripe retries)
    "storage_unavailable", "shutting_down",
    # Start-up and operations (the CLI prints them, exit code 2)
    "config_error", "missing_secret", "bad_app", "read_only_store", "store_directory_missing",
    "intake_mismatch", "schema_outdated", "migration_failed", "window_too_short", "not_found",
    "not_supported", "missing_api_key", "replay_refused", "force_required", "no_dlq",
    "bad_filter", "missing_dashboard_token", "missing_extra",
    # Processing (recorded on the event, never sent to Stripe)
    "retry_later", "lease_lost", "refetch_budget", "rate_limited", "transaction_too_large",
    "no_sql_on_dynamodb", "transaction_cancelled", "body_unavailable", "fetch_failed",
    "event_expired", "error",
]

# What each code means: the README's table of reason codes is this dict. Its keys are typed,
# so a key not in ReasonCode fails type checking, and the check below refuses a ReasonCode
# with no meaning here.
REASONS: dict[ReasonCode, str] = {
    # Refused deliveries (4xx from the receiver, nothing stored: I6)
    "source_not_allowed": "the sender's address is not in ICHIDO_ALLOWED_SOURCES_FILE (Stripe's "
                          "webhook addresses)",
    "missing_signature": "the request has no Stripe-Signature header",
    "bad_signature": "no v1 signature matches the body for any configured secret, or the "
                     "header cannot be read",
    "stale_timestamp": "the signed timestamp is older than the tolerance (ICHIDO_TOLERANCE)",
    "unsupported_media_type": "the body is not declared as JSON",
    "too_large": "the body is larger than ICHIDO_MAX_BODY",
    "invalid_utf8": "the body is not valid UTF-8 (Stripe's SDK refuses it too)",
    "nesting_too_deep": "the JSON nests deeper than 100 levels (Stripe's events: about 10; "
                        "Stripe's SDK stops near 330)",
    "malformed_json": "the body is not valid JSON",
    "integer_too_long": "an integer has more than 4300 digits (Python's limit: Stripe's SDK "
                        "cannot read it)",
    "not_an_event": "valid JSON, but not a Stripe event (object, id, type, created)",
    "value_out_of_range": "a field the store keeps is outside its range (created: 64 bits)",
    "invalid_characters": "an id or type holds control or other characters no id has",
    "field_too_long": "an id or type is longer than 255 characters",
    "client_disconnected": "the sender went away before its body was read",
    "method_not_allowed": "the AWS receiver's Function URL takes only POST (405)",
    # Refused connections (answered by the HTTP server before any signature is read)
    "headers_too_large": "the request line and headers exceed ICHIDO_MAX_HEADER",
    "request_timeout": "the headers (ICHIDO_HEADER_TIMEOUT) or the body (ICHIDO_BODY_TIMEOUT) "
                       "did not arrive in time",
    "too_many_connections": "ICHIDO_MAX_CONNECTIONS connections are open already, none of them "
                            "waiting for its headers",
    "too_many_connections_from_address": "the sender's address holds "
                                         "ICHIDO_MAX_CONNECTIONS_PER_ADDRESS connections already, "
                                         "none of them waiting for its headers",
    # Not stored now, retry later (503: Stripe retries)
    "storage_unavailable": "the durable store could not take the write",
    "shutting_down": "the receiver is stopping and did not store this delivery",
    # Start-up and operations (the CLI prints them, exit code 2)
    "config_error": "a setting is missing or invalid",
    "missing_secret": "STRIPE_WEBHOOK_SECRET is not set (or its file is empty)",
    "bad_app": "--app does not name an importable ichido.App",
    "read_only_store": "the database file or its directory cannot be written",
    "store_directory_missing": "the directory of the SQLite store does not exist",
    "intake_mismatch": "the intake file beside a SQLite store belongs to another store",
    "schema_outdated": "the database schema is older than this code: run ichido migrate",
    "migration_failed": "a schema migration step failed",
    "window_too_short": "prune --older-than is shorter than Stripe's retry window",
    "not_found": "no such record",
    "not_supported": "this operation is not offered on this store (prune on DynamoDB)",
    "missing_api_key": "STRIPE_API_KEY is not set (the Events API needs it)",
    "replay_refused": "a replay with no statuses, or of statuses not replayable (pending, processing)",
    "force_required": "replaying processed events needs --force",
    "no_dlq": "the SQS queue has no dead-letter queue to redrive",
    "bad_filter": "a dashboard filter or page cursor cannot be read",
    "missing_dashboard_token": "the standalone dashboard needs ICHIDO_DASHBOARD_TOKEN",
    "missing_extra": "a setting or command needs an optional library (pip install "
                     "'ichido[EXTRA]') or the shop or emulator (pip install ichido-shop, "
                     "ichido-emulator)",
    # Processing (recorded on the event, never sent to Stripe)
    "retry_later": "a handler cannot apply the event yet; it is retried with backoff",
    "lease_lost": "another worker took the event over after this one's lease ran out",
    "refetch_budget": "the budget for re-fetching objects from Stripe is spent; retried later",
    "rate_limited": "Stripe's API answered 429 while re-fetching or fetching; retried later "
                    "(no sooner than its Retry-After)",
    "fetch_failed": "reading a thin event or its object from Stripe's API failed (a network "
                    "error, a 5xx, a refusal); retried with backoff, then dead-lettered",
    "event_expired": "Stripe no longer has the thin event to fetch (404, older than its 30 "
                     "days): dead-lettered at once",
    "transaction_too_large": "a handler wrote more items than one DynamoDB transaction takes",
    "no_sql_on_dynamodb": "a handler written for SQL ran on DynamoDB",
    "transaction_cancelled": "DynamoDB refused the transaction (a condition or a conflict)",
    "body_unavailable": "an AWS event's body, kept in S3 (ICHIDO_BODY_BUCKET), cannot be read",
    "error": "an unnamed failure (a bug: name it)",
}

_UNLISTED = set(get_args(ReasonCode)) ^ set(REASONS)
if _UNLISTED:  # a code added to one of the two and not the other fails every import
    raise AssertionError(f"ReasonCode and REASONS differ: {sorted(_UNLISTED)}")


def error_json(code: ReasonCode, message: str) -> dict[str, Any]:
    """The one shape of every error answer, ``{"error": {"code", "message"}}``: the receiver's,
    the HTTP server's refusals and the AWS receiver's all build it here."""
    return {"error": {"code": code, "message": message}}


class IchidoError(Exception):
    """Base class: ``code`` is stable and machine-readable (a key of ``REASONS``), the message
    is for people. ``vocabulary`` is the catalogue the code must be in when it is answered: an
    application with codes of its own (the shop) gives its errors its own."""

    code: ReasonCode = "error"
    vocabulary: ClassVar[Collection[str]] = REASONS

    def __init__(self, message: str, *, code: ReasonCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code

    def to_json(self) -> dict[str, Any]:
        """The answer; a code outside the vocabulary is refused here too, for the code the type
        checker does not see (the shop's)."""
        if self.code not in self.vocabulary:
            raise ValueError(f"{self.code!r} is not in the catalogue of {type(self).__name__}")
        return error_json(self.code, self.message)


class ConfigError(IchidoError):
    """A setting is missing or invalid; raised at start-up, never at request time."""

    code = "config_error"


class RejectedDelivery(IchidoError):
    """A webhook delivery that is refused before anything is stored (I6, docs/invariants.md)."""

    code: ReasonCode = "not_an_event"  # typed again: its subclasses name other codes


class SignatureError(RejectedDelivery):
    """Codes: missing_signature, bad_signature, stale_timestamp."""

    code = "bad_signature"


class StorageUnavailable(IchidoError):
    """The durable store could not take the write; the receiver answers 503 so Stripe retries."""

    code = "storage_unavailable"


class SchemaError(IchidoError):
    """The database schema is missing or older than this code expects (``schema_outdated``),
    or one of its migration steps failed (``migration_failed``: fix the step, not the server)."""

    code = "schema_outdated"


class NotFound(IchidoError):
    code = "not_found"


class RetryLater(IchidoError):
    """Raised by a handler when the event cannot apply yet (its object is unknown so far).

    The worker treats it as an ordinary failure: the event is retried with backoff, never dropped.
    """

    code = "retry_later"


class LeaseLost(IchidoError):
    """Another worker took over this event after our lease ran out; our work is rolled back."""

    code = "lease_lost"


class PayloadTooLarge(RejectedDelivery):
    code = "too_large"


class UnsupportedMediaType(RejectedDelivery):
    code = "unsupported_media_type"
