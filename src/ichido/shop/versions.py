"""The Stripe API versions the shop is written for, and what it does with events of others.

An event's ``data.object`` is rendered in the ``api_version`` named on the event (the webhook
endpoint's version, else the account's default), so the version says which fields exist. The
shop reads the shapes of ``2025-03-31.basil`` and later:

- an invoice names its subscription under ``parent.subscription_details.subscription`` (no
  top-level ``subscription``) and its payments under ``payments`` (a list of
  ``invoice_payment`` objects, ``payment.payment_intent`` / ``payment.charge``; no top-level
  ``payment_intent`` or ``charge``), and ``payments`` is only present when expanded, so the
  shop also listens to ``invoice_payment.paid``;
- a subscription's periods are on its items (``items.data[].current_period_end``; no top-level
  ``current_period_end``);
- requests send ``allowed_payment_method_types`` (``payment_method_types`` is refused from
  ``2026-09-30.endive`` on PaymentIntents and Checkout Sessions).

Sources: stripe-python 16.1's generated ``_invoice.py``, ``_invoice_payment.py``,
``_subscription.py`` and ``_subscription_item.py`` (pinned ``2026-10-28.endive``), and Stripe's
changelog: docs.stripe.com/changelog/basil/2025-03-31/adds-new-parent-field-to-invoicing-objects
(``subscription`` and ``subscription_details`` move under ``parent``),
…/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices (``payment_intent``,
``charge`` and ``paid`` leave the invoice; ``invoice`` leaves PaymentIntent and Charge),
…/basil/2025-03-31/deprecate-subscription-current-period-start-and-end (periods on items), and
…/endive/2026-09-30/remove-payment-method-types-checkout-sessions with its twin for
PaymentIntents and SetupIntents (``payment_method_types`` refused in requests).

An event in another version (a 2023 endpoint, or one newer than this code) is never applied in
a shape the shop cannot read: every shop handler marks it ``ignored`` with the reason
``unsupported_api_version:<version>`` and logs a warning once per version (``warn_once``);
``ichido events show`` and the dashboard list the reason. A replay would read the same stored
body again: set the endpoint's version in the range, and fetch the objects those events name
afresh (the client is pinned to ``PINNED``). Versions are compared by their date: every release from basil
through endive (clover, dahlia and their monthly releases) has the shapes above.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: the version the shop's Stripe client sends (``Stripe-Version``), as Stripe advises pinning
PINNED = "2026-10-28.endive"
#: the oldest and newest versions whose events the shop reads (inclusive, by date)
OLDEST = "2025-03-31.basil"
NEWEST = PINNED
log = logging.getLogger("ichido.shop.versions")
WARNED: set[str] = set()  # the reasons already logged by this process
_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.[a-z]+)?")


def warn_once(reason: str) -> None:
    """Tell the operator, once per version and process (``WARNED``), that events are being
    ignored for their version: the webhook endpoint's version is then to be moved (the reason
    holds only a checked version string, never the sender's text as it came)."""
    if reason not in WARNED:
        WARNED.add(reason)
        log.warning("Stripe events are ignored as %s: the shop reads %s to %s; set the webhook"
                    " endpoint's API version in that range (`ichido events list --status"
                    " ignored` lists what was missed)", reason, OLDEST, NEWEST)


def unsupported(version: str | None) -> str | None:
    """The ignore reason for an event whose object is in an API version the shop does not read
    (``Event.api_version``: a snapshot's own, a thin event's the version its object was
    fetched in), else None. The version is shown only when it looks like one (it is the
    sender's data)."""
    found = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if found is None:
        return "unsupported_api_version:unreadable"
    if not OLDEST[:10] <= found.group(1) <= NEWEST[:10]:
        return f"unsupported_api_version:{version}"
    return None
