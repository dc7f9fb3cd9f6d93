"""The mails the shop sends, as a mail client reads them from the files it writes."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

from ichido.shop.mail import MailSender
from ichido.shop.settings import ShopSettings


def test_every_mail_carries_a_date_header_of_when_it_was_sent(tmp_path: Path) -> None:
    """RFC 5322 requires ``Date:``; without it spam filters mark the mail and clients sort it
    nowhere."""
    sink = MailSender(ShopSettings(mail_dir=str(tmp_path)))
    before = dt.datetime.fromtimestamp(int(time.time()), dt.timezone.utc)
    sink("mail:ord_1:paid", {"order_id": "ord_1", "to": "fan@example.com",
                             "subject": "Payment received", "body": "We received ¥1,500."})
    after = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc)
    message = email.message_from_bytes((tmp_path / "ord_1--paid.eml").read_bytes(),
                                       policy=email.policy.default)
    assert message["Date"] is not None, message.keys()
    sent = parsedate_to_datetime(message["Date"])
    assert sent.tzinfo is not None and before <= sent <= after
