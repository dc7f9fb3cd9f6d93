"""Mail, sent from the outbox: to files by default (one ``.eml`` per message, named after the
order), or through SMTP. The outbox key makes a resend idempotent: the file already exists, or
the SMTP message carries the same Message-ID."""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ichido.shop.settings import ShopSettings


class MailSender:
    """An outbox sender for ``kind = "mail"``; ``payload["to"] = None`` means the warehouse."""

    def __init__(self, settings: ShopSettings) -> None:
        self.directory = Path(settings.mail_dir)
        self.smtp = urlsplit(settings.smtp_url) if settings.smtp_url else None
        self.sender = settings.mail_from
        self.warehouse = settings.warehouse_email

    def __call__(self, key: str, payload: dict[str, Any]) -> None:
        message = self.compose(key, payload)
        if self.smtp is not None:
            with smtplib.SMTP(self.smtp.hostname or "localhost", self.smtp.port or 25,
                              timeout=10) as smtp:
                smtp.send_message(message)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / file_name(key, payload["order_id"])
        if path.exists():
            return  # sent before a crash, the outbox is sending again: the mailbox has it
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(message.as_bytes())
        os.replace(temporary, path)  # atomic: a reader never sees half a message

    def compose(self, key: str, payload: dict[str, Any]) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = payload.get("to") or self.warehouse
        message["Subject"] = payload["subject"]
        message["Date"] = formatdate(usegmt=True)  # RFC 5322 requires it; spam filters check
        message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@ichido>"
        message["X-Ichido-Order"] = payload["order_id"]
        # Quoted-printable UTF-8: Japanese text that any mail client decodes, and whose ASCII
        # parts (order ids, URLs, codes) stay readable in the raw message.
        message.set_content(payload["body"], charset="utf-8", cte="quoted-printable")
        return message


def file_name(key: str, order_id: str) -> str:
    """``ord_x--voucher.eml`` from ``mail:ord_x:voucher``."""
    what = re.sub(r"[^A-Za-z0-9_.-]+", "-", key.rsplit(":", 1)[-1])
    return f"{order_id}--{what}.eml"
