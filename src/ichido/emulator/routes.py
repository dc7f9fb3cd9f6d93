"""The route table: Stripe's API paths the emulator serves, and its ``/_emulator/`` controls.

A path's ``{id}`` parts are passed to the handler before the parameters. Routes under ``/v1/``
are the merchant's API requests: the events they cause carry the request's id. Controls act as
the buyer, the bank or the clock, so their events carry none (``request.id: null``), as
Stripe's own transitions do. The controls are listed in the package's docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ichido.emulator import endpoints, forms, reading, versions
from ichido.emulator.emulator import Emulator
from ichido.emulator.errors import invalid, missing_param, no_such
from ichido.emulator.objects import new_id

Handler = Callable[..., dict[str, Any]]
MAX_ADVANCE = 100 * 365 * 86400
SWITCHES: dict[str, dict[str, bool]] = {
    "disable": {"enabled": False}, "enable": {"enabled": True},
    "down": {"reachable": False}, "up": {"reachable": True}}


@dataclass(frozen=True)
class ApiRoute:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    records: bool  # events it causes carry its request id (controls act as the buyer: no)
    key: str  # "POST /v1/payment_intents/{id}/confirm": how versions' data names the route


def api(emu: Emulator) -> list[tuple[str, str, Handler]]:
    s, pay, ref = emu.store, emu.payments, emu.refunds
    cat, inv, sub, co = emu.catalog, emu.invoices, emu.subscriptions, emu.checkout
    return [
        ("POST", "/v1/payment_intents", pay.create),
        ("GET", "/v1/payment_intents", reading.listing(s, "payment_intent",
                                                       "/v1/payment_intents", "customer")),
        ("GET", "/v1/payment_intents/{id}", pay.retrieve),
        ("POST", "/v1/payment_intents/{id}/confirm", pay.confirm),
        ("POST", "/v1/payment_intents/{id}/cancel", pay.cancel),
        ("GET", "/v1/charges", reading.listing(s, "charge", "/v1/charges", "payment_intent",
                                               "customer")),
        ("GET", "/v1/charges/{id}", reading.retrieve(s, "charge", "charge")),
        ("GET", "/v1/balance_transactions", reading.listing(
            s, "balance_transaction", "/v1/balance_transactions", "source", "type", "currency")),
        ("GET", "/v1/balance_transactions/{id}", reading.retrieve(
            s, "balance_transaction", "balance_transaction")),
        ("GET", "/v1/payment_methods/{id}", reading.retrieve(s, "payment_method",
                                                             "payment_method")),
        ("POST", "/v1/payment_methods/{id}/attach", cat.attach),
        ("POST", "/v1/refunds", ref.create),
        ("GET", "/v1/refunds", reading.listing(s, "refund", "/v1/refunds", "charge",
                                               "payment_intent")),
        ("GET", "/v1/refunds/{id}", ref.retrieve),
        ("POST", "/v1/refunds/{id}/cancel", ref.cancel),
        ("POST", "/v1/test_helpers/refunds/{id}/expire", ref.expire),
        ("GET", "/v1/events", lambda params: reading.list_events(s, params)),
        ("GET", "/v1/events/{id}", reading.retrieve(s, "event", "id")),
        ("POST", "/v1/customers", cat.create_customer),
        ("GET", "/v1/customers", reading.listing(s, "customer", "/v1/customers", "email",
                                                 "test_clock")),
        ("GET", "/v1/customers/{id}", reading.retrieve(s, "customer", "customer")),
        ("POST", "/v1/customers/{id}", cat.update_customer),
        ("POST", "/v1/products", cat.create_product),
        ("GET", "/v1/products", reading.listing(s, "product", "/v1/products", "active")),
        ("GET", "/v1/products/{id}", reading.retrieve(s, "product", "id")),
        ("POST", "/v1/prices", cat.create_price),
        ("GET", "/v1/prices", reading.listing(s, "price", "/v1/prices", "product", "type",
                                              "active", "currency")),
        ("GET", "/v1/prices/{id}", reading.retrieve(s, "price", "price")),
        ("POST", "/v1/subscriptions", sub.create),
        ("GET", "/v1/subscriptions", sub.list),
        ("GET", "/v1/subscriptions/{id}", sub.retrieve),
        ("POST", "/v1/subscriptions/{id}", sub.update),
        ("DELETE", "/v1/subscriptions/{id}", sub.cancel),
        ("GET", "/v1/invoices", inv.list),
        ("GET", "/v1/invoices/{id}", inv.retrieve),
        ("POST", "/v1/invoices/{id}/pay", emu.manual_invoices.pay),  # every invoice's
        ("GET", "/v1/invoice_payments", reading.listing(s, "invoice_payment",
                                                        "/v1/invoice_payments", "invoice",
                                                        "status")),
        ("GET", "/v1/invoice_payments/{id}", reading.retrieve(s, "invoice_payment",
                                                              "invoice_payment")),
        ("POST", "/v1/checkout/sessions", co.create),
        ("GET", "/v1/checkout/sessions", co.list),
        ("GET", "/v1/checkout/sessions/{id}", co.retrieve),
        ("GET", "/v1/checkout/sessions/{id}/line_items", co.line_items),
        ("POST", "/v1/checkout/sessions/{id}/expire", co.expire),
        *tool_routes(emu),
        *japan_routes(emu),
        ("POST", "/v1/webhook_endpoints", lambda params: _create_endpoint(emu, params)),
        ("GET", "/v1/webhook_endpoints", lambda params: _list_endpoints(emu, params)),
        ("GET", "/v1/webhook_endpoints/{id}", lambda i, params: _endpoint(emu, i)),
        ("POST", "/v1/webhook_endpoints/{id}", lambda i, params: _update_endpoint(emu, i,
                                                                                   params)),
        ("DELETE", "/v1/webhook_endpoints/{id}", lambda i, params: _delete_endpoint(emu, i,
                                                                                     params)),
    ]


def tool_routes(emu: Emulator) -> list[tuple[str, str, Handler]]:
    """Routes Stripe's own tools use (issue 22). Like every ``/v1/`` route, each is checked
    and rendered in the request's API version (``versions``); the three no SDK names
    (``events/{id}/retry``, ``payment_pages``) check their own parameters."""
    s, ed, clocks = emu.store, emu.edits, emu.test_clocks
    pms, setis, disputes = emu.payment_methods, emu.setup_intents, emu.disputes
    mi, pages = emu.manual_invoices, emu.payment_pages
    return [
        ("POST", "/v1/subscription_schedules", emu.schedules.create),
        ("GET", "/v1/subscription_schedules", emu.schedules.list),
        ("GET", "/v1/subscription_schedules/{id}", emu.schedules.retrieve),
        ("POST", "/v1/subscription_schedules/{id}", emu.schedules.update),
        ("POST", "/v1/subscription_schedules/{id}/cancel", emu.schedules.cancel),
        ("POST", "/v1/subscription_schedules/{id}/release", emu.schedules.release),
        ("POST", "/v1/events/{id}/retry", lambda i, params: _resend(emu, i, params)),
        ("POST", "/v1/customers/{id}/sources", emu.sources.create),
        ("POST", "/v1/customers/{customer}/sources/{id}", emu.sources.update),
        ("GET", "/v1/payment_pages/{id}", pages.retrieve),
        ("POST", "/v1/payment_pages/{id}/confirm", pages.confirm),
        ("POST", "/v1/invoiceitems", mi.create_item),
        ("GET", "/v1/invoiceitems", mi.list_items),
        ("GET", "/v1/invoiceitems/{id}", reading.retrieve(s, "invoiceitem", "invoiceitem")),
        ("DELETE", "/v1/invoiceitems/{id}", mi.delete_item),
        ("POST", "/v1/invoices", mi.create),
        ("POST", "/v1/invoices/{id}", mi.update),
        ("DELETE", "/v1/invoices/{id}", mi.delete),
        ("POST", "/v1/invoices/{id}/finalize", mi.finalize),
        ("POST", "/v1/invoices/{id}/send", mi.send),
        ("POST", "/v1/invoices/{id}/void", mi.void),
        ("POST", "/v1/invoices/{id}/mark_uncollectible", mi.mark_uncollectible),
        ("POST", "/v1/payment_methods", pms.create),
        ("GET", "/v1/payment_methods", pms.list),
        ("POST", "/v1/payment_methods/{id}", pms.update),
        ("POST", "/v1/payment_methods/{id}/detach", pms.detach),
        ("POST", "/v1/setup_intents", setis.create),
        ("GET", "/v1/setup_intents", setis.list),
        ("GET", "/v1/setup_intents/{id}", setis.retrieve),
        ("POST", "/v1/setup_intents/{id}/confirm", setis.confirm),
        ("POST", "/v1/setup_intents/{id}/cancel", setis.cancel),
        ("GET", "/v1/disputes", disputes.list),
        ("GET", "/v1/disputes/{id}", disputes.retrieve),
        ("POST", "/v1/disputes/{id}", disputes.update),
        ("POST", "/v1/disputes/{id}/close", disputes.close),
        ("POST", "/v1/payment_intents/{id}/capture", emu.captures.capture),
        ("POST", "/v1/refunds/{id}", emu.refunds.update),
        ("DELETE", "/v1/customers/{id}", ed.delete_customer),
        ("POST", "/v1/products/{id}", ed.update_product),
        ("DELETE", "/v1/products/{id}", ed.delete_product),
        ("POST", "/v1/prices/{id}", ed.update_price),
        ("POST", "/v1/coupons", ed.create_coupon),
        ("GET", "/v1/coupons", reading.listing(s, "coupon", "/v1/coupons")),
        ("GET", "/v1/coupons/{id}", reading.retrieve(s, "coupon", "coupon")),
        ("POST", "/v1/coupons/{id}", ed.update_coupon),
        ("DELETE", "/v1/coupons/{id}", ed.delete_coupon),
        ("POST", "/v1/plans", ed.create_plan),
        ("GET", "/v1/plans", reading.listing(s, "plan", "/v1/plans", "active", "product")),
        ("GET", "/v1/plans/{id}", reading.retrieve(s, "plan", "plan")),
        ("POST", "/v1/plans/{id}", ed.update_plan),
        ("DELETE", "/v1/plans/{id}", ed.delete_plan),
        ("POST", "/v1/test_helpers/test_clocks", clocks.create),
        ("GET", "/v1/test_helpers/test_clocks", clocks.list),
        ("GET", "/v1/test_helpers/test_clocks/{id}", clocks.retrieve),
        ("DELETE", "/v1/test_helpers/test_clocks/{id}", clocks.delete),
        ("POST", "/v1/test_helpers/test_clocks/{id}/advance", clocks.advance),
    ]


def japan_routes(emu: Emulator) -> list[tuple[str, str, Handler]]:
    """PayPay and bank transfers in Japan (issue 24): Stripe's routes and the controls that
    act as the buyer (``/_emulator/…``)."""
    cash = emu.cash_balances
    return [
        ("POST", "/v1/test_helpers/customers/{id}/fund_cash_balance", cash.fund),
        ("GET", "/v1/customers/{id}/cash_balance", cash.retrieve),
        ("GET", "/v1/customers/{id}/cash_balance_transactions", cash.list),
        ("GET", "/v1/customers/{customer}/cash_balance_transactions/{id}", cash.transaction),
        ("POST", "/_emulator/payment_intents/{id}/authorize", emu.paypay.authorize),
        ("POST", "/_emulator/refunds/{id}/fail", emu.paypay.fail_refund),
    ]


def controls(emu: Emulator) -> list[tuple[str, str, Handler]]:
    pay, ref, inv, co = emu.payments, emu.refunds, emu.invoices, emu.checkout
    return [
        ("POST", "/_emulator/payment_intents/{id}/pay", pay.pay),
        ("POST", "/_emulator/payment_intents/{id}/expire", pay.expire),
        ("POST", "/_emulator/payment_intents/{id}/authenticate", pay.authenticate),
        ("POST", "/_emulator/refunds/{id}/bank_details", ref.bank_details),
        ("POST", "/_emulator/invoices/{id}/pay", inv.pay_now),
        ("POST", "/_emulator/invoices/{id}/lapse", inv.lapse_now),
        ("POST", "/_emulator/checkout_sessions/{id}/complete", co.complete),
        ("POST", "/_emulator/clock/advance", lambda params: _advance(emu, params)),
        ("POST", "/_emulator/rate_limit", lambda params: _rate_limit(emu, params)),
        ("GET", "/_emulator/webhook_endpoints", lambda params: {
            "object": "list", "data": emu.webhook_endpoints(), "has_more": False,
            "url": "/_emulator/webhook_endpoints"}),
        *[("POST", f"/_emulator/webhook_endpoints/{{id}}/{action}", _switch(emu, **change))
          for action, change in SWITCHES.items()],
        ("GET", "/_emulator/stats", lambda params: {"object": "emulator.stats",
                                                    **emu.stats()}),
    ]


def routes(emu: Emulator) -> list[ApiRoute]:
    return [ApiRoute(method, _compile(path), handler, records=path.startswith("/v1/"),
                     key=versions.route_key(method, path))
            for method, path, handler in api(emu) + controls(emu)]


def _compile(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")


def _switch(emu: Emulator, **change: bool) -> Handler:
    def handler(endpoint_id: str, params: dict[str, Any]) -> dict[str, Any]:
        forms.check_known(params, set())
        try:
            return emu.endpoint(endpoint_id, **change)
        except endpoints.EndpointNotFound:
            raise no_such("webhook_endpoint", endpoint_id) from None
    return handler


def _advance(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    seconds = forms.integer(params, "seconds", required=True)
    assert seconds is not None
    if not 0 <= seconds <= MAX_ADVANCE:
        raise invalid(f"seconds must be from 0 (the clock only moves forward) to {MAX_ADVANCE}"
                      " (a century)", param="seconds")
    fired = emu.advance(seconds)
    return {"object": "emulator.clock", "now": emu.now(), "fired": fired}


def _rate_limit(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    forms.check_known(params, {"requests"})
    count = forms.integer(params, "requests", required=True)
    assert count is not None
    if not 0 <= count <= 1_000_000:
        raise invalid("requests is 0 to 1,000,000.", param="requests")
    emu.rate_limit(count)
    return {"object": "emulator.rate_limit", "requests": count}


def _resend(emu: Emulator, event_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/events/{id}/retry`` (``stripe events resend``, not in Stripe's public
    reference): one more delivery of a stored event, to ``webhook_endpoint`` or to every
    enabled endpoint. ``pending_webhooks`` stays as it is: it counts endpoints that never
    answered the event, and a resend to one that did changes nothing there."""
    forms.check_known(params, {"webhook_endpoint", "expand"})
    event = emu.store.get("event", event_id, "id")
    ref = forms.text(params, "webhook_endpoint")
    try:
        targets = [endpoints.find(emu.sender.endpoints, ref)] if ref else \
            list(emu.sender.endpoints)
    except endpoints.EndpointNotFound:
        raise no_such("webhook_endpoint", ref or "", "webhook_endpoint") from None
    targets = [t for t in targets if t.enabled]
    if not targets:
        raise invalid("No enabled webhook endpoint to resend this event to.",
                      param="webhook_endpoint")
    emu.sender.enqueue(event, targets)
    return event


