"""Node: start/stop, context manager, state errors, status in-process and over the client port."""

import pathlib
import time

import pytest

import conode


def test_start_stop(tmp_path, config):
    node = conode.Node(config, tmp_path / "db")
    assert not node.is_running and node.client_url is None
    assert isinstance(node.data_dir, pathlib.Path) and node.data_dir == tmp_path / "db"
    node.start()
    try:
        assert node.is_running
        assert node.client_url is not None and node.client_url.startswith("ws://127.0.0.1:")
        assert node.node_addr is not None and node.node_addr.startswith("127.0.0.1:")
        assert node.public_key == config.public_key
        assert "running" in repr(node)
    finally:
        node.stop()
    assert not node.is_running and node.client_url is None
    # Again, on the same database.
    node.start()
    node.stop()
    node.close()
    with pytest.raises(conode.StateError, match="closed"):
        node.start()
    node.close()  # idempotent


def test_state_errors(tmp_path, config):
    node = conode.Node(config, tmp_path / "db")
    with pytest.raises(conode.NotRunningError) as e:
        node.stop()
    assert isinstance(e.value, conode.StateError) and str(e.value) == "node is not running"
    with pytest.raises(conode.NotRunningError):
        node.status()
    node.start()
    with pytest.raises(conode.AlreadyRunningError) as e:
        node.start()
    assert isinstance(e.value, conode.StateError) and str(e.value) == "node is already running"
    node.stop()
    with pytest.raises(conode.StateError):
        node.stop()


def test_context_manager(tmp_path, config):
    with conode.Node(config, tmp_path / "db") as node:
        assert node.is_running
        url = node.client_url
        assert conode.status(url)["ServerIdentity"]["Public"] == config.public_key
    assert not node.is_running
    with pytest.raises(conode.NetworkError) as e:
        conode.status(url, timeout=2)
    assert e.value.url is not None and url in e.value.url

    # An exception in the block still stops the node and propagates.
    with pytest.raises(KeyError):
        with conode.Node(config, tmp_path / "db") as node:
            raise KeyError("boom")
    assert not node.is_running

    # Stopped inside the block: exit does not complain.
    with conode.Node(config, tmp_path / "db") as node:
        node.stop()

    # Entering a running node is a state error (and leaves it running).
    node = conode.Node(config, tmp_path / "db")
    node.start()
    with pytest.raises(conode.AlreadyRunningError):
        with node:
            pass
    assert node.is_running
    node.stop()


def test_status_local_and_remote(tmp_path, config):
    with conode.Node(config, tmp_path / "db") as node:
        local = node.status()
        remote = conode.status(node.client_url)
    for st in (local, remote):
        assert set(st) >= {"Generic", "Db", "Conode", "ServerIdentity"}
        assert st["ServerIdentity"]["Public"] == config.public_key
        assert st["ServerIdentity"]["Address"] == config.address
        assert st["Conode"]["id"] == config.node_id
        assert st["Generic"]["Description"] == "pytest node"
        assert st["Generic"]["Version"] == conode.__version__
    assert local["ServerIdentity"]["ID"] == remote["ServerIdentity"]["ID"]
    assert "Status" in remote["Generic"]["Available_Services"]


def test_from_file(tmp_path, config):
    path = tmp_path / "conf" / "private.toml"
    config.save(path)
    with conode.Node.from_file(path, data_dir=tmp_path / "db") as node:
        assert node.public_key == config.public_key
        assert node.config.public_key == config.public_key
        assert conode.status(node.client_url)["ServerIdentity"]["Public"] == config.public_key


def test_port_in_use_is_a_network_error(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        cfg = conode.NodeConfig.generate("127.0.0.1", s.getsockname()[1])
        node = conode.Node(cfg, tmp_path / "db")
        with pytest.raises(conode.NetworkError, match="cannot listen"):
            node.start()
        assert not node.is_running
    finally:
        s.close()


def test_status_timeout_releases_the_gil(silent_server, ticker):
    with ticker:
        t0 = time.monotonic()
        with pytest.raises(conode.NetworkError, match="timed out") as e:
            conode.status(silent_server, timeout=0.5)
        elapsed = time.monotonic() - t0
    assert 0.4 < elapsed < 5
    assert e.value.url == silent_server + "/Status/Request"
    # The ticker sleeps 1 ms per step: it ran during the call only if the GIL was released.
    assert ticker.count > 50, ticker.count


def test_status_bad_arguments():
    with pytest.raises(ValueError):
        conode.status("ws://127.0.0.1:1", timeout=0)
    with pytest.raises(conode.NetworkError, match="cannot connect"):
        conode.status("ws://127.0.0.1:1", timeout=2)
    with pytest.raises(conode.NetworkError):
        conode.status("not a url", timeout=2)


def test_start_releases_the_gil(tmp_path, ticker):
    # Starting a node opens its database and binds two ports: the ticker must keep running.
    cfgs = [conode.NodeConfig.generate("127.0.0.1", 0) for _ in range(4)]
    nodes = [conode.Node(c, tmp_path / f"db{i}") for i, c in enumerate(cfgs)]
    with ticker:
        t0 = time.monotonic()
        for n in nodes:
            n.start()
        for n in nodes:
            n.stop()
        elapsed = time.monotonic() - t0
    # Allow for the ticker's own scheduling: at least a fifth of the possible steps.
    assert ticker.count >= min(20, int(elapsed * 1000 / 5)), (ticker.count, elapsed)


def test_garbage_collected_node_stops(tmp_path, config):
    import gc

    node = conode.Node(config, tmp_path / "db")
    node.start()
    url = node.client_url
    del node
    gc.collect()
    with pytest.raises(conode.NetworkError):
        conode.status(url, timeout=2)
    # The database was released: another node opens it.
    with conode.Node(config, tmp_path / "db") as again:
        assert again.is_running


def test_concurrent_starts_one_wins(tmp_path, config):
    import threading

    node = conode.Node(config, tmp_path / "db")
    results = []

    def go():
        try:
            node.start()
            results.append("started")
        except conode.AlreadyRunningError:
            results.append("already")

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already"] * 3 + ["started"]
    node.stop()
