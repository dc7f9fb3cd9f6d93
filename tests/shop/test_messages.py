"""What a buyer reads: the mails decoded from their MIME (quoted-printable UTF-8), in Japanese
by default and in English when the order asks, through the real shop and the emulator."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from ichido.shop import messages
from ichido.shop.messages import JST, MESSAGES, deadline, iso, yen
from tests.shop.conftest import ShopWorld

TICKET = "live-2026-12"  # ¥1,500
FRIDAY_LAST_MINUTE = int(dt.datetime(2026, 12, 4, 23, 59, 59, tzinfo=JST).timestamp())


@pytest.fixture
def shop(make_world, sqlite_url: str) -> ShopWorld:
    return make_world(sqlite_url, mode="thread", duplicate_rate=0.3)


def read_mail(world: ShopWorld, order_id: str, what: str) -> EmailMessage:
    path = world.mail_dir / f"{order_id}--{what}.eml"
    world.wait_order(order_id, lambda _: path.exists(), f"the {what} mail")
    raw = path.read_bytes()
    raw.decode("ascii")  # on the wire a mail is 7-bit: every non-ASCII byte is encoded
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content_charset() == "utf-8"
    return message


def body(message: EmailMessage) -> str:
    return message.get_content()


# -- the formats ---------------------------------------------------------------------------------

def test_deadline_amount_and_stores_read_as_a_japanese_buyer_expects() -> None:
    assert deadline(FRIDAY_LAST_MINUTE, "ja") == "12月4日(金) 23:59まで"
    assert deadline(FRIDAY_LAST_MINUTE, "en") == "Fri 4 Dec 2026, 23:59 (Japan time)"
    assert (yen(1500, "ja"), yen(300_000, "ja"), yen(1500, "en")) == ("1,500円", "300,000円",
                                                                      "¥1,500")
    assert [messages.store_name(s, "ja") for s in ("familymart", "lawson", "ministop",
                                                   "seicomart")] == [
        "ファミリーマート", "ローソン", "ミニストップ", "セイコーマート"]


def test_operators_get_iso_8601_with_an_offset() -> None:
    assert iso(FRIDAY_LAST_MINUTE) == "2026-12-04T14:59:59+00:00"
    assert dt.datetime.fromisoformat(iso(FRIDAY_LAST_MINUTE)).timestamp() == FRIDAY_LAST_MINUTE
    assert iso(None) is None


def test_every_message_exists_in_every_locale_with_the_same_fields() -> None:
    fields = {locale: {key: set(re.findall(r"{(\w+)}", text)) for key, text in table.items()}
              for locale, table in MESSAGES.items()}
    assert set(fields) == set(messages.LOCALES)
    assert fields["ja"] == fields["en"]


# -- the mails, end to end ---------------------------------------------------------------------

def test_the_konbini_voucher_mail_is_japanese_with_the_deadline_in_japan_time(
        shop: ShopWorld) -> None:
    order = shop.placed(product=TICKET, payment_method="konbini", email="fan@example.com")
    pi = shop.stripe.get(f"/v1/payment_intents/{order['payment_intent']}").json()
    details = pi["next_action"]["konbini_display_details"]
    message = read_mail(shop, order["id"], "voucher")
    text = body(message)
    assert "コンビニ払い" in message["Subject"] and order["id"] in message["Subject"]
    assert "fan@example.com 様" in text
    assert "お支払い金額: 1,500円" in text
    expected = deadline(details["expires_at"], "ja")
    assert re.fullmatch(r"\d{1,2}月\d{1,2}日\([月火水木金土日]\) 23:59まで", expected)
    assert f"お支払い期限: {expected}" in text
    assert details["hosted_voucher_url"] in text
    for store, name in (("familymart", "ファミリーマート"), ("lawson", "ローソン"),
                        ("ministop", "ミニストップ"), ("seicomart", "セイコーマート")):
        codes = details["stores"][store]
        assert (f"{name}: お支払い番号 {codes['payment_code']} / 確認番号 "
                f"{codes['confirmation_number']}") in text
    assert "Unix" not in text and str(details["expires_at"]) not in text
    assert order["voucher"]["expires_at"] == iso(details["expires_at"])


def test_an_order_in_english_gets_english_mails(shop: ShopWorld) -> None:
    order = shop.placed(product=TICKET, payment_method="konbini", email="visitor@example.com",
                        locale="en")
    assert order["locale"] == "en"
    text = body(read_mail(shop, order["id"], "voucher"))
    assert "Amount: ¥1,500" in text and "FamilyMart: payment code" in text
    assert "(Japan time)" in text and "円" not in text
    refused = shop.order(product=TICKET, payment_method="konbini", email="x@example.com",
                         locale="fr")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_locale"


def test_the_paid_and_the_konbini_refund_mails_ask_for_bank_details(shop: ShopWorld) -> None:
    order = shop.placed(product=TICKET, payment_method="konbini", email="fan@example.com")
    shop.control(f"payment_intents/{order['payment_intent']}/pay", store="lawson")
    shop.wait_status(order["id"], "paid")
    paid = body(read_mail(shop, order["id"], "paid"))
    assert "1,500円 のお支払いを確認しました" in paid and "視聴権" in paid
    assert shop.refund(order["id"]).status_code == 202
    refunded = shop.wait_order(order["id"], lambda o: bool(o["refunds"]), "the refund")
    message = read_mail(shop, order["id"], "refund-1")
    text = body(message)
    assert "ご返金" in message["Subject"]
    assert "1,500円" in text and "銀行振込" in text and "銀行口座" in text
    assert "fan@example.com" in text
    refund = shop.stripe.get(f"/v1/refunds/{refunded['refunds'][0]['id']}").json()
    until = refund["next_action"]["display_details"]["expires_at"]  # Stripe's deadline for them
    assert f"ご登録期限: {deadline(until, 'ja')}" in text
    shop.settle()
    assert shop.mails(order["id"]) == ["paid", "refund-1", "voucher"]  # each once


def test_a_card_refund_mail_says_the_money_went_back_to_the_card(shop: ShopWorld) -> None:
    order = shop.placed(product=TICKET, payment_method="card", email="fan@example.com")
    assert shop.refund(order["id"], 500).status_code == 202
    text = body(read_mail(shop, order["id"], "refund-1"))
    assert "500円 をご返金しました" in text and "銀行" not in text
