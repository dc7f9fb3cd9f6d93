"""What Python's json (Stripe's SDK's parser) cannot read, judged at the door by fixed limits
rather than by whatever stack the parser happens to be called from."""

from __future__ import annotations

import json
import sys

import pytest

from ichido.errors import RejectedDelivery
from ichido.event import Event, parse_delivery
from ichido.json_limits import MAX_DEPTH, may_hold_integers_past_64_bits

from tests.test_event import code_of, event_doc, sdk_accepts


def nested(depth: int, opener: bytes = b"[") -> bytes:
    """An event whose data.object holds ``depth`` more levels (the event itself is 3)."""
    closer = b"]" if opener == b"[" else b"}"
    inner = (b'{"a":' if opener == b"{" else b"[") * depth
    inner = inner + b"1" + closer * depth
    return json.dumps(event_doc()).encode()[:-3] + b', "deep": ' + inner + b"}}}"


@pytest.mark.parametrize("opener", [b"[", b"{"])
def test_nesting_is_refused_past_a_fixed_depth(opener: bytes) -> None:
    fits = nested(MAX_DEPTH - 3, opener)
    assert parse_delivery(fits).id == "evt_1NgXaZ2eZvKYlo2C"
    assert sdk_accepts(fits)
    assert code_of(nested(MAX_DEPTH - 2, opener)) == "nesting_too_deep"


def test_the_door_stops_where_no_callers_sdk_does() -> None:
    """Stripe's SDK reads 200 levels of objects from the top of a stack, not from 450 frames
    down (json.loads and construct_event recurse in Python). The door refuses them wherever it
    runs: before, it took anything up to about 975 levels."""
    body = nested(200, b"{")

    def deep(frames: int) -> tuple[str, bool]:
        if frames:
            return deep(frames - 1)
        with pytest.raises(RejectedDelivery) as caught:
            parse_delivery(body)
        return caught.value.code, sdk_accepts(body)

    assert sdk_accepts(body)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default: another test's library may have raised it
    try:
        assert deep(450) == ("nesting_too_deep", False)
    finally:
        sys.setrecursionlimit(limit)
    assert code_of(body) == "nesting_too_deep"


def test_brackets_inside_strings_are_not_nesting() -> None:
    doc = event_doc(note="[" * 5000 + '{"' + "}" * 10, escaped='\\"[[[' * 300)
    assert parse_delivery(json.dumps(doc).encode()).id == "evt_1NgXaZ2eZvKYlo2C"


# -- which bodies the worker parses with json rather than orjson -------------------------------

@pytest.mark.parametrize("number", [
    b'{"n":12345678901234567890}', b'{"n": 12345678901234567890}',
    b'{"n":\n\t12345678901234567890}',
    b'{"n":-12345678901234567890}', b'[1,12345678901234567890]', b'[12345678901234567890]',
    b'[1, \r\n 12345678901234567890]', b"12345678901234567890", b" 12345678901234567890",
    b"-12345678901234567890",
])
def test_every_place_a_long_integer_can_stand_is_seen(number: bytes) -> None:
    assert may_hold_integers_past_64_bits(number)
    assert Event.parse(number) == json.loads(number)


def test_digits_inside_ids_do_not_send_a_body_to_the_slow_parser() -> None:
    """Stripe's ids (and the benchmarks') can hold long runs of digits; a number never follows
    a letter or an underscore."""
    doc = event_doc()
    doc["id"] = "evt_a1234567890123456789012345"
    doc["data"]["object"]["id"] = "pi_1234567890123456789012"  # type: ignore[index]
    body = json.dumps(doc).encode()
    assert not may_hold_integers_past_64_bits(body)
    assert Event.parse(body) == json.loads(body)
