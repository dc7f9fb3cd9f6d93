"""What a buyer asks for (``POST /orders``, ``POST /checkout``), checked before anything is
written: a malformed request is refused with its reason code and leaves no order behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ichido.shop import orders
from ichido.shop.errors import ShopError
from ichido.shop.messages import LOCALES


class OrderError(ShopError):
    """A refused order or refund; ``code`` says why, ``details`` carries the numbers."""

    http_status = 422

    def __init__(self, message: str, *, code: str, status: int = 422, **details: Any) -> None:
        super().__init__(message, code=code)
        self.http_status = status
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["error"].update(self.details)
        return body


def buyer_email(value: Any) -> str:
    """The buyer's address as a mail header can carry it, or ``invalid_email`` when the order
    is placed: a control character (CR/LF would end the header) fails no later, at the send."""
    if (not isinstance(value, str) or "@" not in value or len(value) > 254
            or not value.isprintable()):
        raise OrderError("a valid email is required", code="invalid_email")
    return value


@dataclass(frozen=True)
class OrderRequest:
    product: str
    quantity: int
    payment_method: str
    email: str
    payment_method_id: str | None = None
    locale: str | None = None  # "ja" or "en"; None: the shop's default
    methods: tuple[str, ...] | None = None  # Checkout: the methods offered (None: all allowed)

    @classmethod
    def parse_checkout(cls, body: Any) -> "OrderRequest":
        """``POST /checkout``: no method yet (the buyer picks one on Stripe's page)."""
        if not isinstance(body, dict):
            raise OrderError("the body must be a JSON object", code="invalid_request")
        methods = body.get("payment_methods")
        if methods is not None and (not isinstance(methods, list) or not methods
                                    or not all(isinstance(m, str) for m in methods)):
            raise OrderError('payment_methods must be a list such as ["card", "konbini"]',
                             code="invalid_request")
        rest = {k: v for k, v in body.items() if k != "payment_methods"}
        request = cls.parse(rest | {"payment_method": orders.CHECKOUT})
        return replace(request, methods=tuple(methods) if methods else None)

    @classmethod
    def parse(cls, body: Any) -> "OrderRequest":
        if not isinstance(body, dict):
            raise OrderError("the body must be a JSON object", code="invalid_request")
        quantity = body.get("quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 100:
            raise OrderError("quantity must be a whole number from 1 to 100",
                             code="invalid_quantity")
        email = buyer_email(body.get("email"))
        for field in ("product", "payment_method"):
            if not isinstance(body.get(field), str):
                raise OrderError(f"{field} is required", code="invalid_request")
        pm = body.get("payment_method_id")
        locale = body.get("locale")
        if locale is not None and locale not in LOCALES:
            raise OrderError(f"locale must be one of {', '.join(LOCALES)}", code="invalid_locale")
        return cls(body["product"], quantity, body["payment_method"], email,
                   pm if isinstance(pm, str) else None, locale)

    def fingerprint(self) -> str:
        return hashlib.sha256(orjson.dumps(self.__dict__, option=orjson.OPT_SORT_KEYS)).hexdigest()
