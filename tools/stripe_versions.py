"""Regenerate ``src/ichido/emulator/versions/stripe_api.json`` from Stripe's own SDK wheels.

Each stripe-python release pins one API version (``stripe/_api_version.py``) and is generated
from Stripe's OpenAPI spec at that version: its services name every route with the TypedDict of
the parameters it takes (``stripe/params/…`` since 13.x, nested ``Service.CreateParams`` before),
and its resource classes type every field an object has. This script downloads the newest wheel
of each minor release with ``pip download``, unpacks it, imports it in a subprocess of its own
(``--dump DIR``), reads stripe-node's generated types (``npm pack``) for the version it pins when
no wheel pins that one yet, and keeps, per API version:

- ``objects``: for each ``object`` name, its fields, nested down through the sub-object classes;
- ``params``: for each ``METHOD /v1/path`` (path ids as ``{id}``), its parameters, nested down
  through the TypedDicts (``{}`` for a leaf), and which are required.

The merged file marks each name with the versions that have it (a bit mask over ``versions``),
so 19 versions take little more room than one. Stripe's SDK is MIT-licensed; the data says
which wheel each version came from.

    python tools/stripe_versions.py            # download, extract, write the data file
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import typing
import zipfile
from pathlib import Path
from typing import Any

# stripe-node pins a newer version than any stripe-python release (npm view stripe version).
NODE = "23.2.0"
# The newest patch of each minor release from 12.0 (the first to pin 2025-03-31.basil).
WHEELS = ["12.0.1", "12.1.0", "12.2.0", "12.3.0", "12.4.0", "12.5.2", "13.0.1", "13.2.1",
          "14.0.1", "14.2.0", "14.3.0", "14.4.2", "15.0.1", "15.1.0", "15.2.1", "15.3.1",
          "15.5.1", "15.6.2", "16.0.1", "16.1.0"]
OUT = Path(__file__).resolve().parent.parent / "src/ichido/emulator/versions/stripe_api.json"
MAX_DEPTH = 4
_REQUEST = re.compile(r'_request\(\s*"(get|post|delete)",\s*f?"(/v1/[^"]*)"', re.S)
_NAME = re.compile(r"\b([A-Za-z_]\w*)\b")


# -- inside one wheel (a subprocess: each imports its own ``stripe``) ------------------------
def dump() -> dict[str, Any]:
    import stripe  # the wheel's, first on sys.path
    from stripe._stripe_object import StripeObject
    from stripe._stripe_service import StripeService

    _import_all(stripe)
    modules = [m for name, m in sorted(sys.modules.items())
               if name.startswith("stripe.") and m is not None]
    objects: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for module in modules:
        for cls in list(vars(module).values()):
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            if issubclass(cls, StripeObject) and isinstance(getattr(cls, "OBJECT_NAME", None),
                                                            str):
                objects.setdefault(cls.OBJECT_NAME, _fields(cls, StripeObject, 0))
            if issubclass(cls, StripeService):
                for route, tree in _routes(cls, module):
                    params.setdefault(route, tree)
    return {"version": stripe._api_version._ApiVersion.CURRENT, "sdk": stripe.VERSION,
            "objects": objects, "params": params}


def _import_all(stripe: Any) -> None:
    import importlib
    import pkgutil
    for info in pkgutil.walk_packages(stripe.__path__, "stripe."):
        if ".v2" in info.name:
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 — an optional module (e.g. an HTTP client) missing
            pass


def _annotations(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass).get("__annotations__", {}))
    return {k: v for k, v in out.items() if not k.startswith("_") and not k.isupper()}


def _scopes(cls: type) -> list[Any]:
    """Where a nested class name in an annotation can live: the class, its outer classes."""
    scopes: list[Any] = [cls]
    module = sys.modules[cls.__module__]
    path = cls.__qualname__.split(".")
    for i in range(len(path) - 1, 0, -1):
        node: Any = module
        for part in path[:i]:
            node = getattr(node, part, None)
        if node is not None:
            scopes.append(node)
    return scopes + [module]


def _resolve(annotation: Any, cls: type, base: type) -> type | None:
    """The sub-object class an annotation names: a class nested in the resource's class
    (``PaymentIntent.NextAction``); framework classes and other resources are not followed."""
    def nested(found: Any) -> bool:
        return inspect.isclass(found) and issubclass(found, base) and found is not cls \
            and found.__module__ == cls.__module__ and "." in found.__qualname__
    if inspect.isclass(annotation):
        return annotation if nested(annotation) else None
    if not isinstance(annotation, str):
        for arg in typing.get_args(annotation):
            found = _resolve(arg, cls, base)
            if found is not None:
                return found
        forward = getattr(annotation, "__forward_arg__", None)
        return _resolve(forward, cls, base) if forward else None
    for name in reversed(_NAME.findall(annotation)):  # "Outer.Inner": the last name
        for scope in _scopes(cls):
            found = getattr(scope, name, None)
            if nested(found):
                return found
    return None


def _fields(cls: type, base: type, depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, annotation in _annotations(cls).items():
        sub = _resolve(annotation, cls, base) if depth < MAX_DEPTH else None
        tree[name] = _fields(sub, base, depth + 1) if sub is not None else {}
    return tree


def _routes(service: type, module: Any) -> list[tuple[str, Any]]:
    import stripe
    out = []
    for name, method in vars(service).items():
        if not inspect.isfunction(method) or name.endswith("_async") or name.startswith("_"):
            continue
        try:
            source = inspect.getsource(method)
        except OSError:
            continue
        found = _REQUEST.search(source)
        sig = inspect.signature(method)
        if not found or "params" not in sig.parameters:
            continue
        route = f"{found.group(1).upper()} {re.sub(r'{[^}]*}', '{id}', found.group(2))}"
        text = str(sig.parameters["params"].annotation)
        typed = None
        for ident in _NAME.findall(text):
            for scope in (service, module, getattr(stripe, "params", None)):
                candidate = getattr(scope, ident, None) if scope is not None else None
                if inspect.isclass(candidate) and hasattr(candidate, "__required_keys__"):
                    typed = candidate
                    break
            if typed is None and ident.endswith("Params"):
                typed = _params_class(ident, source_of(module))
            if typed is not None:
                break
        if typed is not None:
            out.append((route, _param_tree(typed, 0)))
    return out


def source_of(module: Any) -> str:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return ""


def _params_class(name: str, source: str) -> Any:
    """Since 13.x a service imports its params TypedDicts only for type checking
    (``from stripe.params.checkout._session_create_params import SessionCreateParams``)."""
    import importlib
    found = re.search(rf"from (stripe\.params[\w.]*) import[^\n]*\b{name}\b", source) or \
        re.search(rf"from (stripe\.params[\w.]*) import \(([^)]*)\b{name}\b", source)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    for candidate in ([found.group(1)] if found else []) + [f"stripe.params._{snake}"]:
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            pass
    return None


@functools.lru_cache(maxsize=1)
def _request_options() -> frozenset[str]:
    """``RequestOptions``' keys (a TypedDict's bases are not in its ``__mro__``)."""
    import importlib
    try:
        module = importlib.import_module("stripe._request_options")
    except ImportError:
        return frozenset()
    return frozenset(getattr(module.RequestOptions, "__annotations__", {}))


def _param_tree(typed: Any, depth: int) -> dict[str, Any]:
    required = set(getattr(typed, "__required_keys__", ()))
    # Since 13.x a route's params TypedDict extends RequestOptions (api_key, headers…):
    # options of the SDK's call, never parameters on the wire.
    options = _request_options()
    tree: dict[str, Any] = {}
    for name, annotation in _annotations(typed).items():
        if name in options:
            continue
        sub = None
        if depth < MAX_DEPTH:
            text = annotation if isinstance(annotation, str) else repr(annotation)
            for ident in _NAME.findall(text):
                for scope in _scopes(typed):
                    found = getattr(scope, ident, None)
                    if inspect.isclass(found) and hasattr(found, "__required_keys__") \
                            and found is not typed and ident not in ("RequestOptions",):
                        sub = found
                        break
                if sub is not None:
                    break
        node = _param_tree(sub, depth + 1) if sub is not None else {}
        tree[("!" if name in required else "") + name] = node
    return tree


# -- stripe-node's types, for a version no stripe-python wheel pins yet -----------------------
_BLOCK = re.compile(r"^(\s*)(?:export )?(?:declare )?(interface|namespace|class) (\w+)"
                    r"(?: extends ([\w.]+))?[^{]*\{\s*$")
_MEMBER = re.compile(r"^\s*(\w+)(\??): (.*)$")
_METHOD_DTS = re.compile(r"^\s{4}(\w+)\((?:\w+: string(?: \| null)?, )*params\??: ([\w.]+)")
_METHOD_JS = re.compile(r"^\s{4}(\w+)\([^)]*\) \{[^}]*?this\._makeRequest\("
                        r"'(GET|POST|DELETE)', [`'](/v1/[^`']*)[`']", re.M)
EXTENDS = "<extends>"
_DOTTED = re.compile(r"\b([A-Z]\w*(?:\.[A-Z]\w*)*)\b")


def node_dump(package: Path) -> dict[str, Any]:
    """The same facts from stripe-node's generated ``cjs/resources/**/*.d.ts`` (interfaces for
    objects and ``…Params``, namespaces for their sub-objects) and ``*.js`` (each method's
    ``_makeRequest(METHOD, path)``)."""
    objects: dict[str, Any] = {}
    params: dict[str, Any] = {}
    shared = _interfaces((package / "cjs/shared.d.ts").read_text(encoding="utf-8"))
    for dts in sorted((package / "cjs/resources").rglob("*.d.ts")):
        if "/V2/" in str(dts):
            continue
        members = {**shared, **_interfaces(dts.read_text(encoding="utf-8"))}
        for name, fields in members.items():
            kind = fields.get("object", ("", ""))[1].strip(" ;'")
            if not name.startswith("Deleted") and re.fullmatch(r"[a-z_.]+", kind or "") and kind != "list":
                objects.setdefault(kind, _node_tree(members, name, 0, params=False))
        js = dts.with_name(dts.name[:-len(".d.ts")] + ".js")
        routes = {m.group(1): f"{m.group(2)} {re.sub(r'[$][{][^}]*[}]', '{id}', m.group(3))}"
                  for m in _METHOD_JS.finditer(js.read_text(encoding="utf-8"))} \
            if js.is_file() else {}
        for line in dts.read_text(encoding="utf-8").splitlines():
            found = _METHOD_DTS.match(line)
            if found and found.group(1) in routes and found.group(2) in members:
                params.setdefault(routes[found.group(1)],
                                  _node_tree(members, found.group(2), 0, params=True))
    version = (package / "cjs/apiVersion.js").read_text()
    sdk = json.loads((package / "package.json").read_text())["version"]
    return {"version": re.search(r"ApiVersion = '([^']+)'", version).group(1),  # type: ignore
            "sdk": sdk, "objects": objects, "params": params}


def _interfaces(text: str) -> dict[str, dict[str, tuple[bool, str]]]:
    """Every interface's members (optional?, type text), by qualified name."""
    stack: list[tuple[int, str, str]] = []
    out: dict[str, dict[str, tuple[bool, str]]] = {}
    member: tuple[str, bool, str] | None = None
    for line in text.splitlines():
        block = _BLOCK.match(line)
        if block:
            stack.append((len(block.group(1)), block.group(2), block.group(3)))
            if block.group(2) == "interface":
                own = out.setdefault(".".join(n for _, _, n in stack), {})
                if block.group(4):  # PaginationParams: limit, starting_after, ending_before
                    own[EXTENDS] = (True, block.group(4))
            continue
        stripped = line.strip()
        if stripped == "}" and stack and len(line) - len(line.lstrip()) == stack[-1][0]:
            stack.pop()
            continue
        if not stack or stack[-1][1] != "interface" or stripped.startswith(("*", "/")):
            continue
        depth = len(line) - len(line.lstrip())
        found = _MEMBER.match(line)
        if found and depth == stack[-1][0] + 4:
            member = (found.group(1), found.group(2) == "?", found.group(3))
            out[".".join(n for _, _, n in stack)][member[0]] = (member[1], member[2])
        elif member is not None and depth > stack[-1][0] + 4:  # a type on several lines
            name, optional, kind = member
            member = (name, optional, kind + " " + stripped)
            out[".".join(n for _, _, n in stack)][name] = (optional, member[2])
    return out


