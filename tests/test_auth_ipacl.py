"""IP allow-list parsing and matching: IPv4, IPv6, CIDR, mapped and scoped peers."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.ipacl import IpAllowList, canonical, parse_network


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1/32"),
        (" 10.1.2.3 ", "10.1.2.3/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("::1", "::1/128"),
        ("2001:DB8::1", "2001:db8::1/128"),
        ("2001:db8:0:0::/32", "2001:db8::/32"),
        ("fe80::1%eth0", "fe80::1/128"),
        ("fe80::%eth0/64", "fe80::/64"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1/128"),
    ],
)
def test_canonical_spelling(text: str, expected: str) -> None:
    assert canonical(text) == expected


def test_single_address_becomes_host_network() -> None:
    assert parse_network("192.0.2.7") == ipaddress.IPv4Network("192.0.2.7/32")
    assert parse_network("2001:db8::7") == ipaddress.IPv6Network("2001:db8::7/128")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1/24", "10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"),
        ("2001:db8::1/32", "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("example.com", "is not an IPv4/IPv6 address or CIDR block"),
        ("10.0.0.256", "is not an IPv4/IPv6 address"),
        ("10.0.0.0/33", "is not an IPv4/IPv6 address"),
        ("10.0.0.0-10.0.0.9", "is not an IPv4/IPv6 address"),
    ],
)
def test_bad_entries_raise_with_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace(".", r"\.")):
        parse_network(text)


def test_non_string_entry_raises_type_error() -> None:
    with pytest.raises(TypeError):
        parse_network(ipaddress.ip_address("10.0.0.1"))  # type: ignore[arg-type]


ACL = IpAllowList(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32", "::1", "::ffff:192.0.2.1"])


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("10.0.0.0", True),
        ("10.255.255.255", True),
        ("11.0.0.0", False),
        ("9.255.255.255", False),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.9.8.7", True),
        ("::ffff:127.0.0.2", False),
        ("::1", True),
        ("::2", False),
        ("2001:db8::abcd", True),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", True),
        ("2001:db9::", False),
        ("2001:db8::5%eth0", True),
        ("fe80::1%eth0", False),
        ("192.0.2.1", True),  # entry written as an IPv4-mapped IPv6 address
        ("::ffff:192.0.2.1", True),
        ("::7f00:1", False),  # IPv4-compatible (deprecated), not mapped: no match
        ("not-an-ip", False),
        ("", False),
    ],
)
def test_allows(peer: str, allowed: bool) -> None:
    assert ACL.allows(peer) is allowed


def test_allows_accepts_address_objects() -> None:
    assert ACL.allows(ipaddress.ip_address("10.1.1.1"))
    assert ACL.allows(ipaddress.IPv6Address("2001:db8::1%eth0"))
    assert not ACL.allows(ipaddress.ip_address("172.16.0.1"))


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0"])
def test_empty_list_allows_nothing(peer: str) -> None:
    acl = IpAllowList([])
    assert len(acl) == 0
    assert not acl.allows(peer)


def test_any_network_allows_every_ipv4_but_no_ipv6() -> None:
    acl = IpAllowList(["0.0.0.0/0"])
    assert acl.allows("203.0.113.9")
    assert acl.allows("::ffff:203.0.113.9")
    assert not acl.allows("2001:db8::1")


def test_duplicates_are_removed_and_order_kept() -> None:
    acl = IpAllowList(["10.0.0.1", "::1", "10.0.0.1/32"])
    assert [str(n) for n in acl.networks] == ["10.0.0.1/32", "::1/128"]
    assert list(acl) == list(acl.networks)


def test_bad_entry_fails_the_whole_list() -> None:
    with pytest.raises(ValueError, match="host bits"):
        IpAllowList(["127.0.0.1", "10.0.0.1/8"])


def test_bare_string_is_refused() -> None:
    with pytest.raises(TypeError):
        IpAllowList("127.0.0.1")  # type: ignore[arg-type]


@given(
    network=st.ip_addresses(v=4).flatmap(
        lambda a: st.integers(0, 32).map(lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False))
    ),
    peer=st.ip_addresses(v=4),
)
def test_ipv4_matching_agrees_with_ipaddress(network: ipaddress.IPv4Network, peer) -> None:
    acl = IpAllowList([str(network)])
    assert acl.allows(str(peer)) is (peer in network)
    assert acl.allows(f"::ffff:{peer}") is (peer in network)


@given(
    network=st.ip_addresses(v=6).flatmap(
        lambda a: st.integers(0, 128).map(lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False))
    ),
    peer=st.ip_addresses(v=6),
)
def test_ipv6_matching_agrees_with_ipaddress(network: ipaddress.IPv6Network, peer) -> None:
    acl = IpAllowList([str(network)])
    expected = peer in network
    if peer.ipv4_mapped is not None or network.subnet_of(ipaddress.ip_network("::ffff:0:0/96")):
        return  # mapped forms are compared as IPv4, covered above
    assert acl.allows(str(peer)) is expected
