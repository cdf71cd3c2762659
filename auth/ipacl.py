"""Per-account lists of client networks allowed to bind (IPv4, IPv6, CIDR).

An entry is a single address or a CIDR block; a block with host bits set is refused
because it usually hides a typo. `IpAllowList.allows` runs on every bind, so the list
is compiled once into integer sets keyed by prefix length.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

_MAPPED_V4 = IPv6Network("::ffff:0:0/96")


def _strip_scope(text: str) -> str:
    # A zone index (fe80::1%eth0) names the local interface, not the peer; ACLs match
    # on the address alone.
    addr, sep, rest = text.partition("%")
    if not sep:
        return text
    _, slash, prefix = rest.partition("/")
    return f"{addr}/{prefix}" if slash else addr


def parse_network(text: str) -> Network:
    """Parse one ACL entry: an address (becomes /32 or /128) or a CIDR block.

    Raises ValueError for anything else, including a block with host bits set.
    """
    if not isinstance(text, str):
        raise TypeError(f"IP entry must be a string, got {type(text).__name__}")
    cleaned = _strip_scope(text.strip())
    if not cleaned:
        raise ValueError("IP entry must not be empty")
    try:
        return ipaddress.ip_network(cleaned, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(cleaned, strict=False)
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not an IPv4/IPv6 address or CIDR block") from exc
        raise ValueError(f"{text.strip()} has host bits set; did you mean {loose}?") from exc


def canonical(text: str) -> str:
    """Return the canonical spelling of an ACL entry, e.g. '127.0.0.1/32', '::1/128'."""
    return str(parse_network(text))


def _unmap(network: Network) -> Network:
    # An entry written as ::ffff:a.b.c.d means the IPv4 host; store it as IPv4 so one
    # lookup path serves both spellings.
    if _is_mapped(network):
        v4 = network.network_address.ipv4_mapped
        assert v4 is not None
        return IPv4Network((v4, network.prefixlen - 96))
    return network


def _is_mapped(network: Network) -> bool:
    return isinstance(network, IPv6Network) and network.subnet_of(_MAPPED_V4)


def _parse_peer(addr: str | Address) -> Address | None:
    if isinstance(addr, (IPv4Address, IPv6Address)):
        peer: Address = addr
    else:
        try:
            peer = ipaddress.ip_address(_strip_scope(addr.strip()))
        except (ValueError, AttributeError):
            return None
    if isinstance(peer, IPv6Address):
        if peer.scope_id is not None:
            peer = IPv6Address(int(peer))
        if peer.ipv4_mapped is not None:
            # Dual-stack listeners report IPv4 clients as ::ffff:a.b.c.d.
            return peer.ipv4_mapped
    return peer


class IpAllowList:
    """The networks one account may bind from. An empty list allows nothing."""

    __slots__ = ("_networks", "_v4", "_v6")

    def __init__(self, networks: Iterable[str] = ()) -> None:
        if isinstance(networks, str):
            # A bare string would be iterated character by character.
            raise TypeError("IpAllowList expects an iterable of strings, not a string")
        parsed: list[Network] = []
        for text in networks:
            net = parse_network(text)
            if net not in parsed:
                parsed.append(net)
        self._networks: tuple[Network, ...] = tuple(parsed)
        unmapped = [_unmap(n) for n in parsed]
        self._v4 = self._compile([n for n in unmapped if n.version == 4], 32)
        self._v6 = self._compile([n for n in unmapped if n.version == 6], 128)

    @staticmethod
    def _compile(networks: list[Network], bits: int) -> tuple[tuple[int, frozenset[int]], ...]:
        # One (mask, {network ints}) pair per distinct prefix length, longest first:
        # a bind costs one AND and one set lookup per prefix length in use.
        by_prefix: dict[int, set[int]] = {}
        for net in networks:
            by_prefix.setdefault(net.prefixlen, set()).add(int(net.network_address))
        full = (1 << bits) - 1
        return tuple(
            ((full << (bits - prefixlen)) & full, frozenset(members))
            for prefixlen, members in sorted(by_prefix.items(), reverse=True)
        )

    @property
    def networks(self) -> tuple[Network, ...]:
        """The entries as parsed, duplicates removed, in the order given."""
        return self._networks

    def allows(self, addr: str | Address) -> bool:
        """True if the peer address ``addr`` falls in one of the listed networks."""
        peer = _parse_peer(addr)
        if peer is None:
            return False
        value = int(peer)
        table = self._v4 if peer.version == 4 else self._v6
        for mask, members in table:
            if value & mask in members:
                return True
        return False

    def __len__(self) -> int:
        return len(self._networks)

    def __iter__(self) -> Iterator[Network]:
        return iter(self._networks)

    def __repr__(self) -> str:
        return f"IpAllowList({[str(n) for n in self._networks]!r})"
