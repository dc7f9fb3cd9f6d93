"""Stripe's OpenAPI schemas (``stripe_openapi/`` beside this file) as JSON Schema 2020-12 validators.

OpenAPI 3.0
writes ``nullable: true`` next to ``anyOf``/``enum``; as the folder's README says, each such
schema is rewritten to ``anyOf: [<schema without nullable>, {"type": "null"}]``. Resources that
the per-resource files only name (``x-other-resources-referenced``) resolve against spec3.json.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ichido.emulator import versions

REFERENCE = Path(__file__).resolve().parent / "stripe_openapi"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BASE = "urn:stripe-openapi"


def require_reference() -> Path:
    """The reference folder; skip when it is missing locally, fail when it is missing in CI."""
    if not (REFERENCE / "spec3.json").is_file():
        reason = f"Stripe's OpenAPI reference is not at {REFERENCE.resolve()}"
        if IN_CI:
            pytest.fail(reason + " (CI=true: the fidelity tests must run)")
        pytest.skip(reason)
    return REFERENCE


def rewrite_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [rewrite_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: rewrite_nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.lru_cache(maxsize=1)
def _registry() -> tuple[Registry, frozenset[str]]:
    folder = require_reference()
    schemas = json.loads((folder / "spec3.json").read_text())["components"]["schemas"]
    for path in sorted((folder / "schemas").glob("*.json")):  # the per-resource extracts
        schemas.update(json.loads(path.read_text())["components"]["schemas"])
    document = {"components": {"schemas": rewrite_nullable(schemas)}}
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(BASE, resource), frozenset(schemas)


def validator(name: str) -> Draft202012Validator:
    registry, names = _registry()
    assert name in names, f"no schema {name!r} in the reference"
    return Draft202012Validator({"$ref": f"{BASE}#/components/schemas/{name}"},
                                registry=registry)


def problems(obj: dict[str, Any], name: str | None = None) -> list[str]:
    """Every way ``obj`` departs from Stripe's schema for its ``object`` (or ``name``).

    The spec is 2023-08-16's; the emulator renders 2025-03-31.basil and later. A field the
    spec requires but the object's version no longer has (``product.features``,
    ``invoice.subscription``…) is not missing; an object the spec predates
    (``invoice_payment``) has only its field names checked, by ``test_versions``."""
    kind = name or obj["object"]
    if kind not in _registry()[1]:
        return []
    version = versions.Version(obj.get("api_version") or versions.DEFAULT) \
        if kind == "event" else versions.Version(versions.DEFAULT)
    found = [f"{kind} {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
             for e in validator(kind).iter_errors(obj) if not _removed(e, kind, version)]
    if kind == "event":
        found += problems(obj["data"]["object"])
    return found


def _removed(error: Any, kind: str, version: versions.Version) -> bool:
    if error.validator != "required" or kind == "event":
        return False
    tree: Any = versions.fields(version, kind)
    node: Any = error.instance
    for part in error.absolute_path:
        if isinstance(part, int) or tree is None:
            continue
        tree = tree.get(part) or None
        if isinstance(node, dict) and isinstance(node.get("object"), str):
            tree = versions.fields(version, node["object"]) or tree
    if isinstance(node, dict) and isinstance(node.get("object"), str):
        tree = versions.fields(version, node["object"]) or tree
    missing = error.message.split("'")[1] if "'" in error.message else ""
    return tree is not None and bool(tree) and missing not in tree


def event_types() -> set[str]:
    folder = require_reference()
    names = set()
    for file in ("event_types.txt", "event_types.stripe-python-16.1.0.txt"):
        names |= set((folder / file).read_text().split())
    return names
