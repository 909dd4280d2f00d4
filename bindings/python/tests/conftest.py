"""Shared helpers of the conode pytest suite."""

import os
import pathlib
import socket
import threading
import time

import pytest

import conode

REPO = pathlib.Path(__file__).resolve().parents[3]


def report_path() -> pathlib.Path:
    """Where measurements go (the lead copies them into the notes)."""
    p = os.environ.get("CONODE_PY_REPORT")
    path = pathlib.Path(p) if p else REPO / "target" / "python-tests" / "report.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def rss_kib() -> int:
    """VmRSS of this process in KiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class Ticker:
    """A Python thread counting while the main thread is inside a native call: it only advances
    when that call releases the GIL."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.count += 1
            time.sleep(0.001)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (kernel backlog) but never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield f"ws://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


@pytest.fixture
def config() -> conode.NodeConfig:
    # Port 0: the node picks free ports for both the node and the client port.
    return conode.NodeConfig.generate("127.0.0.1", 0, "pytest node")


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass (then fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class BeaconCluster:
    """A LocalCluster with a beacon chain whose round 1 has been produced."""

    def __init__(self, n: int, scheme: str) -> None:
        self.cluster = conode.LocalCluster(n)
        try:
            # Period 1 s; round 1 one second after the DKG started (short phases: the DKG ends
            # early when every member answered).
            self.chain = self.cluster.start_beacon(scheme, period=1, phase_timeout=2.0, genesis_delay=1.0)
            self.round1 = self.chain.round(1, timeout=30)
        except BaseException:
            self.cluster.close()
            raise


# One DKG per scheme for the whole run: the services, client and beacon tests share them.
@pytest.fixture(scope="session")
def chained() -> "BeaconCluster":
    bc = BeaconCluster(4, "pedersen-bls-chained")
    yield bc
    bc.cluster.close()


@pytest.fixture(scope="session")
def quicknet() -> "BeaconCluster":
    bc = BeaconCluster(3, "bls-unchained-g1-rfc9380")
    yield bc
    bc.cluster.close()
