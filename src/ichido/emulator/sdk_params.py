"""What a route accepts, read from stripe-python's generated request params (``stripe.params``).

stripe-python 16 generates one ``TypedDict`` per API method from Stripe's OpenAPI spec for the
version it pins; its keys are the parameters that method takes. Routes added for Stripe's own
tools take their accepted names from there rather than from hand-written lists, so a parameter
the real API takes is never refused as ``parameter_unknown`` (and one it lacks always is).
The request options every params class also carries (``api_key``, ``idempotency_key``...) are
client-side, not API parameters, and are left out.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Iterable, Mapping

from stripe._request_options import RequestOptions

from ichido.emulator.errors import invalid, unknown_param

_CLIENT_SIDE = frozenset(RequestOptions.__annotations__)


@functools.cache
def accepted(name: str) -> frozenset[str]:
    """The top-level parameters of ``stripe.params.<name>``: ``"CouponCreateParams"``, or
    ``"test_helpers.TestClockCreateParams"`` for a sub-package."""
    package, _, cls = f"stripe.params.{name}".rpartition(".")
    params = getattr(importlib.import_module(package), cls)
    return frozenset(params.__required_keys__ | params.__optional_keys__) - _CLIENT_SIDE


def check(params: Mapping[str, Any], name: str, supported: Iterable[str],
          older: Iterable[str] = ()) -> None:
    """Refuse what ``stripe.params.<name>`` lacks (``parameter_unknown``, as Stripe), and what
    the real API takes but the local Stripe does not model (a 400 naming it), so that no
    parameter is taken and silently ignored. ``older``: names the SDK's pinned version dropped
    that earlier versions (and the CLI's fixtures) still send; they are modelled too."""
    known = accepted(name) | set(older)
    modelled = set(supported) | set(older) | {"expand"}
    for key in params:
        if key not in known:
            raise unknown_param(key)
        if key not in modelled:
            raise invalid(f"The local Stripe does not model {key} on this request; "
                          f"it takes {', '.join(sorted(modelled))}.", param=key)
