"""The door: a signed body is accepted only if Stripe's SDK would accept it and every store can
hold it; whatever is accepted, the worker can parse. Refusals are 400s with a reason code."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import stripe
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ichido import signature
from ichido.errors import RejectedDelivery
from ichido.event import Event, parse_delivery

SECRET = "whsec_test_0123456789abcdef"
NOW = 1_767_000_000


def event_doc(**fields: object) -> dict[str, object]:
    doc: dict[str, object] = {"id": "evt_1NgXaZ2eZvKYlo2C", "object": "event",
                              "type": "payment_intent.succeeded", "created": NOW,
                              "data": {"object": {"id": "pi_3Ng", "object": "payment_intent"}}}
    doc.update(fields)
    return doc


def code_of(body: bytes) -> str:
    with pytest.raises(RejectedDelivery) as caught:
        parse_delivery(body)
    return caught.value.code


# -- unstorable but signed (16.4) ------------------------------------------------------------------

@pytest.mark.parametrize(("created", "code"), [
    (2**63, "value_out_of_range"), (2**63 + 12345, "value_out_of_range"),
    (-(2**63) - 1, "value_out_of_range"), (10**30, "value_out_of_range"),
])
def test_a_created_outside_64_bits_is_refused(created: int, code: str) -> None:
    assert code_of(json.dumps(event_doc(created=created)).encode()) == code


def test_the_64_bit_edges_are_stored() -> None:
    for created in (2**63 - 1, -(2**63), 0):
        assert parse_delivery(json.dumps(event_doc(created=created)).encode()).created == created


@pytest.mark.parametrize("field", ["id", "type"])
@pytest.mark.parametrize("bad", ["\x00", "\n", "\r", "\x1b[31m", "\u202e", "\x7f", "\x85"])
def test_control_characters_in_id_or_type_are_refused(field: str, bad: str) -> None:
    value = f"evt_a{bad}b" if field == "id" else f"charge.{bad}succeeded"
    body = json.dumps(event_doc(**{field: value})).encode()  # escapes: valid JSON
    assert code_of(body) == "invalid_characters"


def test_a_nul_or_newline_in_the_object_id_is_refused() -> None:
    for bad in ("pi_\x00", "pi_1\nINFO forged log line"):
        body = json.dumps(event_doc(data={"object": {"id": bad}})).encode()
        assert code_of(body) == "invalid_characters"


def test_an_id_with_spaces_is_refused_a_type_with_brackets_is_not() -> None:
    assert code_of(json.dumps(event_doc(id="evt_a b")).encode()) == "invalid_characters"
    assert parse_delivery(json.dumps(event_doc(type="x.[/]y [bold]")).encode()).type == \
        "x.[/]y [bold]"


@pytest.mark.parametrize("field", ["id", "type"])
def test_over_long_ids_and_types_are_refused(field: str) -> None:
    value = "evt_" + "a" * 252 if field == "id" else "t" * 256
    assert code_of(json.dumps(event_doc(**{field: value})).encode()) == "field_too_long"
    fits = "evt_" + "a" * 251 if field == "id" else "t" * 255
    assert getattr(parse_delivery(json.dumps(event_doc(**{field: fits})).encode()), field) == fits


# -- what the SDK refuses (16.5) -------------------------------------------------------------------

@pytest.mark.parametrize("where", ["data.object.note", "top-level extra", "key"])
def test_invalid_utf8_anywhere_is_refused(where: str) -> None:
    body = json.dumps(event_doc()).encode()
    if where == "data.object.note":
        body = body.replace(b'"object": "payment_intent"', b'"note": "\xff\xfe caf\xc3"')
    elif where == "top-level extra":
        body = body[:-1] + b', "x": "\xed\xa0\x80"}'  # an encoded surrogate: not UTF-8
    else:
        body = body[:-1] + b', "k\x80": 1}'
    assert code_of(body) == "invalid_utf8"


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deep_nesting_is_a_reasoned_refusal_not_a_crash(depth: int) -> None:
    deep = b"[" * depth + b"]" * depth
    for body in (json.dumps(event_doc()).encode()[:-1] + b', "x": ' + deep + b"}",
                 b'{"x": ' + deep + b"}", deep):
        assert code_of(body) in ("nesting_too_deep", "not_an_event"), body[:40]
    assert code_of(json.dumps(event_doc()).encode()[:-1] + b', "x": ' + deep + b"}") == \
        "nesting_too_deep"


def test_a_number_beyond_a_double_is_accepted_and_the_worker_parses_it() -> None:
    """The SDK reads 1e400 as infinity and accepts it; orjson refuses it. The worker must
    parse what the receiver accepted."""
    body = json.dumps(event_doc()).encode()[:-1] + b', "amount": 1e400}'
    delivery = parse_delivery(body)
    assert Event.from_body(delivery.body).payload["amount"] == float("inf")


LIMIT = 4300  # Python's int_max_str_digits default: json.loads (the SDK's parser) reads no more


def with_literal(literal: bytes, where: str) -> bytes:
    """An event holding ``literal`` (raw JSON) at ``where``."""
    doc = event_doc()
    spot = {"top": doc, "object": doc["data"]["object"]}  # type: ignore[index]
    if where == "list":
        doc["data"]["object"]["lines"] = [1, {"x": "__LITERAL__"}]  # type: ignore[index]
    else:
        spot[where]["n"] = "__LITERAL__"
    return json.dumps(doc).encode().replace(b'"__LITERAL__"', literal)


@pytest.mark.parametrize("where", ["top", "object", "list"])
@pytest.mark.parametrize("literal", [b"1" * (LIMIT + 1), b"-" + b"9" * (LIMIT + 1),
                                     b"7" * 50_000])
def test_an_integer_longer_than_python_reads_is_refused_anywhere(literal: bytes,
                                                                  where: str) -> None:
    body = with_literal(literal, where)
    assert not sdk_accepts(body)
    assert code_of(body) == "integer_too_long"


@pytest.mark.parametrize("literal", [
    b"1" * LIMIT, b"-" + b"1" * LIMIT,  # at the limit: the SDK reads them
    b'"' + b"1" * (LIMIT + 10) + b'"',  # digits in a string
    b"1" * (LIMIT + 10) + b".5", b"1" * (LIMIT + 10) + b"e2",  # floats: no digit limit
])
def test_long_numbers_python_reads_are_accepted_and_read_as_the_sdk_reads_them(
        literal: bytes) -> None:
    body = with_literal(literal, "object")
    assert sdk_accepts(body)
    assert Event.from_body(parse_delivery(body).body).payload == json.loads(body)


def test_the_worker_reads_integers_past_64_bits_exactly_as_the_sdk_does() -> None:
    """orjson reads an integer beyond 64 bits as a float; the SDK's json.loads reads it exactly."""
    for value in (2**64, -(2**63) - 1, 10**30, 12345678901234567890123):
        body = with_literal(b"%d" % value, "object")
        assert Event.from_body(parse_delivery(body).body).object["n"] == value


