"""What Python's ``json`` (the parser of Stripe's SDK: ``construct_event`` is ``json.loads``)
cannot read although the JSON is valid, found without parsing an ordinary body twice.

- **Integers of more than 4300 digits** (``sys.int_info``: Python's guard against quadratic
  conversions). Only a run of that many digits can be one, so only bodies longer than that are
  looked at (a ``translate`` and a ``find``: about a microsecond per kilobyte), and only a body
  with such a run is parsed again, with ``json`` itself, to tell a number from digits in a
  string.
- **Deep nesting.** The SDK recurses in Python: ``json.loads`` stops near 1000 levels, and
  ``construct_event`` then turns each level into a ``StripeObject`` with two or three frames
  more, so from the top of a stack it refuses about 330 levels of objects, and fewer the deeper
  its caller's stack is (the door, msgspec, stopped only near 1000: such events were stored).
  The door refuses past a fixed ``MAX_DEPTH`` instead: far below where the SDK stops for any
  caller under ~700 frames deep, ten times what Stripe's events nest (about 10 levels). A body
  with fewer opening brackets than that cannot be that deep, so one ``translate`` clears an
  ordinary body (about a microsecond for 2.5 KB, against five for the rest of
  ``parse_delivery``; two ``bytes.count`` cost more). A larger one is measured on its brackets,
  those inside strings counted too, and only if that says too deep are strings set aside to
  measure it exactly.

The other things ``json.loads`` accepts and the door refuses (NaN, Infinity, lone surrogates,
a byte-order mark) are refused by msgspec's stricter decoder before these checks run.
"""

from __future__ import annotations

import json
import re
import sys
from itertools import accumulate

from ichido.errors import ReasonCode

MAX_INT_DIGITS = min(filter(None, (sys.int_info.default_max_str_digits,
                                   sys.get_int_max_str_digits())))
MAX_DEPTH = 100

_DIGITS_AS_ZERO = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_TOO_MANY_DIGITS = b"0" * (MAX_INT_DIGITS + 1)
# orjson reads an integer beyond 64 bits (19 digits and more) as a float; json reads it exactly
_PAST_64_BITS = b"0" * 19
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_NOT_OPENERS = bytes(byte for byte in range(256) if byte not in b"[{")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class Unreadable(ValueError):
    """``code`` is the reason code: ``integer_too_long`` or ``nesting_too_deep``."""

    def __init__(self, message: str, code: ReasonCode) -> None:
        super().__init__(message)
        self.code = code


def check_readable(body: bytes) -> None:
    """Raise ``Unreadable`` if ``body`` (valid JSON) is beyond what the SDK's parser reads."""
    if (len(body.translate(None, _NOT_OPENERS)) > MAX_DEPTH
            and _depth(body.translate(None, _NOT_BRACKETS)) > MAX_DEPTH):
        depth = _depth(_STRING.sub(b"", body).translate(None, _NOT_BRACKETS))
        if depth > MAX_DEPTH:
            raise Unreadable(f"JSON nested {depth} levels deep, more than {MAX_DEPTH}",
                             "nesting_too_deep")
    if len(body) > MAX_INT_DIGITS and _TOO_MANY_DIGITS in body.translate(_DIGITS_AS_ZERO):
        _check_integer_lengths(body)


def may_hold_integers_past_64_bits(body: bytes) -> bool:
    return _PAST_64_BITS in body.translate(_DIGITS_AS_ZERO)


def _depth(brackets: bytes) -> int:
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


class _IntegerTooLong(Exception):
    pass


def _integer_of_bounded_length(literal: str) -> int:
    if len(literal) - literal.startswith("-") > MAX_INT_DIGITS:
        raise _IntegerTooLong(len(literal))
    return 0  # the value itself is not needed


def _check_integer_lengths(body: bytes) -> None:
    """The rare path: parse as the SDK does and find the integers too long for it."""
    try:
        json.loads(body, parse_int=_integer_of_bounded_length)
    except _IntegerTooLong as exc:
        raise Unreadable(f"an integer has {exc.args[0]} characters: Python (and so Stripe's "
                         f"SDK) reads at most {MAX_INT_DIGITS} digits",
                         "integer_too_long") from None
