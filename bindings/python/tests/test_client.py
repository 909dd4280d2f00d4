"""conode.Client against a node of a LocalCluster, as an app would use it: status, open signing,
skipchain blocks and verified proofs, the beacon over drand's HTTP API; errors by class."""

import pytest
from conftest import wait_until

import conode


@pytest.fixture(scope="module")
def env(chained):
    cluster = chained.cluster
    owner = conode.IdentityKey.generate()
    genesis = cluster.create_skipchain([owner], b"client test")
    for i in range(1, 6):
        cluster.append_block(genesis.hash, f"entry {i}".encode(), owner)
    return chained, genesis


def test_status_and_sign(env, ticker):
    chained, _ = env
    cluster = chained.cluster
    client = conode.Client(cluster.client_url(1))
    assert client.url == cluster.client_url(1)
    assert client.http_url == cluster.client_url(1).replace("ws://", "http://")
    assert client.status()["ServerIdentity"]["Public"] == cluster.members[1].public_key
    with ticker:
        sig = client.sign(b"signed over the client port", roster=cluster.roster)
    assert ticker.count > 0
    assert sig.signed == [0, 1, 2, 3] and sig.required == 3
    conode.verify_cosi(b"signed over the client port", sig.signature, sig.mask, cluster.roster)
    # The same URL in its http:// form, with a trailing slash.
    assert conode.Client(client.http_url + "/").status()["Conode"]["id"] == cluster.members[1].node_id


def test_skipchain(env):
    chained, genesis = env
    client = conode.Client(chained.cluster.client_url(2))
    # An append returns once the members acknowledged the block or after a short wait: wait
    # until member 2 serves block 5 (readiness), then check its proof.
    def proof_to_5():
        p = client.skipchain_update(genesis.hash)
        return p if p[-1].index == 5 else None

    proof = wait_until(proof_to_5, what="block 5 on member 2")
    assert proof[0].hash == genesis.hash and proof[-1].data == b"entry 5"
    assert conode.verify_skipchain(genesis.hash, proof).index == 5
    # The stored genesis has gained forward links since it was created; its content is the same.
    fetched = client.skipchain_block(genesis.hash)
    assert (fetched.hash, fetched.index, fetched.data) == (genesis.hash, 0, genesis.data)
    assert len(fetched.forward_links) >= 1
    third = client.skipchain_block_at(genesis.hash, 3)
    assert third.index == 3 and third.data == b"entry 3"
    assert client.skipchain_block(third.hash).hash == third.hash
    with pytest.raises(conode.NotFoundError):
        client.skipchain_block(b"\x07" * 32)
    with pytest.raises(conode.NotFoundError) as e:
        client.skipchain_update(b"\x07" * 32)
    assert e.value.url and "/Skipchain/GetUpdateChain" in e.value.url
    # A proof from a block the client does not trust as the start fails verification.
    with pytest.raises(conode.VerifyError):
        conode.verify_skipchain(third.hash, proof)


def test_beacon_over_http(env, quicknet):
    chained, _ = env
    client = conode.Client(chained.cluster.client_url(3))
    info = client.beacon_info()
    assert info == chained.chain.info
    latest = client.beacon_latest(info)
    assert latest.round >= 1
    conode.verify_beacon(info, latest)
    assert client.beacon_round(1, info) == chained.round1
    assert client.beacon_round(1) == chained.round1  # unverified fetch
    with pytest.raises(conode.NotFoundError) as e:
        client.beacon_round(10**9)
    assert e.value.url == f"{client.http_url}/public/{10**9}"
    # Trusting another chain's info, what this node serves does not verify.
    with pytest.raises(conode.VerifyError):
        client.beacon_latest(quicknet.chain.info)


def test_network_errors(silent_server, chained):
    with pytest.raises(conode.NetworkError) as e:
        conode.Client(silent_server, timeout=1).status()
    assert silent_server in (e.value.url or "")
    with pytest.raises(conode.NetworkError):
        conode.Client(silent_server, timeout=1).beacon_latest()
    with pytest.raises(ValueError, match="client-port URL"):
        conode.Client("ftp://127.0.0.1:7770")
    # A node address names the client port next to it.
    assert conode.Client("tls://127.0.0.1:7770").url == "ws://127.0.0.1:7771"
    with pytest.raises(ValueError, match="client-port URL"):
        conode.Client("ws://127.0.0.1:7771/Status")
    with pytest.raises(ValueError):
        conode.Client("ws://127.0.0.1:7771", timeout=0)


def test_node_without_a_chain(chained):
    with conode.LocalCluster(1) as c:
        client = conode.Client(c.client_url(0))
        with pytest.raises(conode.NotFoundError):
            client.beacon_latest()
        with pytest.raises(conode.NotFoundError):
            client.beacon_info()


def test_cacert_is_checked_up_front(tmp_path):
    # A CA file that cannot be used is a ConfigError naming the field, before any connection.
    missing = tmp_path / "missing.pem"
    with pytest.raises(conode.ConfigError) as e:
        conode.Client("wss://localhost:1", cacert=missing)
    assert e.value.field == "cacert" and "missing.pem" in str(e.value)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(conode.ConfigError):
        conode.status("wss://localhost:1", cacert=str(garbage))
