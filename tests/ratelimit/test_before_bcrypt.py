"""RL-5: the limiter is called first, so a flood of logins never reaches bcrypt; and the client
key a server limits by (IPv6 grouped by /64)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidPasswordError,
    RateLimitExceededError,
    RateLimitUnavailableError,
    StoreUnavailableError,
)
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.ratelimit import Acquisition, RateLimiter, RateLimitStorage, client_key
from tests.passwords.test_hasher import _spy_on_checkpw

PEER = "2001:db8:1:2:3:4:5:6"


def _login(limiter: RateLimiter, hasher: PasswordHasher, stored: str, peer: str, pw: str) -> str:
    """The shape of a login handler: the limit first, then the password."""
    limiter.hit("login", client_key(peer))
    hasher.verify(pw, stored)
    return "ok"


@pytest.mark.spec("RL-5")
def test_a_flood_of_logins_costs_five_bcrypt_checks_per_minute(
    limiter: RateLimiter, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    stored = hasher.hash("the real password")
    calls = _spy_on_checkpw(monkeypatch)
    outcomes = []
    for n in range(200):
        # the attacker rotates through its /64 and guesses
        peer = f"2001:db8:1:2::{n:x}"
        try:
            _login(limiter, hasher, stored, peer, f"guess {n}")
        except (InvalidPasswordError, RateLimitExceededError) as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes.count("InvalidPasswordError") == 5
    assert outcomes.count("RateLimitExceededError") == 195
    assert len(calls) == 5
    # even the right password is refused without bcrypt until the window has passed
    with pytest.raises(RateLimitExceededError):
        _login(limiter, hasher, stored, PEER, "the real password")
    assert len(calls) == 5
    clock.advance(60)
    assert _login(limiter, hasher, stored, PEER, "the real password") == "ok"
    assert len(calls) == 6


class _DownStorage:
    """A storage whose backend is down."""

    def acquire_window(self, key: str, *, limit: int, window_ms: int, now_ms: int) -> Acquisition:
        raise StoreUnavailableError(reason="unavailable")

    def acquire_bucket(self, key: str, **kwargs: Any) -> Acquisition:
        raise StoreUnavailableError(reason="unavailable")


@pytest.mark.spec("RL-5")
def test_storage_down_costs_no_bcrypt(clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    storage: RateLimitStorage = _DownStorage()  # type: ignore[assignment]
    limiter = RateLimiter(storage, clock=clock)
    hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
    stored = hasher.hash("the real password")
    calls = _spy_on_checkpw(monkeypatch)
    for _ in range(20):
        with pytest.raises(RateLimitUnavailableError):
            _login(limiter, hasher, stored, PEER, "the real password")
    assert calls == []


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::FFFF", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::1", "::/64"),
    ],
)
def test_client_key(address: str, key: str) -> None:
    assert client_key(address) == key


def test_client_key_prefix_and_errors() -> None:
    assert client_key("2001:db8:1:2:3:4:5:6", ipv6_prefix=128) == "2001:db8:1:2:3:4:5:6/128"
    assert client_key("2001:db8:1:2:3:4:5:6", ipv6_prefix=48) == "2001:db8:1::/48"
    for bad in ("", "localhost", "203.0.113.256", "2001:db8::1/64", "1.2.3.4\x00"):
        with pytest.raises(ValueError):  # noqa: PT011
            client_key(bad)
    with pytest.raises(ValueError):  # noqa: PT011
        client_key("::1", ipv6_prefix=16)
    with pytest.raises(TypeError):
        client_key(b"::1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client_key("::1", ipv6_prefix=True)


@given(st.ip_addresses(v=6), st.ip_addresses(v=6))
def test_ipv6_clients_share_a_key_exactly_when_they_share_a_64(
    a: ipaddress.IPv6Address, b: ipaddress.IPv6Address
) -> None:
    if _embeds_ipv4(a) or _embeds_ipv4(b):
        return
    same_64 = int(a) >> 64 == int(b) >> 64
    assert (client_key(str(a)) == client_key(str(b))) == same_64
    assert len(client_key(str(a))) <= 256


@given(st.ip_addresses(v=4))
def test_ipv4_and_its_mapped_form_share_a_key(a: ipaddress.IPv4Address) -> None:
    assert client_key(str(a)) == client_key(f"::ffff:{a}") == str(a)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embeds_ipv4(a: ipaddress.IPv6Address) -> bool:
    """An address that stands for an IPv4 client: mapped, 6to4, Teredo, compatible or NAT64."""
    compatible = int(a) >> 32 == 0 and int(a) > 1
    return (
        a.ipv4_mapped is not None
        or a.sixtofour is not None
        or a.teredo is not None
        or compatible
        or a in _NAT64
    )


def _spellings(v4: ipaddress.IPv4Address, data: st.DataObject) -> list[str]:
    """Ways one IPv4 client can show up: as is, IPv4-mapped, 6to4 (any subnet and interface of
    its /48), Teredo (any server, flags and port; the client address is stored inverted),
    IPv4-compatible and NAT64 (RFC 6052), in any letter case or as the exploded form."""
    n = int(v4)
    subnet_and_host = data.draw(st.integers(0, 2**80 - 1))
    server = data.draw(st.integers(0, 2**32 - 1))
    flags_and_port = data.draw(st.integers(0, 2**32 - 1))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | subnet_and_host)
    teredo = ipaddress.IPv6Address(
        (0x20010000 << 96) | (server << 64) | (flags_and_port << 32) | (n ^ 0xFFFFFFFF)
    )
    forms = [
        str(v4),
        f"::ffff:{v4}",
        str(sixtofour),
        sixtofour.exploded.upper(),
        str(teredo),
        f"64:ff9b::{v4}",
        str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | n)),
    ]
    if n > 1:  # ::  and ::1 are the unspecified and loopback addresses, not IPv4-compatible
        forms += [f"::{v4}", str(ipaddress.IPv6Address(n))]
    return forms


@given(st.ip_addresses(v=4), st.data())
def test_every_spelling_of_one_ipv4_client_gives_one_key(
    v4: ipaddress.IPv4Address, data: st.DataObject
) -> None:
    # a 6to4 /48 belongs to the one IPv4 host that routes it: counted per /64 it would be
    # 65,536 separate allowances; Teredo, IPv4-compatible and NAT64 addresses carry the IPv4
    # client the same way
    forms = _spellings(v4, data)
    assert {client_key(form) for form in forms} == {str(v4)}, forms


def test_ipv6_tunnels_count_as_their_ipv4_client() -> None:
    assert client_key("2002:cb00:7107:1::1") == "203.0.113.7"
    assert client_key("2002:cb00:7107:ffff:1:2:3:4") == "203.0.113.7"
    # RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (stored inverted)
    assert client_key("2001:0:4136:e378:8000:63bf:3fff:fdd2") == "192.0.2.45"
    assert client_key("::203.0.113.7") == "203.0.113.7"
    assert client_key("64:ff9b::203.0.113.7") == "203.0.113.7"
    # the unspecified and loopback addresses are not IPv4-compatible ones
    assert client_key("::1") == client_key("::") == "::/64"