# -- the SDK as the oracle: a property over generated bodies ----------------------------------------

def sdk_accepts(body: bytes) -> bool:
    header = signature.sign(body, [SECRET], NOW)
    with mock.patch("time.time", return_value=float(NOW)):
        try:
            stripe.Webhook.construct_event(body, header, SECRET)
        except Exception:  # SignatureVerificationError, UnicodeDecodeError, JSON, recursion
            return False
    return True


def ichido_answer(body: bytes) -> str | None:
    """None when accepted, else the reason code. Anything else raised is a crash (a 500)."""
    signature.verify(body, signature.sign(body, [SECRET], NOW), [SECRET], now=NOW)
    try:
        delivery = parse_delivery(body)
    except RejectedDelivery as exc:
        return exc.code
    # whatever is accepted, the worker parses, to what the SDK reads; the door read the same
    read = json.loads(body)
    assert Event.from_body(delivery.body).payload == read
    assert (delivery.id, delivery.type, delivery.created) == (read["id"], read["type"],
                                                              read["created"])
    return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=12)

storable_ids = st.from_regex(r"evt_[A-Za-z0-9]{1,40}", fullmatch=True)
storable_types = st.from_regex(r"[a-z_]{1,12}\.[a-z_.\[\]/ ]{1,20}", fullmatch=True)

