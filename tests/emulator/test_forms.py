"""Stripe's bracket notation: what curl and what stripe-python send must parse alike."""

from __future__ import annotations

import pytest

from ichido.emulator import forms
from ichido.emulator.errors import StripeError


def test_empty_brackets_and_indices_both_make_lists() -> None:
    assert forms.parse("payment_method_types[]=card&payment_method_types[]=konbini") == \
        forms.parse("payment_method_types[0]=card&payment_method_types[1]=konbini") == \
        {"payment_method_types": ["card", "konbini"]}


def test_nested_objects_and_metadata() -> None:
    parsed = forms.parse("payment_method_options[konbini][expires_after_days]=3"
                         "&metadata[order]=o_1&metadata[note]=&amount=1500")
    assert parsed == {"payment_method_options": {"konbini": {"expires_after_days": "3"}},
                      "metadata": {"order": "o_1", "note": ""}, "amount": "1500"}


def test_indices_sort_numerically_and_nest() -> None:
    text = "&".join(f"expand[{i}]=f{i}" for i in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9))
    assert forms.parse(text)["expand"] == [f"f{i}" for i in range(11)]
    assert forms.parse("a[0][b]=1&a[1][b]=2") == {"a": [{"b": "1"}, {"b": "2"}]}


def test_percent_encoding_is_decoded() -> None:
    assert forms.parse("billing[email]=hanako%2Bx%40test.com&d=%E5%8B%95%E7%94%BB") == \
        {"billing": {"email": "hanako+x@test.com"}, "d": "動画"}


@pytest.mark.parametrize("raw", ["abc", "1.5", ""])
def test_integer_reader_names_the_parameter(raw: str) -> None:
    if raw == "":
        assert forms.integer({"amount": raw}, "amount") is None
        return
    with pytest.raises(StripeError) as caught:
        forms.integer({"amount": raw}, "amount")
    assert caught.value.param == "amount" and caught.value.status == 400
