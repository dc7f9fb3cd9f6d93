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


def transfer(order: dict[str, Any], instructions: dict[str, Any]) -> dict[str, Any]:
    """Where to send a bank transfer: the customer's own virtual account (zengin), the amount
    in 円, and the date until which the shop holds the order (Japan time)."""
    locale = order.get("locale")
    addresses = instructions.get("financial_addresses") or [{}]
    zengin = {k: v if v is not None else "-"
              for k, v in (addresses[0].get("zengin") or {}).items()}
    account_type = zengin.get("account_type", "futsu")
    paragraphs = [text(locale, "transfer.intro"),
                  text(locale, "voucher.order", order_id=order["id"],
                       product=order["product_name"], quantity=order["quantity"],
                       amount=yen(order["amount"], locale)),
                  text(locale, "transfer.account", **{
                      f: zengin.get(f, "-") for f in ("bank_name", "bank_code", "branch_name",
                                                      "branch_code", "account_number",
                                                      "account_holder_name")},
                       account_type=text(locale, f"account.{account_type}")
                       if account_type in ("futsu", "toza") else account_type),
                  text(locale, "transfer.amount", amount=yen(
                      int(instructions.get("amount_remaining") or order["amount"]), locale))]
    if order.get("hold_until"):
        paragraphs.append(text(locale, "transfer.hold",
                               deadline=deadline(order["hold_until"], locale)))
    if instructions.get("hosted_instructions_url"):
        paragraphs.append(text(locale, "transfer.url",
                               url=instructions["hosted_instructions_url"]))
    paragraphs.append(text(locale, "transfer.fee_note"))
    return _letter(order, text(locale, "transfer.subject", order_id=order["id"]), paragraphs)


def owed(order: dict[str, Any], remaining: int) -> dict[str, Any]:
    """A partial transfer arrived: what is still owed."""
    locale = order.get("locale")
    return _letter(order, text(locale, "owed.subject", order_id=order["id"]),
                   [text(locale, "owed.body", order_id=order["id"],
                         remaining=yen(remaining, locale), amount=yen(order["amount"], locale))])


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
    if order["payment_method"] in ("konbini", "customer_balance"):
        sent_to = (details.get("email_sent") or {}).get("email_sent_to") or order["email"]
        key = ("refund.bank_details" if order["payment_method"] == "konbini"
               else "refund.bank_details_transfer")
        paragraphs = [text(locale, key, order_id=order["id"], amount=amount, to=sent_to)]
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
