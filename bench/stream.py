"""The signed event stream the benchmarks send: Stripe-shaped PaymentIntent events (2.3-3 KB),
a share of them redelivered soon after, and the raw HTTP requests wrk replays."""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson

SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"
EVENT_TYPES = ("payment_intent.succeeded", "charge.succeeded", "payment_intent.created",
               "invoice.paid", "customer.updated")


_PLACEHOLDERS = {"id": "@@ID@@", "obj": "@@OBJ@@", "type": "@@TYPE@@", "created": 1_111_111_111,
                 "pad": "@@PAD@@"}


def _template() -> list[bytes]:
    """A konbini/card PaymentIntent event as Stripe sends it (about 2.3 KB before padding),
    cut into pieces around the fields that vary, so building a body costs one join."""
    p = _PLACEHOLDERS
    obj = {
        "id": p["obj"], "object": "payment_intent", "amount": 4980, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": 4980, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": p["obj"] + "_secret_Qm9vQmFyQmF6UXV4Q29yZ2VHcmF1bHQ",
        "confirmation_method": "automatic", "created": p["created"], "currency": "jpy",
        "customer": "cus_PxQ8dLm3ZrV2kA", "description": "Live commerce: limited tote bag (navy)",
        "excluded_payment_method_types": None, "last_payment_error": None,
        "latest_charge": "ch_3PxQ8dLm3ZrV2kA0a1b2c3d4", "livemode": False,
        "metadata": {"order_id": "ord_20261126_000123", "shop": "live-commerce",
                     "stream_id": "live_7f3a9c", "sku": "tote-navy-2026", "note": p["pad"]},
        "next_action": None, "on_behalf_of": None,
        "payment_method": "pm_1PxQ8dLm3ZrV2kA0konbini0",
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"installments": None, "mandate_options": None, "network": None,
                     "request_three_d_secure": "automatic"},
            "konbini": {"confirmation_number": "09012345678", "expires_after_days": 3,
                        "expires_at": None, "product_description": "Limited tote bag"}},
        "payment_method_types": ["card", "konbini"],
        "processing": None, "receipt_email": "buyer@example.jp", "review": None,
        "setup_future_usage": None,
        "shipping": {"address": {"city": "Shibuya-ku", "country": "JP",
                                 "line1": "1-2-3 Jingumae", "line2": "Harajuku Bldg 4F",
                                 "postal_code": "150-0001", "state": "Tokyo"},
                     "carrier": "Yamato", "name": "Hanako Yamada", "phone": "+81312345678",
                     "tracking_number": None},
        "source": None, "statement_descriptor": "ICHIDO SHOP",
        "statement_descriptor_suffix": None, "status": "succeeded",
        "transfer_data": None, "transfer_group": "group_ord_20261126_000123",
        "charges_summary": {"konbini": {"store": {"chain": "familymart"},
                                        "payment_codes": {"familymart": "123456789012",
                                                          "lawson": "LW-1234-5678",
                                                          "ministop": "MS-1234-5678",
                                                          "seicomart": "SC-1234-5678"},
                                        "hosted_voucher_url": "https://payments.stripe.com/"
                                        "konbini/voucher/test_YWNjdF8xUHhROGRMbTNaclYya0Es"}},
    }
    doc = {"id": p["id"], "object": "event", "api_version": "2026-10-28.endive",
           "created": p["created"], "data": {"object": obj, "previous_attributes": {
               "status": "requires_action", "amount_received": 0}},
           "livemode": False, "pending_webhooks": 2,
           "request": {"id": None, "idempotency_key": "0c8d2b4e-1a7f-4b53-9a44-6f1d2e3c4b5a"},
           "type": p["type"]}
    raw = orjson.dumps(doc)
    raw = raw.replace(str(p["created"]).encode(), b"@@CREATED@@")
    pieces: list[bytes] = []
    rest = raw
    while True:
        at = [(rest.find(m), m) for m in (b"@@ID@@", b"@@OBJ@@", b"@@TYPE@@", b"@@CREATED@@",
                                          b"@@PAD@@")]
        at = [(i, m) for i, m in at if i >= 0]
        if not at:
            pieces.append(rest)
            return pieces
        i, marker = min(at)
        pieces.append(rest[:i])
        pieces.append(marker)
        rest = rest[i + len(marker):]


_TEMPLATE = _template()


def event_body(event_id: str, object_id: str, event_type: str, created: int, pad: int) -> bytes:
    values = {b"@@ID@@": event_id.encode(), b"@@OBJ@@": object_id.encode(),
              b"@@TYPE@@": event_type.encode(), b"@@CREATED@@": str(created).encode(),
              b"@@PAD@@": b"x" * pad}
    return b"".join(values.get(piece, piece) for piece in _TEMPLATE)


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass
class Stream:
    """Signed deliveries in order; ``dup`` marks a redelivery of an earlier event."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dup: list[bool] = field(default_factory=list)

    @property
    def unique(self) -> int:
        return len(self) - sum(self.dup)

    def __len__(self) -> int:
        return len(self.bodies)


def make_stream(count: int, *, duplicate_rate: float = 0.3, seed: int | None = None,
                recent: int = 2000, events_per_object: int = 3) -> Stream:
    """``count`` deliveries, ``duplicate_rate`` of them copies of one of the last ``recent``
    events (Stripe's duplicates usually follow soon). Bodies are 2.3–3.0 KB; each PaymentIntent
    has a few events, as in life; signatures are fresh (now), so use the stream within 300 s."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:10]
    now = int(time.time())
    stream = Stream()
    originals: list[int] = []
    n_events = 0
    for _ in range(count):
        if originals and rng.random() < duplicate_rate:
            src = originals[-1 - rng.randrange(min(recent, len(originals)))]
            stream.bodies.append(stream.bodies[src])
            stream.headers.append(stream.headers[src])
            stream.ids.append(stream.ids[src])
            stream.dup.append(True)
            continue
        event_id = f"evt_{run}{n_events:014d}"
        object_id = f"pi_{run}{n_events // events_per_object:014d}"
        body = event_body(event_id, object_id, EVENT_TYPES[n_events % len(EVENT_TYPES)], now,
                          rng.randrange(0, 700))
        n_events += 1
        originals.append(len(stream.bodies))
        stream.bodies.append(body)
        stream.headers.append(sign(body, now))
        stream.ids.append(event_id)
        stream.dup.append(False)
    return stream


def write_requests(stream: Stream, path: str | Path, target: str = "/webhooks/stripe") -> Path:
    """Raw HTTP/1.1 requests for wrk's Lua script: ``<length>\\n<request bytes>`` each."""
    path = Path(path)
    with open(path, "wb") as out:
        for body, header in zip(stream.bodies, stream.headers):
            request = (f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json; charset=utf-8\r\n"
                       f"Stripe-Signature: {header}\r\nContent-Length: {len(body)}\r\n"
                       "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\r\n"
                       ).encode() + body
            out.write(b"%d\n" % len(request))
            out.write(request)
    return path
