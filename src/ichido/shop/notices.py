"""The mails an order sends, composed when they are queued (so a resend from the outbox is
the same message): to the buyer in the order's locale, to the warehouse in plain terms."""

from __future__ import annotations

from typing import Any

from ichido.shop.messages import deadline, iso, store_name, text, yen

STORE_ORDER = ("familymart", "lawson", "ministop", "seicomart")


def _letter(order: dict[str, Any], subject: str, paragraphs: list[str]) -> dict[str, Any]:
    locale = order.get("locale")
    body = [text(locale, "greeting", email=order["email"]), *paragraphs,
            text(locale, "closing")]
    return {"order_id": order["id"], "to": order["email"], "subject": subject,
            "body": "\n\n".join(body) + "\n"}


def voucher(order: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """The konbini voucher: amount, deadline in Japan time, and each store's codes."""
    locale = order.get("locale")
    stores = details.get("stores") or {}
    shown = [s for s in STORE_ORDER if s in stores] + sorted(set(stores) - set(STORE_ORDER))
    codes = [text(locale, "voucher.store", store=store_name(store, locale),
                  payment_code=stores[store].get("payment_code"),
                  confirmation_number=stores[store].get("confirmation_number"))
             for store in shown]
    paragraphs = [text(locale, "voucher.intro"),
                  text(locale, "voucher.order", order_id=order["id"],
                       product=order["product_name"], quantity=order["quantity"],
                       amount=yen(order["amount"], locale))]
    if details.get("expires_at"):
        paragraphs.append(text(locale, "voucher.deadline",
                               deadline=deadline(details["expires_at"], locale)))
    paragraphs += [text(locale, "voucher.url", url=details.get("hosted_voucher_url")),
                   "\n".join(codes), text(locale, "voucher.expiry_note")]
    return _letter(order, text(locale, "voucher.subject", order_id=order["id"]),
                   [p for p in paragraphs if p])


def paid(order: dict[str, Any]) -> dict[str, Any]:
    locale = order.get("locale")
    what = "paid.video_ticket" if order["kind"] == "video_ticket" else "paid.shipped"
    return _letter(order, text(locale, "paid.subject", order_id=order["id"]),
                   [text(locale, "paid.body", order_id=order["id"],
                         amount=yen(order["amount"], locale)), text(locale, what)])


def refund(order: dict[str, Any], refund_object: dict[str, Any]) -> dict[str, Any]:
    """A card refund says it is done; a konbini refund asks for the bank account to pay it to
    (Stripe collects it by mail: ``next_action.display_details``)."""
    locale = order.get("locale")
    amount = yen(int(refund_object["amount"]), locale)
    details = (refund_object.get("next_action") or {}).get("display_details") or {}
    if order["payment_method"] == "konbini":
        sent_to = (details.get("email_sent") or {}).get("email_sent_to") or order["email"]
        paragraphs = [text(locale, "refund.bank_details", order_id=order["id"], amount=amount,
                           to=sent_to)]
        if details.get("expires_at"):
            paragraphs.append(text(locale, "refund.bank_deadline",
                                   deadline=deadline(details["expires_at"], locale)))
    else:
        paragraphs = [text(locale, "refund.card", order_id=order["id"], amount=amount)]
    return _letter(order, text(locale, "refund.subject", order_id=order["id"]), paragraphs)


def warehouse(order: dict[str, Any], action: str, now: float) -> dict[str, Any]:
    """For the warehouse (an operator): ``ship``, ``cancel`` (stop the parcel), ``resume``, or
    ``attention`` (a person must decide)."""
    return {"order_id": order["id"], "to": None, "subject": f"[{action}] order {order['id']}",
            "body": f"{action}: {order['quantity']} × {order['product_id']} for "
                    f"{order['email']} (at {iso(now)})\n"}


def subscription_voucher(sub: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
    """A konbini subscription's invoice: cannot be charged, so the buyer gets it by mail."""
    locale = sub.get("locale")
    amount = yen(int(invoice.get("amount_due") or 0), locale)
    due = invoice["due_date"]
    body = text(locale, "invoice.body", plan=sub["plan"], amount=amount,
                deadline=deadline(due, locale),
                url=invoice.get("hosted_invoice_url"))
    letter = _letter({**sub, "id": sub["id"]}, text(locale, "invoice.subject", plan=sub["plan"],
                                                    amount=amount), [body])
    return letter


def access(sub: dict[str, Any], message: str) -> dict[str, Any]:
    """The stream's access stopped: ``access.suspended`` (an invoice unpaid past the grace
    period: paying it brings access back) or ``access.ended``."""
    locale = sub.get("locale")
    return _letter(sub, text(locale, f"{message}.subject", plan=sub["plan"]),
                   [text(locale, f"{message}.body", plan=sub["plan"])])