# Byte-level damage: (name, damage, ichido may be stricter than the SDK on it)
DAMAGE = {
    "none": (lambda b: b, False),
    "invalid_utf8_in_a_value": (lambda b: b.replace(b'"pi_', b'"\xc3\x28pi_', 1), False),
    "invalid_utf8_in_an_extra_key": (lambda b: b[:-1] + b',"\xf0\x28\x8c\x28":1}', False),
    "encoded_surrogate": (lambda b: b[:-1] + b',"s":"\xed\xb2\x80"}', False),
    "truncated": (lambda b: b[:-3], False),
    "trailing_garbage": (lambda b: b + b"}", False),
    "deep_nesting": (lambda b: b[:-1] + b',"d":' + b"[" * 3000 + b"]" * 3000 + b"}", False),
    "top_level_array": (lambda b: b"[" + b + b"]", True),
    # valid to Python's json (so to the SDK), refused at the door: no worker could use them,
    # or no Stripe endpoint sends them (json.loads of bytes skips a BOM, reads UTF-16)
    "byte_order_mark": (lambda b: b"\xef\xbb\xbf" + b, True),
    "utf_16": (lambda b: b.decode("utf-8").encode("utf-16-le"), True),
    "nan": (lambda b: b[:-1] + b',"n":NaN}', True),
    "lone_surrogate_escape": (lambda b: b[:-1] + b',"s":"\\ud800"}', True),
    "infinity": (lambda b: b[:-1] + b',"i":Infinity}', True),
    "minus_infinity": (lambda b: b[:-1] + b',"i":-Infinity}', True),
    # duplicate keys: the last one counts, for the SDK and the door alike
    "duplicate_id": (lambda b: b[:-1] + b',"id":"evt_the_second"}', False),
    "duplicate_id_not_a_string": (lambda b: b[:-1] + b',"id":7}', True),
    "duplicate_object_thin": (lambda b: b[:-1] + b',"object":"v2.core.event"}', False),
    # the SDK needs an object at the top
    "top_level_string": (lambda b: b'"evt_1"', False),
    "top_level_number": (lambda b: b"1767000000", False),
    "top_level_null": (lambda b: b"null", False),
    # nesting around the door's fixed limit (100) and where the SDK stops (~330 objects deep
    # from the top of a stack, fewer from deeper down)
    "objects_99_deep": (lambda b: b[:-1] + b',"d":' + b'{"a":' * 99 + b"1" + b"}" * 100, False),
    "objects_100_deep": (lambda b: b[:-1] + b',"d":' + b'{"a":' * 100 + b"1" + b"}" * 101, True),
    "objects_340_deep": (lambda b: b[:-1] + b',"d":' + b'{"a":' * 340 + b"1" + b"}" * 341, True),
    "lists_99_deep": (lambda b: b[:-1] + b',"d":' + b"[" * 99 + b"]" * 99 + b"}", False),
    "lists_600_deep": (lambda b: b[:-1] + b',"d":' + b"[" * 600 + b"]" * 600 + b"}", True),
    "brackets_in_a_string": (lambda b: b[:-1] + b',"s":"' + b"[{" * 300 + b'"}', False),
}


# Number literals around what Python reads: an integer of more than LIMIT digits (sign apart)
# is refused by json.loads, so by the SDK; digits in a string, a fraction or an exponent are not.
long_numbers = st.builds(
    lambda sign, digits, tail, quoted: (b'"%s"' if quoted else b"%s") % (
        sign + b"1" + b"0" * (digits - 1) + tail),
    st.sampled_from([b"", b"-"]),
    st.sampled_from([1, 19, 20, 21, 40, LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 2, 3 * LIMIT]),
    st.sampled_from([b"", b"", b"", b".5", b"e3", b"E-2"]),
    st.booleans())


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A body and whether ichido may refuse it though the SDK accepts it (stricter shapes)."""
    strict_ok = False
    doc = event_doc(id=draw(storable_ids), type=draw(storable_types),
                    created=draw(st.integers(-(2**63), 2**63 - 1)),
                    data={"object": {"id": "pi_" + draw(st.from_regex(r"[A-Za-z0-9]{1,20}",
                                                                       fullmatch=True)),
                                     "extra": draw(json_values)}})
    shape = draw(st.sampled_from(["event", "unstorable", "not_an_event", "nested_event"]))
    if shape == "unstorable":
        field, value = draw(st.sampled_from([
            ("created", 2**63), ("created", -(2**63) - 1), ("id", "evt_\x00"),
            ("id", "evt_\nx"), ("type", "a\x1bb"), ("id", "evt_" + "x" * 300)]))
        doc[field] = value
        strict_ok = True
    elif shape == "not_an_event":
        doc.pop(draw(st.sampled_from(["id", "type", "created", "object"])))
        strict_ok = True
    elif shape == "nested_event":
        doc["data"]["object"]["deep"] = draw(st.recursive(  # type: ignore[index]
            st.integers(), lambda inner: st.lists(inner, min_size=1, max_size=2), max_leaves=40))
    number = draw(st.none() | long_numbers)
    if number is not None:
        spots = [doc, doc["data"]["object"], doc["data"]]  # type: ignore[index]
        draw(st.sampled_from(spots))["n"] = "__NUMBER__"
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    body = text.encode("utf-8", "surrogatepass")
    if number is not None:
        body = body.replace(b'"__NUMBER__"', number)
    name = draw(st.sampled_from(sorted(DAMAGE)))
    damage, stricter = DAMAGE[name]
    return damage(body), strict_ok or stricter


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
@example((json.dumps(event_doc()).encode()[:-1] + b',"x":"\xff"}', False))
@example((json.dumps(event_doc()).encode()[:-1] + b',"x":' + b"1" * (LIMIT + 1) + b"}", False))
@example((json.dumps(event_doc()).encode()[:-1] + b',"x":' + b"[" * 50_000 + b"]" * 50_000
          + b"}", False))
def test_ichido_accepts_a_signed_body_exactly_when_the_sdk_does(case: tuple[bytes, bool]) -> None:
    body, ichido_may_be_stricter = case
    answer = ichido_answer(body)
    sdk = sdk_accepts(body)
    if answer is None:
        assert sdk, "ichido accepted a body Stripe's SDK refuses"
    elif sdk:
        assert ichido_may_be_stricter, f"ichido refused ({answer}) a body the SDK accepts"
