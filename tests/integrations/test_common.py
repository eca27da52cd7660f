"""What the integrations share: who the client is behind trusted proxies, and the remembered
(peer, ``X-Forwarded-For``) pairs."""

from __future__ import annotations

import pytest

from storno_security.integrations._common import (
    ClientAddresses,
    RequestIds,
    TrustedProxies,
    limit_key,
)
from tests._fork import in_a_forked_child

PROXY = "10.0.0.5"


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # the nearest untrusted hop, read from the right
        (PROXY, "198.51.100.7, 10.0.0.9", "198.51.100.7"),
        # a garbled hop: nothing in the chain is believed
        (PROXY, "198.51.100.7, not-an-address", PROXY),
        # every hop is a proxy of ours: the first one is the client
        (PROXY, "10.0.0.1, 10.0.0.2", "10.0.0.1"),
        # a chain of nothing but commas names nobody
        (PROXY, " , ,", PROXY),
        # a peer that is no address (a Unix socket) is never a trusted proxy
        ("unix:/run/app.sock", "198.51.100.7", "unix:/run/app.sock"),
        # no peer at all
        (None, "198.51.100.7", "unknown"),
        # an untrusted peer cannot name the client
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),
    ],
)
def test_the_client_behind_trusted_proxies(
    peer: str | None, forwarded_for: str, client: str
) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client_ip(peer, forwarded_for) == client


def test_a_resolved_pair_is_remembered_with_its_limit_key() -> None:
    addresses = ClientAddresses(TrustedProxies(["10.0.0.0/8"]))
    first = addresses.resolve(PROXY, "198.51.100.7")
    assert first == ("198.51.100.7", limit_key("198.51.100.7"))
    assert addresses.resolve(PROXY, "198.51.100.7") is first


def test_a_long_forwarded_chain_is_resolved_but_not_remembered() -> None:
    addresses = ClientAddresses(TrustedProxies(["10.0.0.0/8"]))
    chain = ", ".join(["198.51.100.7"] + ["10.0.0.9"] * 40)
    assert len(chain) > 256
    first = addresses.resolve(PROXY, chain)
    assert first[0] == "198.51.100.7"
    again = addresses.resolve(PROXY, chain)
    assert again == first
    assert again is not first  # parsed anew: a long chain is never kept


def test_the_remembered_pairs_are_bounded() -> None:
    addresses = ClientAddresses(TrustedProxies())
    peers = [f"192.0.{n // 256}.{n % 256}" for n in range(ClientAddresses._MAX + 1)]
    remembered = [addresses.resolve(peer, None) for peer in peers]
    assert remembered[-1] == (peers[-1], limit_key(peers[-1]))
    # the pair that overflowed the bound cleared the others: the first is parsed anew
    assert addresses.resolve(peers[-1], None) is remembered[-1]
    again = addresses.resolve(peers[0], None)
    assert again == remembered[0]
    assert again is not remembered[0]


def test_a_peer_that_is_no_address_is_limited_by_its_name() -> None:
    assert limit_key("unix:/run/app.sock") == "peer:unix:/run/app.sock"
    assert limit_key("x" * 300) == "peer:" + "x" * 200


def test_a_forked_worker_draws_its_own_request_id_prefix() -> None:
    # Workers forked from one master must never hand out the same ids.
    ids = RequestIds()
    first = ids(None)
    assert ids(None)[:16] == first[:16]  # one prefix per process, a counter after it
    child = in_a_forked_child(lambda: ids(None))
    assert len(child) == 32
    assert child[:16] != first[:16]
    assert ids(None)[:16] == first[:16]  # the parent keeps its own


def test_the_fork_generation_changes_in_a_child_only() -> None:
    from storno_security import _process

    mine = _process.generation()
    assert _process.generation() == mine
    assert int(in_a_forked_child(lambda: str(_process.generation()))) != mine
    assert _process.generation() == mine
