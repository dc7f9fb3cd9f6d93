"""Stripe's v2 schemas (``stripe_openapi/v2/``) as JSON Schema validators: thin events, event
destinations, ``v2.deleted_object``, ``v2.error`` and the health alert.

Stripe's SDK-flavoured v2 spec marks almost no field ``nullable``, yet every sample it ships sends
null for optional ones (``context``, ``reason``, ``snapshot_api_version``, ``status_details``,
``webhook_endpoint.url``): read as Stripe writes them, a property its object does not list as
``required`` may be null. ``nullable: true`` is rewritten as in ``schemas``. That this reading
accepts Stripe's own samples is itself tested (``test_thin_schemas``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.emulator.schemas import rewrite_nullable

FOLDER = Path(__file__).resolve().parent / "stripe_openapi" / "v2"
FILES = ("v2_core.json", "thin_event_types.sample.json",
         "health_event_generation_failure_resolved.preview.json")
PUSHED_WITHOUT = ("data", "changes")  # a notification has neither; the fetched event has both


def optional_nulls(node: Any) -> Any:
    if isinstance(node, list):
        return [optional_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: optional_nulls(value) for key, value in node.items()}
    required = set(node.get("required", ()))
    for name, prop in (out.get("properties") or {}).items():
        if name not in required:
            out["properties"][name] = {"anyOf": [prop, {"type": "null"}]}
    return out


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name in FILES:
        schemas.update(json.loads((FOLDER / name).read_text())["components.schemas"])
    return {name: optional_nulls(rewrite_nullable(schema)) for name, schema in schemas.items()}


def names() -> frozenset[str]:
    return frozenset(_schemas())


def problems(obj: dict[str, Any], name: str, *, pushed: bool = False) -> list[str]:
    """Every way ``obj`` departs from schema ``name``; ``pushed``: it is a notification, so the
    schema's ``data`` and ``changes`` are not required of it."""
    schema = dict(_schemas()[name])
    if pushed:
        schema["required"] = [r for r in schema.get("required", ()) if r not in PUSHED_WITHOUT]
    return [f"{name} {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in Draft202012Validator(schema).iter_errors(obj)]


def event_problems(event: dict[str, Any], *, pushed: bool = False) -> list[str]:
    """A thin event against ``v2.core.event`` and, where the extracts have it, its type's own
    schema (the ping, the health alert, the sampled ``v1.*`` types)."""
    found = problems(event, "v2.core.event", pushed=pushed)
    if event.get("type") in names():
        found += problems(event, event["type"], pushed=pushed)
    return found


def examples() -> dict[str, Any]:
    return json.loads((FOLDER / "examples.json").read_text())  # type: ignore[no-any-return]
