"""LocalCluster: 16 nodes started and stopped from Python, each checked over its client port."""

import concurrent.futures
import os

import pytest

import conode


def test_sixteen_nodes(ticker):
    with ticker:
        cluster = conode.LocalCluster(16)
    assert ticker.count > 0  # the GIL was released while the nodes started
    with cluster as c:
        assert len(c) == 16 and not c.closed
        members = c.members
        assert [m.index for m in members] == list(range(16))
        assert len({m.public_key for m in members}) == 16
        assert len({m.client_url for m in members}) == 16
        for i, m in enumerate(members):
            assert c.client_url(i) == m.client_url
            assert c.is_running(i)
            assert m.address.startswith("tls://127.0.0.1:")
            assert m.cosi_public is not None

        # Every member over its client port, concurrently (the calls release the GIL).
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda m: conode.status(m.client_url), members))
        for m, st in zip(members, statuses):
            assert st["ServerIdentity"]["Public"] == m.public_key
            assert st["ServerIdentity"]["Address"] == m.address
            assert st["Conode"]["id"] == m.node_id

        # The same in-process.
        assert c.status(5)["ServerIdentity"]["Public"] == members[5].public_key

        # The roster parses back to the same members.
        roster = conode.Roster.from_toml(c.roster_toml)
        assert [m.public_key for m in roster.members] == [m.public_key for m in members]
        assert roster.id == c.roster.id

        # Stop one node: its port closes, the others answer.
        c.stop(3)
        assert not c.is_running(3) and c.client_url(3) is None
        with pytest.raises(conode.NetworkError) as e:
            conode.status(members[3].client_url, timeout=2)
        assert members[3].client_url in (e.value.url or "")
        with pytest.raises(conode.NotRunningError):
            c.stop(3)
        with pytest.raises(conode.NotRunningError):
            c.status(3)
        assert conode.status(members[4].client_url)["ServerIdentity"]["Public"] == members[4].public_key

        # Restart it on the same ports and database.
        c.restart(3)
        assert c.client_url(3) == members[3].client_url
        assert conode.status(members[3].client_url)["ServerIdentity"]["Public"] == members[3].public_key
        with pytest.raises(conode.AlreadyRunningError):
            c.restart(3)

        # Python-style indices.
        assert c.client_url(-1) == members[15].client_url
        with pytest.raises(IndexError):
            c.stop(16)
        with pytest.raises(IndexError):
            c.client_url(-17)
        folder = c.dir
        assert folder.is_dir()
    assert c.closed
    assert not folder.exists()
    with pytest.raises(conode.StateError, match="closed"):
        c.stop(0)
    with pytest.raises(conode.StateError):
        c.client_url(0)
    with pytest.raises(conode.StateError):
        with c:
            pass
    # Every node stopped: nothing answers any more.
    with pytest.raises(conode.NetworkError):
        conode.status(members[0].client_url, timeout=2)
    c.close()  # idempotent
    assert len(c) == 16 and len(c.members) == 16  # the roster stays readable


def test_cluster_in_given_folder(tmp_path):
    with conode.LocalCluster(2, dir=tmp_path, allow_open_signing=False, worker_threads=1) as c:
        assert c.dir == tmp_path
        assert conode.status(c.members[1].client_url)["ServerIdentity"]["Public"] == c.members[1].public_key
    # A given folder is the caller's: it stays.
    assert tmp_path.is_dir() and os.listdir(tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError):
        conode.LocalCluster(0)
    with pytest.raises(ValueError):
        conode.LocalCluster(1, worker_threads=0)
    with pytest.raises(OverflowError):
        conode.LocalCluster(-1)


def test_garbage_collected_cluster_stops():
    import gc

    c = conode.LocalCluster(3)
    url, folder = c.members[0].client_url, c.dir
    del c
    gc.collect()
    with pytest.raises(conode.NetworkError):
        conode.status(url, timeout=2)
    assert not folder.exists()
