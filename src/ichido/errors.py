"""Named errors. Each carries a machine-readable ``code`` that the HTTP layer and the CLI show."""

from __future__ import annotations


class IchidoError(Exception):
    """Base class: ``code`` is stable and machine-readable, the message is for people."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class ConfigError(IchidoError):
    """A setting is missing or invalid; raised at start-up, never at request time."""

    code = "config_error"


class RejectedDelivery(IchidoError):
    """A webhook delivery that is refused before anything is stored (I6, docs/invariants.md)."""

    http_status = 400


class SignatureError(RejectedDelivery):
    """Codes: missing_signature, bad_signature, stale_timestamp."""

    code = "bad_signature"


class StorageUnavailable(IchidoError):
    """The durable store could not take the write; the receiver answers 503 so Stripe retries."""

    code = "storage_unavailable"
    http_status = 503


class SchemaError(IchidoError):
    """The database schema is missing or older than this code expects (``schema_outdated``),
    or one of its migration steps failed (``migration_failed``: fix the step, not the server)."""

    code = "schema_outdated"


class NotFound(IchidoError):
    code = "not_found"
    http_status = 404


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
    http_status = 413


class UnsupportedMediaType(RejectedDelivery):
    code = "unsupported_media_type"
    http_status = 415
