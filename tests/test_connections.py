"""The connection table's rules on their own (the sockets are in tests/test_serving.py): what
counts as one address, which connection makes room, which never does."""

from __future__ import annotations

from dataclasses import dataclass, field

from ichido.connections import ConnectionTable, address_key
from ichido.sources import AddressSet, parse_networks


@dataclass(eq=False)
class Peer:
    waiting: bool = True
    evicted: list[str] = field(default_factory=list)

    def waiting_for_request(self) -> bool:
        return self.waiting

    def evict(self) -> None:
        self.evicted.append("503")


def table(limit: int = 10, per_address: int = 3, exempt: tuple[str, ...] = ()) -> ConnectionTable:
    return ConnectionTable(limit, per_address, AddressSet(parse_networks(exempt, "test")))


def test_an_ipv6_slash_64_is_one_address_and_a_mapped_ipv4_is_its_ipv4() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:3.18.12.63") == address_key("3.18.12.63") == "3.18.12.63"
    assert address_key(None) is None


def test_the_oldest_waiting_connection_of_the_address_makes_room() -> None:
    connections = table(per_address=3)
    busy, oldest, newer = Peer(waiting=False), Peer(), Peer()
    for peer in (busy, oldest, newer):
        assert connections.admit(peer, "198.51.100.7") is None
    assert connections.admit(Peer(), "198.51.100.7") is None
    assert (busy.evicted, oldest.evicted, newer.evicted) == ([], ["503"], [])
    assert connections.held_by("198.51.100.7") == 3 and connections.open == 3


def test_busy_connections_are_never_evicted_and_then_the_new_one_is_refused() -> None:
    connections = table(limit=4, per_address=2)
    held = [Peer(waiting=False) for _ in range(4)]
    assert connections.admit(held[0], "192.0.2.1") is None
    assert connections.admit(held[1], "192.0.2.1") is None
    assert connections.admit(Peer(), "192.0.2.1") == "too_many_connections_from_address"
    assert connections.admit(held[2], "192.0.2.2") is None
    assert connections.admit(held[3], "192.0.2.3") is None
    assert connections.admit(Peer(), "192.0.2.4") == "too_many_connections"
    connections.release(held[3], "192.0.2.3")
    connections.release(held[3], "192.0.2.3")  # twice: counted out once
    assert connections.open == 3
    assert connections.admit(Peer(), "192.0.2.4") is None
    assert not any(peer.evicted for peer in held)


def test_when_full_the_busiest_address_gives_up_its_oldest_waiting_connection() -> None:
    connections = table(limit=5, per_address=10)
    small = [Peer(), Peer()]
    large = [Peer(waiting=False), Peer(), Peer()]
    for peer in small:
        connections.admit(peer, "192.0.2.1")
    for peer in large:
        connections.admit(peer, "192.0.2.2")
    assert connections.admit(Peer(), "192.0.2.3") is None
    assert [p.evicted for p in small] == [[], []]
    assert [p.evicted for p in large] == [[], ["503"], []]


def test_a_trusted_proxy_holds_more_than_one_share() -> None:
    connections = table(limit=10, per_address=2, exempt=("10.0.0.0/8",))
    proxy = [Peer(waiting=False) for _ in range(6)]
    assert all(connections.admit(peer, "10.1.2.3") is None for peer in proxy)
    assert connections.held_by("10.1.2.3") == 6
