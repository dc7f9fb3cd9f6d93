"""Open connections by client address, so that no one client can take every connection.

Before any signature is read anyone can connect, and a connection that trickles its headers
holds a slot until ``ICHIDO_HEADER_TIMEOUT``: 500 of them from one address once made every
delivery get 503. Two rules, applied when a connection opens (never per request):

- one address holds at most ``ICHIDO_MAX_CONNECTIONS_PER_ADDRESS`` (an IPv6 /64 counts as one
  address: a host is usually given the whole /64). Trusted proxies are exempt: they carry many
  clients.
- past that share, or past ``ICHIDO_MAX_CONNECTIONS`` in all, the oldest connection still
  *waiting for a request* (it sent nothing yet, or part of its headers, or it idles between
  requests) is closed to make room: the same address's for its share, the busiest address's for
  the total. A connection whose headers are in (its body arriving, its event being stored or
  answered) is never closed for this. Only when none is waiting is the new one refused, 503.

A real delivery sends its headers in its first packets, so it waits for a moment; a slowloris
waits as long as it is let: it is the one closed, and the delivery gets through, from another
address or from the attacker's own (a proxy's, a NAT's).
"""

from __future__ import annotations

import ipaddress
from typing import Hashable, Protocol

from ichido.errors import ReasonCode
from ichido.sources import AddressSet


class Peer(Protocol):
    """A connection as the table sees it (ichido.serving.BoundedHttpToolsProtocol)."""

    def waiting_for_request(self) -> bool: ...

    def evict(self) -> None:
        """Answer (503, or nothing if no request began) and close."""


def address_key(host: str | None) -> Hashable:
    """The unit of the per-address share: the address, an IPv6 address's /64."""
    if host is None or ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.packed[:8]


class ConnectionTable:
    """The open connections of one server, by address, oldest first. Used from the server's
    event loop only."""

    def __init__(self, limit: int, per_address: int, exempt: AddressSet) -> None:
        self.limit = limit
        self.per_address = per_address
        self.exempt = exempt
        self.open = 0
        self._by_address: dict[Hashable, dict[Peer, None]] = {}

    def admit(self, peer: Peer, host: str | None) -> ReasonCode | None:
        """Count ``peer`` in, making room if needed; or return the reason code it is refused
        with (``too_many_connections_from_address``, ``too_many_connections``)."""
        key = address_key(host)
        held = self._by_address.get(key)
        if (held is not None and len(held) >= self.per_address and host not in self.exempt
                and not self._evict_oldest_waiting(key, held)):
            return "too_many_connections_from_address"
        if self.open >= self.limit and not self._evict_from_busiest():
            return "too_many_connections"
        self._by_address.setdefault(key, {})[peer] = None
        self.open += 1
        return None

    def release(self, peer: Peer, host: str | None) -> None:
        """Count ``peer`` out (closed or refused); a second call does nothing."""
        key = address_key(host)
        held = self._by_address.get(key)
        if held is not None and peer in held:
            self._remove(key, held, peer)

    def held_by(self, host: str | None) -> int:
        return len(self._by_address.get(address_key(host), ()))

    def waiting(self) -> int:
        """How many connections wait for a request (could be closed to make room)."""
        return sum(peer.waiting_for_request() for held in self._by_address.values()
                   for peer in held)

    def _remove(self, key: Hashable, held: dict[Peer, None], peer: Peer) -> None:
        del held[peer]
        self.open -= 1
        if not held:
            del self._by_address[key]

    def _evict_oldest_waiting(self, key: Hashable, held: dict[Peer, None]) -> bool:
        victim = next((peer for peer in held if peer.waiting_for_request()), None)
        if victim is None:
            return False
        self._remove(key, held, victim)
        victim.evict()
        return True

    def _evict_from_busiest(self) -> bool:
        """The rare path (the server is full): the busiest address gives up a connection."""
        busiest = sorted(self._by_address.items(), key=lambda item: len(item[1]), reverse=True)
        return any(self._evict_oldest_waiting(key, held) for key, held in busiest)
