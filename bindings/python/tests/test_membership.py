"""Membership by vote from Python: a network of 4, a node added by vote (add_node returns its
index and proposal), a second ballot refused, a node removed (remove_node) and retired."""

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
