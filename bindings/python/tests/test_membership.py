"""Membership by vote from Python: a network of 4, a node added by vote (add_node returns its
index and proposal), a second ballot refused, a node removed (remove_node) and retired; with a
beacon running, the vote reshares its group (same chain and key, every round verifies), and
beacon_reshare does it by hand."""

import time

import pytest

import conode


def wait(what, f, within=30.0):
    deadline = time.monotonic() + within
    while not f():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_add_and_remove_by_vote():
    with conode.LocalCluster(4) as c:
        network = c.create_network()
        assert len(network) == 64
        for i in range(4):
            wait("founders part of the network", lambda i=i: c.node_state(i) == "PartOfNetwork")

        index, proposal = c.add_node(node_data='{"pod": "p-1"}')
        assert index == 4 and len(c) == 5
        assert c.node_state(index) == "Pending"
        assert c.vote(proposal, 0) == "open"
        with pytest.raises(conode.RefusedError, match="already voted"):
            c.vote(proposal, 0, approve=False)
        c.vote(proposal, 1)
        c.vote(proposal, 2)
        wait("the new node part of the network", lambda: c.node_state(index) == "PartOfNetwork")
        assert c.client_url(-1) == c.client_url(index)

        removal = c.remove_node(1, proposer=index)
        for voter in (index, 0, 2, 3):
            c.vote(removal, voter)
        wait("node 1 retired", lambda: c.node_state(1) == "Retired")
        with pytest.raises(IndexError):
            c.node_state(5)


def verify_rounds(chain, last, node):
    """Rounds 1..last from `node` verify under the chain's unchanged info and chain on each other."""
    previous = chain.info.genesis_seed
    for r in range(1, last + 1):
        b = chain.round(r, timeout=10, node=node)
        chain.verify(b)
        assert b.previous_signature == previous, f"round {r} does not chain"
        previous = b.signature


def test_vote_reshares_a_running_beacon_and_beacon_reshare_by_hand():
    with conode.LocalCluster(4) as c:
        with pytest.raises(conode.RefusedError, match="beacon"):
            c.beacon_reshare()
        assert c.beacon_group(0) is None
        chain = c.start_beacon(period=1, phase_timeout=1.0, genesis_delay=1.0)
        info = chain.info
        assert c.beacon_group(0) == {"size": 4, "threshold": 3, "share_index": 0, "transition_round": None}
        c.create_network()
        for i in range(4):
            wait("founders part of the network", lambda i=i: c.node_state(i) == "PartOfNetwork")
        index, proposal = c.add_node()
        for voter in (0, 1, 2):
            c.vote(proposal, voter)
        wait("the new node part of the network", lambda: c.node_state(index) == "PartOfNetwork")

        # The member that appended the roster block reshares the beacon group to the five.
        wait("node 0 switched to the five-member group", lambda: (c.beacon_group(0) or {}).get("size") == 5)
        group = c.beacon_group(0)
        t = group["transition_round"]
        assert t is not None and group["threshold"] == 3
        joined = c.beacon_group(index)
        assert joined is not None and joined["share_index"] is not None and joined["transition_round"] == t
        chain.round(t + 1, timeout=15, node=index)
        for node in (0, index):
            verify_rounds(chain, t + 1, node)

        # By hand: the same five (the network's roster) with threshold 4.
        with pytest.raises(ValueError):
            c.beacon_reshare(threshold=0)
        with pytest.raises(IndexError):
            c.beacon_reshare([0, 9])
        r = c.beacon_reshare(threshold=4, phase_timeout=1.0)
        assert r["chain_hash"] == info.hash and r["transition_round"] > t
        assert r["confirmed"] == 5 and len(r["qualified"]) == 3 and "GenesisSeed" in r["group_toml"]
        wait("node 2 switched to threshold 4", lambda: (c.beacon_group(2) or {}).get("threshold") == 4)
        assert c.beacon_group(2)["transition_round"] == r["transition_round"]
        last = chain.round(r["transition_round"] + 1, timeout=15, node=2).round
        verify_rounds(chain, last, 2)
