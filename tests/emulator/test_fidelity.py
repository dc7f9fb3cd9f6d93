"""Everything the emulator emits validates against Stripe's OpenAPI schemas (reference folder).

One broad story puts every object in every state the emulator knows; then each stored object,
each event (and its ``data.object``), each list and each error body is checked.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from ichido.emulator import Emulator
from tests.emulator.schemas import event_types, problems, require_reference
from tests.emulator.support import card_params, konbini_params


@pytest.fixture(autouse=True)
def reference() -> None:
    require_reference()


def every_state(sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator) -> list[
        dict[str, Any]]:
    """Drive objects through their states; return the error bodies met on the way."""
    errors = []
    card = sdk.v1.payment_intents.create(params=card_params())
    sdk.v1.refunds.create(params={"payment_intent": card.id, "amount": 100})
    try:
        sdk.v1.payment_intents.create(params=card_params("pm_card_chargeDeclined"))
    except stripe.CardError as declined:
        errors.append(declined.json_body["error"])
    sdk.v1.payment_intents.cancel(
        sdk.v1.payment_intents.create(params={"amount": 900, "currency": "jpy"}).id)
    sdk.v1.payment_intents.create(params=konbini_params("expire_immediately@test.com"))
    sdk.v1.payment_intents.create(params=konbini_params("fill_never@test.com"))
    paid = sdk.v1.payment_intents.create(params=konbini_params(amount=8000))
    emulator.advance(180)
    refunds = [sdk.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1000})
               for _ in range(4)]
    http.post(f"/_emulator/refunds/{refunds[0].id}/bank_details")
    http.post(f"/_emulator/refunds/{refunds[1].id}/bank_details",
              data={"account_number": "3333335"})
    sdk.v1.refunds.cancel(refunds[2].id)
    emulator.settle()
    for response in (http.get("/v1/charges/ch_nope"),
                     http.post("/v1/refunds", data={"charge": card.latest_charge,
                                                    "amount": "999999"}),
                     http.post("/v1/payment_intents", data={"amount": "1", "currency": "jpy",
                                                            "allowed_payment_method_types[]": "konbini"}),
                     http.post("/v1/payment_intents", headers={"Idempotency-Key": "same"},
                               data={"amount": "500", "currency": "jpy"}),
                     http.post("/v1/payment_intents", headers={"Idempotency-Key": "same"},
                               data={"amount": "600", "currency": "jpy"})):
        if response.status_code >= 400:
            errors.append(response.json()["error"])
    return errors


def test_every_object_event_list_and_error_matches_stripes_schemas(
        sdk: stripe.StripeClient, http: httpx.Client, emulator: Emulator) -> None:
    errors = every_state(sdk, http, emulator)
    objects = emulator.store.objects
    statuses = {(kind, o.get("status")) for kind, found in objects.items()
                for o in found.values()}
    for wanted in [("payment_intent", s) for s in ("succeeded", "requires_payment_method",
                                                    "canceled", "requires_action")] + \
                  [("refund", s) for s in ("succeeded", "requires_action", "canceled")] + \
                  [("charge", "succeeded"), ("charge", "failed")]:
        assert wanted in statuses, f"the story never reached {wanted}"
    found = [p for kind in objects for obj in objects[kind].values() for p in problems(obj)]
    lists = [http.get(path).json() for path in ("/v1/events", "/v1/payment_intents",
                                                "/v1/refunds", "/v1/charges")]
    assert all(page["object"] == "list" and isinstance(page["has_more"], bool)
               for page in lists)
    found += [p for page in lists for obj in page["data"] for p in problems(obj)]
    found += [p for error in errors for p in problems(error, "api_errors")]
    assert found == []
    assert len(errors) == 5


def test_every_event_type_is_one_stripe_sends(sdk: stripe.StripeClient, http: httpx.Client,
                                              emulator: Emulator) -> None:
    every_state(sdk, http, emulator)
    emitted = {e["type"] for e in emulator.events()}
    assert emitted <= event_types()
    assert {"payment_intent.created", "payment_intent.requires_action",
            "payment_intent.succeeded", "payment_intent.payment_failed",
            "payment_intent.canceled", "charge.succeeded", "charge.failed", "charge.refunded",
            "charge.refund.updated", "refund.created", "refund.updated"} <= emitted


def test_webhook_bodies_validate_too(emulator: Emulator, sdk: stripe.StripeClient) -> None:
    import orjson

    sdk.v1.payment_intents.create(params=konbini_params())
    for event in emulator.events():
        body = emulator.store.render_event(event["id"])
        assert body is not None and problems(orjson.loads(body)) == []
