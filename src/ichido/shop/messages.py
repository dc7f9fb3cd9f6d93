"""What the buyer reads, in one catalogue: Japanese by default, English on request.

Why one place: a shop for Japanese buyers must say "12月4日(金) 23:59まで" and "1,500円", name
the stores as the buyer sees them on the shop front (ファミリーマート, not familymart), and a
translation that lives beside its original cannot drift from it. Every message has the same
keys in every locale (a test checks). Operator-facing times are ``iso`` (ISO 8601, with the
offset), never bare Unix seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

JST = dt.timezone(dt.timedelta(hours=9), "JST")  # konbini deadlines are Japan time
LOCALES = ("ja", "en")
DEFAULT_LOCALE = "ja"
_WEEKDAYS_JA = "月火水木金土日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

STORES = {
    "ja": {"familymart": "ファミリーマート", "lawson": "ローソン", "ministop": "ミニストップ",
           "seicomart": "セイコーマート"},
    "en": {"familymart": "FamilyMart", "lawson": "Lawson", "ministop": "Ministop",
           "seicomart": "Seicomart"},
}

MESSAGES: dict[str, dict[str, str]] = {
    "ja": {
        "greeting": "{email} 様",
        "voucher.subject": "【コンビニ払い】お支払い番号のご案内（ご注文 {order_id}）",
        "voucher.intro": "ご注文ありがとうございます。下記のコンビニエンスストアで、"
                         "お支払い期限までに現金でお支払いください。",
        "voucher.order": "ご注文番号: {order_id}\n商品: {product} × {quantity}\n"
                         "お支払い金額: {amount}",
        "voucher.deadline": "お支払い期限: {deadline}",
        "voucher.url": "払込票（お支払い方法の詳細）: {url}",
        "voucher.store": "{store}: お支払い番号 {payment_code} / 確認番号 {confirmation_number}",
        "voucher.expiry_note": "お支払い期限を過ぎますと、ご注文は自動的に取り消されます。",
        "paid.subject": "お支払いを確認しました（ご注文 {order_id}）",
        "paid.body": "ご注文 {order_id} の {amount} のお支払いを確認しました。",
        "paid.video_ticket": "配信の視聴権をご利用いただけます。",
        "paid.shipped": "商品の発送準備を進めております。発送まで今しばらくお待ちください。",
        "refund.subject": "ご返金のお知らせ（ご注文 {order_id}）",
        "refund.card": "ご注文 {order_id} の {amount} をご返金しました。"
                       "カード会社によっては、明細への反映までお時間がかかる場合があります。",
        "refund.bank_details": "ご注文 {order_id} の {amount} をご返金いたします。\n"
                               "コンビニ払いのご返金は銀行振込となります。Stripe から {to} "
                               "宛てにお送りするメールのリンクから、振込先の銀行口座"
                               "（銀行名・支店名・口座種別・口座番号・口座名義）をご登録ください。",
        "refund.bank_deadline": "ご登録期限: {deadline}",
        "refund.bank_details_transfer": "ご注文 {order_id} の {amount} をご返金いたします。\n"
                                        "銀行振込でのお支払いのご返金は銀行振込となります。Stripe から"
                                        " {to} 宛てにお送りするメールのリンクから、振込先の銀行口座"
                                        "（銀行名・支店名・口座種別・口座番号・口座名義）をご登録ください。",
        "transfer.subject": "【銀行振込】お振込先のご案内（ご注文 {order_id}）",
        "transfer.intro": "ご注文ありがとうございます。下記の口座へ、お振込期限までにお振込みください。"
                          "この口座はお客様専用です。",
        "transfer.account": "銀行名: {bank_name}（{bank_code}）\n支店名: {branch_name}（{branch_code}）\n"
                            "口座種別: {account_type}\n口座番号: {account_number}\n"
                            "口座名義: {account_holder_name}",
        "transfer.amount": "お振込金額: {amount}",
        "transfer.hold": "お振込期限: {deadline}\n期限までにご入金が確認できない場合、"
                         "ご注文は取り消されます。",
        "transfer.url": "お振込先の詳細: {url}",
        "transfer.fee_note": "振込手数料はお客様のご負担となります。",
        "owed.subject": "【銀行振込】ご入金の一部を確認しました（ご注文 {order_id}）",
        "owed.body": "ご注文 {order_id} のご入金を確認しました。残り {remaining} のお振込みを"
                     "お願いいたします（ご注文金額 {amount}）。\n"
                     "お振込先は先にお送りしたメールの口座と同じです。",
        "account.futsu": "普通",
        "account.toza": "当座",
        "closing": "ご不明な点がございましたら、このメールにご返信ください。",
        "invoice.subject": "【コンビニ払い】{plan} のご請求（{amount}）",
        "invoice.body": "{plan} の次の期間のご請求です。お支払い金額: {amount}\n"
                        "お支払い期限: {deadline}\n"
                        "下記のページに表示されるお支払い番号で、コンビニで現金でお支払いください。\n"
                        "{url}",
        "access.suspended.subject": "【重要】{plan} のご視聴を一時停止しました",
        "access.suspended.body": "{plan} のお支払いが確認できないため、ご視聴を一時停止しました。"
                                 "お支払いが確認でき次第、ご視聴を再開いただけます。",
        "access.ended.subject": "{plan} のご視聴期間が終了しました",
        "access.ended.body": "{plan} のご契約が終了したため、ご視聴いただけなくなりました。"
                             "これまでのご利用ありがとうございました。",
    },
    "en": {
        "greeting": "Dear {email},",
        "voucher.subject": "Your konbini payment details (order {order_id})",
        "voucher.intro": "Thank you for your order. Please pay in cash at one of the convenience "
                         "stores below before the deadline.",
        "voucher.order": "Order: {order_id}\nItem: {product} × {quantity}\nAmount: {amount}",
        "voucher.deadline": "Pay by: {deadline}",
        "voucher.url": "Payment slip (how to pay): {url}",
        "voucher.store": "{store}: payment code {payment_code} / confirmation number "
                         "{confirmation_number}",
        "voucher.expiry_note": "After the deadline the order is canceled automatically.",
        "paid.subject": "Payment received (order {order_id})",
        "paid.body": "We received your payment of {amount} for order {order_id}.",
        "paid.video_ticket": "Your access to the stream is ready.",
        "paid.shipped": "We are preparing your parcel.",
        "refund.subject": "Your refund (order {order_id})",
        "refund.card": "We refunded {amount} for order {order_id}. Your card issuer may take a "
                       "few days to show it.",
        "refund.bank_details": "We are refunding {amount} for order {order_id}.\n"
                               "Konbini payments are refunded by bank transfer: please follow "
                               "the link in the e-mail Stripe sends to {to} and enter the bank "
                               "account to pay it into (bank, branch, account type, number and "
                               "holder's name).",
        "refund.bank_deadline": "Please enter it by: {deadline}",
        "refund.bank_details_transfer": "We are refunding {amount} for order {order_id}.\n"
                                        "Bank transfers are refunded by bank transfer: please "
                                        "follow the link in the e-mail Stripe sends to {to} and "
                                        "enter the bank account to pay it into (bank, branch, "
                                        "account type, number and holder's name).",
        "transfer.subject": "Your bank transfer details (order {order_id})",
        "transfer.intro": "Thank you for your order. Please transfer the amount below to this "
                          "account, which is yours alone, before the deadline.",
        "transfer.account": "Bank: {bank_name} ({bank_code})\nBranch: {branch_name} "
                            "({branch_code})\nAccount type: {account_type}\n"
                            "Account number: {account_number}\nAccount holder: "
                            "{account_holder_name}",
        "transfer.amount": "Amount: {amount}",
        "transfer.hold": "Transfer by: {deadline}\nWithout the payment by then, the order is "
                         "canceled.",
        "transfer.url": "Transfer details: {url}",
        "transfer.fee_note": "Your bank's transfer fee is yours to pay.",
        "owed.subject": "Part of your transfer arrived (order {order_id})",
        "owed.body": "We received part of the payment for order {order_id}. {remaining} is "
                     "still owed (the order is {amount}).\nPlease send it to the same account "
                     "as before.",
        "account.futsu": "Ordinary (futsu)",
        "account.toza": "Checking (toza)",
        "closing": "If anything is unclear, just reply to this e-mail.",
        "invoice.subject": "Konbini payment for {plan} ({amount})",
        "invoice.body": "Here is the invoice for the next period of {plan}. Amount: {amount}\n"
                        "Pay by: {deadline}\n"
                        "Pay in cash at a convenience store with the codes on this page:\n"
                        "{url}",
        "access.suspended.subject": "Your access to {plan} is on hold",
        "access.suspended.body": "We have not received the payment for {plan}, so your access "
                                 "is on hold. It comes back as soon as the payment arrives.",
        "access.ended.subject": "Your access to {plan} has ended",
        "access.ended.body": "Your {plan} subscription has ended, and with it your access. "
                             "Thank you for watching.",
    },
}


def locale_of(value: Any) -> str:
    return value if value in LOCALES else DEFAULT_LOCALE


def text(locale: str, key: str, **values: Any) -> str:
    return MESSAGES[locale_of(locale)][key].format(**values)


def yen(amount: int, locale: str) -> str:
    """``1,500円`` for Japanese readers, ``¥1,500`` otherwise."""
    return f"{amount:,}円" if locale_of(locale) == "ja" else f"¥{amount:,}"


def deadline(timestamp: float, locale: str) -> str:
    """A konbini deadline in Japan time, to the minute: ``12月4日(金) 23:59まで``.

    Stripe's voucher expires at 23:59:59 JST; the buyer reads 23:59."""
    when = dt.datetime.fromtimestamp(timestamp, JST)
    if locale_of(locale) == "ja":
        return (f"{when.month}月{when.day}日({_WEEKDAYS_JA[when.weekday()]})"
                f" {when:%H:%M}まで")
    return (f"{_WEEKDAYS_EN[when.weekday()]} {when.day} {_MONTHS_EN[when.month - 1]}"
            f" {when.year}, {when:%H:%M} (Japan time)")


def store_name(store: str, locale: str) -> str:
    return STORES[locale_of(locale)].get(store, store)


def iso(timestamp: float | int | None) -> str | None:
    """For operators (JSON, the CLI): ISO 8601 in UTC with its offset, to the second."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")