def _node_tree(members: dict[str, Any], name: str, depth: int, *, params: bool
               ) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    own = dict(members[name])
    base = own.pop(EXTENDS, None)
    if base is not None and base[1] in members:
        own = {**{k: v for k, v in members[base[1]].items() if k != EXTENDS}, **own}
    for field, (optional, kind) in own.items():
        sub = None
        if depth < MAX_DEPTH:
            for ref in _DOTTED.findall(kind):
                parts = name.split(".")
                for i in range(len(parts), -1, -1):
                    candidate = ".".join(parts[:i] + [ref])
                    if candidate in members and candidate != name:
                        sub = candidate
                        break
                if sub is not None:
                    break
        node = _node_tree(members, sub, depth + 1, params=params) if sub else {}
        tree[("!" if params and not optional else "") + field] = node
    return tree


# -- the merge (the main process) ------------------------------------------------------------
def _merge(trees: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-version trees into one: each name -> [mask, children]."""
    names = sorted({name for tree in trees for name in tree})
    merged: dict[str, Any] = {}
    for name in names:
        mask = sum(1 << i for i, tree in enumerate(trees) if name in tree)
        children = _merge([tree.get(name) or {} for tree in trees])
        merged[name] = [mask, children] if children else mask
    return merged


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--dump":
        sys.path.insert(0, sys.argv[2])
        json.dump(dump(), sys.stdout)
        return
    dumps: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sdk in WHEELS:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            f"stripe=={sdk}", "-d", tmp], check=True)
            wheel = next(Path(tmp).glob(f"stripe-{sdk}-*.whl"))
            unpacked = Path(tmp) / sdk
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(unpacked)
            out = subprocess.run([sys.executable, __file__, "--dump", str(unpacked)],
                                 check=True, capture_output=True, text=True).stdout
            data = json.loads(out)
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            dumps[data["version"]] = data  # a later wheel of the same version wins
            sources[data["version"]] = f"stripe-python {sdk} ({wheel.name}, sha256 {digest})"
            print(f"{sdk}: {data['version']}, {len(data['objects'])} objects, "
                  f"{len(data['params'])} routes", file=sys.stderr)
        subprocess.run(["npm", "pack", "--silent", f"stripe@{NODE}", "--pack-destination", tmp],
                       check=True, capture_output=True)
        tarball = Path(tmp) / f"stripe-{NODE}.tgz"
        with tarfile.open(tarball) as archive:
            archive.extractall(Path(tmp) / "node", filter="data")
        data = node_dump(Path(tmp) / "node" / "package")
        if data["version"] not in dumps:  # a version no Python wheel pins
            digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
            dumps[data["version"]] = data
            sources[data["version"]] = f"stripe-node {NODE} ({tarball.name}, sha256 {digest})"
        print(f"node {NODE}: {data['version']}, {len(data['objects'])} objects, "
              f"{len(data['params'])} routes", file=sys.stderr)
    versions = sorted(dumps)
    document = {
        "x-source": "Generated by tools/stripe_versions.py from Stripe's stripe-python wheels "
                    "and, for a newer version, stripe-node's types (both MIT licence, "
                    "github.com/stripe/stripe-python, github.com/stripe/stripe-node); "
                    "do not edit by hand.",
        "versions": versions, "sources": [sources[v] for v in versions],
        "objects": _merge([dumps[v]["objects"] for v in versions]),
        "params": _merge([dumps[v]["params"] for v in versions]),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
