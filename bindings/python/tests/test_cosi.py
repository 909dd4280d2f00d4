"""Collective signing from Python on a 16-node LocalCluster: a full signature, tampering caught by
verify_cosi, f stopped nodes tolerated (the mask leaves them out), f + 1 refused with a
ThresholdError naming the missing nodes, in-process and over a client port; open signing off."""

import pytest

import conode

N = 16
F = (N - 1) // 3  # 5
LEVEL = 0.5  # per-level cosi timeout (s): keeps rounds with stopped nodes short


def mask_of(indices, n=N) -> bytes:
    m = bytearray((n + 7) // 8)
    for i in indices:
        m[i // 8] |= 1 << (i % 8)
    return bytes(m)


@pytest.fixture(scope="module")
def cluster():
    with conode.LocalCluster(N) as c:
        yield c


def test_full_signature_and_tampering(cluster, ticker):
    msg = b"signed by sixteen nodes"
    with ticker:
        sig = cluster.sign(msg, timeout=LEVEL)
    assert ticker.count > 0  # the GIL was released during the round
    assert sig.signed == list(range(N))
    assert sig.mask == mask_of(range(N))
    assert sig.missing == [] and sig.refused == [] and sig.timed_out == [] and sig.invalid == []
    assert sig.required == N - F
    assert sig.message == msg and len(sig.signature) == 96
    conode.verify_cosi(msg, sig.signature, sig.mask, cluster.roster)
    conode.verify_cosi(msg, sig.signature, sig.mask, cluster.roster, threshold=N)
    sig.verify(cluster.roster)

    tampered = bytearray(sig.signature)
    tampered[50] ^= 0x01
    with pytest.raises(conode.VerifyError, match="collective signature"):
        conode.verify_cosi(msg, bytes(tampered), sig.mask, cluster.roster)
    # The mask claims one member fewer: the aggregate no longer matches the keys.
    with pytest.raises(conode.VerifyError, match="does not verify"):
        conode.verify_cosi(msg, sig.signature, mask_of(range(N - 1)), cluster.roster)
    with pytest.raises(conode.VerifyError, match="bytes"):
        conode.verify_cosi(msg, sig.signature, sig.mask[:1], cluster.roster)
    with pytest.raises(conode.VerifyError):
        conode.verify_cosi(b"another statement", sig.signature, sig.mask, cluster.roster)
    with conode.LocalCluster(2) as other:
        with pytest.raises(conode.VerifyError):
            conode.verify_cosi(msg, sig.signature, sig.mask, other.roster)
    # A threshold the roster cannot meet is the caller's mistake.
    with pytest.raises(ValueError, match="exceeds the roster size"):
        conode.verify_cosi(msg, sig.signature, sig.mask, cluster.roster, threshold=N + 1)
    with pytest.raises(ValueError):
        cluster.sign(msg, threshold=N + 1, timeout=LEVEL)


def test_f_down_signs_and_f_plus_one_down_names_the_missing(cluster):
    down = [1, 4, 7, 10, 13]  # f = 5 nodes, some of them sub-leaders
    assert len(down) == F
    try:
        for i in down:
            cluster.stop(i)
        sig = cluster.sign(b"with f nodes down", timeout=LEVEL)
        assert sig.mask == mask_of(i for i in range(N) if i not in down)
        assert sig.timed_out == down and sig.missing == down
        assert sig.signed == [i for i in range(N) if i not in down]
        assert all(sig.reasons[i] for i in down)
        conode.verify_cosi(b"with f nodes down", sig.signature, sig.mask, cluster.roster)
        # ... but not under a policy asking for every member.
        with pytest.raises(conode.VerifyError, match="requires 16"):
            conode.verify_cosi(b"with f nodes down", sig.signature, sig.mask, cluster.roster, threshold=N)

        # Over the client port of a running member: same result.
        client = conode.Client(cluster.client_url(0), timeout=30)
        remote = client.sign(b"remote with f down", roster=cluster.roster, timeout=LEVEL)
        assert remote.mask == sig.mask and remote.timed_out == down and remote.required == N - F
        remote.verify(cluster.roster)

        # f + 1 down: a ThresholdError naming every missing node.
        cluster.stop(15)
        missing = down + [15]
        with pytest.raises(conode.ThresholdError) as e:
            cluster.sign(b"with f+1 nodes down", timeout=LEVEL)
        assert list(e.value.missing) == missing
        assert (e.value.signed, e.value.required) == (N - F - 1, N - F)
        assert "threshold not reached" in str(e.value)
        for i in missing:
            assert f"#{i} " in str(e.value)
        assert isinstance(e.value, conode.ConodeError)

        with pytest.raises(conode.ThresholdError) as e:
            client.sign(b"remote with f+1 down", roster=cluster.roster, timeout=LEVEL)
        assert list(e.value.missing) == missing
        assert (e.value.signed, e.value.required) == (N - F - 1, N - F)
        assert e.value.url and e.value.url.startswith(cluster.client_url(0))

        # A lower threshold chosen per call still signs.
        low = cluster.sign(b"lower threshold", threshold=N - F - 1, timeout=LEVEL)
        conode.verify_cosi(b"lower threshold", low.signature, low.mask, cluster.roster, threshold=N - F - 1)
        with pytest.raises(conode.VerifyError, match="requires 11"):
            conode.verify_cosi(b"lower threshold", low.signature, low.mask, cluster.roster)

        # A stopped node cannot lead; by default the first running node does.
        with pytest.raises(conode.NotRunningError, match="node 1"):
            cluster.sign(b"x", node=1, timeout=LEVEL)
        assert cluster.sign(b"led by node 2", threshold=N - F - 1, timeout=LEVEL, node=2).required == N - F - 1
    finally:
        for i in down + [15]:
            if not cluster.is_running(i):
                cluster.restart(i)


def test_open_signing_disabled_is_refused():
    with conode.LocalCluster(2, allow_open_signing=False) as c:
        with pytest.raises(conode.RefusedError, match="open signing is disabled"):
            c.sign(b"x", timeout=LEVEL)
        url = c.client_url(0)
        with pytest.raises(conode.RefusedError) as e:
            conode.Client(url).sign(b"x", roster=c.roster)
        assert "open signing is disabled" in str(e.value)
        assert e.value.url == f"{url}/Cosi/Sign"


def test_closed_cluster():
    c = conode.LocalCluster(1)
    c.close()
    with pytest.raises(conode.StateError, match="closed"):
        c.sign(b"x")