def _endpoint(emu: Emulator, endpoint_id: str) -> dict[str, Any]:
    try:
        state = endpoints.find(_v1_endpoints(emu), endpoint_id)
    except endpoints.EndpointNotFound:
        raise no_such("webhook_endpoint", endpoint_id, "webhook_endpoint") from None
    return state.stripe_object(emu.started)


def _v1_endpoints(emu: Emulator) -> list[endpoints.EndpointState]:
    """The sender's endpoints but v2 event destinations (``ed_…``: ``/v2/core/…`` has them)."""
    return [s for s in emu.sender.endpoints if s.id not in emu.destinations.states]


def _list_endpoints(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    everything = [s.stripe_object(emu.started) for s in reversed(_v1_endpoints(emu))]
    return reading.page(everything, params, "/v1/webhook_endpoints", "webhook_endpoint",
                        everything)


def _create_endpoint(emu: Emulator, params: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/webhook_endpoints``: ``url``, ``enabled_events[]`` (``*`` or types), and
    ``api_version``, the version its events are rendered in (else the account's default).
    The answer alone carries the signing ``secret``, as Stripe's."""
    forms.check_known(params, {"url", "enabled_events", "api_version", "description",
                               "metadata", "expand"})
    url = forms.text(params, "url", required=True) or ""
    kinds = forms.strings(params, "enabled_events")
    if not kinds:
        raise missing_param("enabled_events")
    version = forms.text(params, "api_version")
    if version is not None:
        versions.parse(version)  # an unknown or unrendered version: Stripe's 400
    secret = new_id("whsec", 32)
    state = emu.sender.add(endpoints.Endpoint(
        url, (secret,), api_version=version, enabled_events=tuple(kinds),
        description=forms.text(params, "description"),
        metadata=tuple(forms.metadata(params).items())))
    return state.stripe_object(emu.now()) | {"secret": secret}


def _delete_endpoint(emu: Emulator, endpoint_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /v1/webhook_endpoints/{id}``: no new events go to it, its due retries drop."""
    forms.check_known(params, set())
    _endpoint(emu, endpoint_id)
    state = endpoints.find(emu.sender.endpoints, endpoint_id)
    state.enabled = False
    emu.sender.endpoints.remove(state)
    return {"id": state.id, "object": "webhook_endpoint", "deleted": True}


def _update_endpoint(emu: Emulator, endpoint_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Stripe's ``POST /v1/webhook_endpoints/{id}`` with ``disabled``: the same switch as
    ``/_emulator/webhook_endpoints/{id}/disable|enable``."""
    forms.check_known(params, {"disabled", "expand"})
    _endpoint(emu, endpoint_id)
    if "disabled" in params:
        emu.endpoint(endpoint_id, enabled=not forms.boolean(params, "disabled"))
    return _endpoint(emu, endpoint_id)
