"""Who may deliver: sets of addresses (trusted proxies), and the optional allowlist of the
addresses Stripe sends webhooks from.

Stripe publishes its webhook addresses (https://stripe.com/files/ips/ips_webhooks.txt, one a
line, and ips_webhooks.json, ``{"WEBHOOKS": [...]}``) and changes them with seven days' notice:
the list grew from 12 to 15 addresses in 2026. So the allowlist is data the operator refreshes,
never code: ``ICHIDO_ALLOWED_SOURCES_FILE`` names a file in either format (or a list of
addresses and networks, ``#`` comments), read at start and read again whenever it changes
(replacing it, as ``curl -o new && mv new file`` does, is enough). A file that becomes
unreadable or empty keeps the last good list, with a warning: a failed refresh must not refuse
every delivery.

The client address is the connection's peer, or, from a trusted proxy
(``ICHIDO_TRUSTED_PROXIES``), the address that proxy puts in ``X-Forwarded-For`` (uvicorn's
proxy-headers middleware reads it, ichido.serving configures it). A refused delivery gets 403
``source_not_allowed``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from typing import Any, Iterable

from ichido.config import read_text
from ichido.errors import ConfigError

log = logging.getLogger("ichido.sources")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
RECHECK_SECONDS = 2.0  # how often the allowlist file's identity (inode, size, mtime) is looked at


def parse_networks(entries: Iterable[str], origin: str) -> tuple[Network, ...]:
    """Addresses (``3.18.12.63``) and networks (``10.0.0.0/8``, ``2001:db8::/32``)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{origin}: {entry.strip()[:60]!r} is not an IP address or "
                              f"network") from None
    return tuple(networks)


class AddressSet:
    """Membership of a peer address (as the server reports it: a string) in a few networks."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self._exact = frozenset(str(n.network_address) for n in self.networks
                                if n.num_addresses == 1)
        self._known: dict[str, bool] = {}

    def __contains__(self, host: str | None) -> bool:
        if host is None:
            return False
        known = self._known.get(host)
        if known is None:
            known = host in self._exact or self._match(host)
            if len(self._known) >= 65_536:  # bounded: every peer address ever seen
                self._known.clear()
            self._known[host] = known
        return known

    def _match(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:3.18.12.63 from a dual-stack socket
        return any(address in network for network in self.networks)

    def __len__(self) -> int:
        return len(self.networks)


def read_allowlist(path: str) -> AddressSet:
    """Stripe's ``ips_webhooks.txt`` or ``.json``, or any list of addresses and networks."""
    text = read_text(path, "the allowed sources file")
    if text.lstrip().startswith(("{", "[")):
        try:
            entries = list(_strings(json.loads(text)))
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    else:
        entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        entries = [entry for entry in entries if entry]
    if not entries:
        raise ConfigError(f"{path}: no addresses (an empty allowlist would refuse every "
                          f"delivery)")
    return AddressSet(parse_networks(entries, path))


def _strings(doc: Any) -> Iterable[str]:
    """Every string in Stripe's JSON file (``{"WEBHOOKS": ["3.18.12.63", ...]}``)."""
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, list):
        for item in doc:
            yield from _strings(item)
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from _strings(value)


class SourceAllowlist:
    """The allowlist file, read again when it changes (looked at every ``RECHECK_SECONDS``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.addresses = read_allowlist(path)
        self._identity = self._stat()
        self._next_check = time.monotonic() + RECHECK_SECONDS

    def allows(self, host: str | None) -> bool:
        if time.monotonic() >= self._next_check:
            self._refresh()
        return host in self.addresses

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _refresh(self) -> None:
        self._next_check = time.monotonic() + RECHECK_SECONDS
        identity = self._stat()
        if identity == self._identity:
            return
        self._identity = identity
        try:
            self.addresses = read_allowlist(self.path)
        except ConfigError as exc:
            log.warning("allowed sources not refreshed, keeping the last %d: %s",
                        len(self.addresses), exc.message)
            return
        log.info("allowed sources refreshed: %d addresses or networks", len(self.addresses))
