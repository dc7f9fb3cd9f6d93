"""The official SDK, pointed at the emulator and otherwise unchanged, in both of its styles."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from ichido.emulator import Emulator, EmulatorServer
from tests.emulator.support import KEY, card_params, konbini_params


def story(create: Any, confirm: Any, refund: Any, events: Any, emulator: Emulator) -> None:
    """Card and konbini payments, an idempotent retry, a refund, and every event paged."""
    card = create(card_params(), "order-1")
    assert card.status == "succeeded"
    assert create(card_params(), "order-1").id == card.id
    with pytest.raises(stripe.IdempotencyError):
        create(card_params(amount=9999), "order-1")
    voucher = create({k: v for k, v in konbini_params().items() if k != "confirm"}, "order-2")
    assert voucher.status == "requires_confirmation"
    voucher = confirm(voucher.id)
    assert voucher.next_action.konbini_display_details.stores.seicomart.payment_code
    emulator.advance(180)
    assert refund(card.id).status == "succeeded"
    types = [e.type for e in events()]
    assert types[-1] == "payment_intent.created" and "charge.refunded" in types
    assert len(types) == len(emulator.events())


def test_stripe_client_with_only_its_api_base_changed(server: EmulatorServer,
                                                      emulator: Emulator) -> None:
    client = stripe.StripeClient(KEY, base_addresses={"api": server.url})
    story(lambda p, key: client.v1.payment_intents.create(params=p,
                                                          options={"idempotency_key": key}),
          lambda pi: client.v1.payment_intents.confirm(pi),
          lambda pi: client.v1.refunds.create(params={"payment_intent": pi}),
          lambda: client.v1.events.list(params={"limit": 3}).auto_paging_iter(), emulator)


def test_global_api_base_style(server: EmulatorServer, emulator: Emulator,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "api_base", server.url)
    story(lambda p, key: stripe.PaymentIntent.create(**p, idempotency_key=key),
          lambda pi: stripe.PaymentIntent.confirm(pi),
          lambda pi: stripe.Refund.create(payment_intent=pi),
          lambda: stripe.Event.list(limit=3).auto_paging_iter(), emulator)


def test_sdk_objects_are_typed_by_their_object_field(sdk: stripe.StripeClient) -> None:
    pi = sdk.v1.payment_intents.create(params=card_params())
    assert isinstance(pi, stripe.PaymentIntent)
    assert isinstance(sdk.v1.charges.retrieve(pi.latest_charge), stripe.Charge)
    event = sdk.v1.events.list(params={"limit": 1}).data[0]
    assert isinstance(event, stripe.Event) and isinstance(event.data.object, stripe.PaymentIntent)
