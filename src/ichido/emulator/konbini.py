"""Konbini specifics: option checks, voucher expiry in JST, test-mode outcomes, the voucher.

Facts (docs.stripe.com/payments/konbini and …/konbini/accept-a-payment, read 2026-11):
- JPY only; minimum charge ¥120, maximum ¥300,000.
- ``expires_after_days`` 1–60 (default 3): the voucher expires at 23:59:59 JST that day;
  ``expires_at`` must be more than 30 minutes ahead and less than 60 days; not both.
- ``product_description`` ≤ 22 characters; ``confirmation_number`` 10–11 digits, never all zeros.
- Test mode, by billing e-mail ``{prefix}X@{domain}`` or confirmation number (the number wins):
  plain / 11111111110 pays after 3 minutes; succeed_immediately / 22222222220 pays at once;
  expire_immediately / 33333333330 expires at once (``expires_at`` = now); expire_with_delay /
  44444444440 expires in 3 minutes (``expires_at`` = now + 3 min); fill_never / 55555555550
  never pays and expires at ``expires_at``; 01234567890 is a rejected confirmation number and
  00000000000 a validation error.
- An expired voucher returns the PaymentIntent to ``requires_payment_method`` and sends
  ``payment_intent.payment_failed``; re-confirming in ``requires_action`` issues a new voucher
  with a new ``hosted_voucher_url``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ichido.emulator import forms
from ichido.emulator.errors import invalid
from ichido.emulator.objects import digits, new_id

MIN_AMOUNT, MAX_AMOUNT = 120, 300_000
JST = dt.timezone(dt.timedelta(hours=9))
STORES = ("familymart", "lawson", "ministop", "seicomart")
PAY_DELAY = 180  # "succeeds after 3 minutes"; "expires in 3 minutes"
OPTION_KEYS = {"confirmation_number", "expires_after_days", "expires_at", "product_description",
               "setup_future_usage"}
_NUMBERS = {"11111111110": "pay_later", "22222222220": "pay_now", "33333333330": "expire_now",
            "44444444440": "expire_later", "55555555550": "never", "01234567890": "reject"}
_EMAILS = (("succeed_immediately", "pay_now"), ("expire_immediately", "expire_now"),
           ("expire_with_delay", "expire_later"), ("fill_never", "never"))


def empty_options() -> dict[str, Any]:
    return {"confirmation_number": None, "expires_after_days": None, "expires_at": None,
            "product_description": None}


def read_options(raw: dict[str, Any], now: int) -> dict[str, Any]:
    """Validated ``payment_method_options[konbini]`` (only the keys given)."""
    prefix = "payment_method_options[konbini]"
    forms.check_known(raw, OPTION_KEYS, prefix)
    out: dict[str, Any] = {}
    days = forms.integer(raw, "expires_after_days", param=f"{prefix}[expires_after_days]")
    at = forms.integer(raw, "expires_at", param=f"{prefix}[expires_at]")
    if days is not None and at is not None:
        raise invalid("Only one of expires_after_days or expires_at may be set.",
                      param=f"{prefix}[expires_at]")
    if days is not None:
        if not 1 <= days <= 60:
            raise invalid("expires_after_days must be between 1 and 60.",
                          param=f"{prefix}[expires_after_days]")
        out.update(expires_after_days=days, expires_at=None)
    if at is not None:
        if not now + 1800 < at < now + 60 * 86400:
            raise invalid("expires_at must be more than 30 minutes from now and less than 60 "
                          "days from now.", param=f"{prefix}[expires_at]")
        out.update(expires_at=at, expires_after_days=None)
    description = forms.text(raw, "product_description")
    if description is not None:
        if len(description) > 22:
            raise invalid("product_description must be at most 22 characters.",
                          param=f"{prefix}[product_description]")
        out["product_description"] = description
    number = forms.text(raw, "confirmation_number")
    if number is not None:
        if not re.fullmatch(r"\d{10,11}", number) or set(number) == {"0"}:
            raise invalid("confirmation_number must be 10 to 11 digits and not only zeros.",
                          param=f"{prefix}[confirmation_number]")
        out["confirmation_number"] = number
    return out


def check_amount(amount: int, currency: str) -> None:
    if currency != "jpy":
        raise invalid(f"The currency provided ({currency}) is invalid. Konbini only supports "
                      "jpy.", param="currency", code="payment_intent_invalid_parameter")
    if amount < MIN_AMOUNT:
        raise invalid(f"Amount must be at least ¥{MIN_AMOUNT} for konbini.", param="amount",
                      code="amount_too_small")
    if amount > MAX_AMOUNT:
        raise invalid(f"Amount must be no more than ¥{MAX_AMOUNT:,} for konbini.",
                      param="amount", code="amount_too_large")


def outcome(email: str | None, confirmation_number: str | None) -> str:
    """Which test-mode story this voucher tells; the confirmation number wins over the e-mail."""
    if confirmation_number in _NUMBERS:
        return _NUMBERS[confirmation_number]
    local = (email or "").rsplit("@", 1)[0]
    for token, story in _EMAILS:
        if local.endswith(token):
            return story
    return "pay_later"


def expiry(options: dict[str, Any], now: int, story: str) -> int:
    if story == "expire_now":
        return now
    if story == "expire_later":
        return now + PAY_DELAY
    if options.get("expires_at"):
        return int(options["expires_at"])
    days = options.get("expires_after_days") or 3
    last_day = dt.datetime.fromtimestamp(now, JST).date() + dt.timedelta(days=days)
    return int(dt.datetime.combine(last_day, dt.time(23, 59, 59), JST).timestamp())


def voucher(public_url: str, expires_at: int, confirmation_number: str | None) -> tuple[
        str, dict[str, Any]]:
    """A fresh voucher: its token (for the hosted page) and ``konbini_display_details``."""
    token = new_id("test", 32)
    number = confirmation_number or digits(11)
    stores = {store: {"confirmation_number": number, "payment_code": digits(12 if i % 2 else 10)}
              for i, store in enumerate(STORES)}
    return token, {"expires_at": expires_at,
                   "hosted_voucher_url": f"{public_url}/_emulator/vouchers/{token}",
                   "stores": stores}


def voucher_page(pi: dict[str, Any]) -> str:
    """The hosted voucher, plain HTML: what the buyer takes to the store."""
    action = pi.get("next_action") or {}
    details = action.get("konbini_display_details")
    if not details:
        return f"<h1>{pi['id']}</h1><p>No voucher to pay: status {pi['status']}.</p>"
    rows = "".join(f"<tr><td>{store}</td><td>{codes['payment_code']}</td>"
                   f"<td>{codes['confirmation_number']}</td></tr>"
                   for store, codes in details["stores"].items())
    until = dt.datetime.fromtimestamp(details["expires_at"], JST).isoformat()
    return (f"<!doctype html><meta charset=utf-8><title>コンビニ払い</title>"
            f"<h1>¥{pi['amount']:,}</h1><p>お支払い期限 {until}</p>"
            f"<table><tr><th>store</th><th>payment code</th><th>confirmation number</th></tr>"
            f"{rows}</table>")
