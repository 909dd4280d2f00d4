"""conode: run and orchestrate conodes (collective-authority nodes) from Python.

Quick start::

    import conode

    with conode.LocalCluster(4) as cluster:          # 4 nodes in this process
        for m in cluster.members:
            st = conode.status(m.client_url)         # over the client port
            assert st["ServerIdentity"]["Public"] == m.public_key

    cfg = conode.NodeConfig.generate("127.0.0.1", 0, "my node")
    with conode.Node(cfg, data_dir="/tmp/conode-db") as node:
        print(node.client_url, node.status()["Generic"]["Uptime"])

Services on a local cluster, and their light-client checks::

    with conode.LocalCluster(4) as cluster:
        sig = cluster.sign(b"statement")              # collective signature + report
        conode.verify_cosi(b"statement", sig.signature, sig.mask, cluster.roster)

        owner = conode.IdentityKey.generate()
        genesis = cluster.create_skipchain([owner])
        cluster.append_block(genesis.hash, b"block 1", owner)
        newest = conode.verify_skipchain(genesis.hash, cluster.skipchain_proof(genesis.hash))

        chain = cluster.start_beacon("bls-unchained-g1-rfc9380", genesis_delay=1)
        conode.verify_beacon(chain.info, chain.round(1, timeout=30))

Node events (a new block, a beacon round, a peer down, ...) as dicts, pull-style::

    for event in cluster.events(0):                   # or node.events(); also `async for`
        if event["kind"] == "block_stored":
            print(event["index"], event["hash"])

``Client(url)`` does the same against any running conode over its client port.
Every blocking call releases the GIL. Errors derive from ``conode.ConodeError``.
"""

from typing import Dict

from ._conode import (
    AlreadyRunningError,
    Beacon,
    BeaconChain,
    ChainInfo,
    Client,
    CollectiveSignature,
    ConfigError,
    Events,
    ConodeError,
    IdentityKey,
    LocalCluster,
    Member,
    NetworkError,
    Node,
    NodeConfig,
    NotFoundError,
    NotRunningError,
    RefusedError,
    Roster,
    SkipBlock,
    StateError,
    StorageError,
    ThresholdError,
    VerifyError,
    __version__,
    enable_logging,
    status,
    verify_beacon,
    verify_beacons,
    verify_cosi,
    verify_skipchain,
)

#: What ``status()``, ``Node.status()`` and ``LocalCluster.status(i)`` return:
#: ``{section: {key: value}}`` with "Generic", "Db", "Conode" and "ServerIdentity".
StatusDict = Dict[str, Dict[str, str]]

__all__ = [
    "__version__",
    # orchestration
    "NodeConfig",
    "Node",
    "LocalCluster",
    "Roster",
    "Member",
    "status",
    "StatusDict",
    "enable_logging",
    # services
    "CollectiveSignature",
    "IdentityKey",
    "SkipBlock",
    "ChainInfo",
    "Beacon",
    "BeaconChain",
    "Client",
    "Events",
    # errors
    "ConodeError",
    "ConfigError",
    "NetworkError",
    "StorageError",
    "StateError",
    "AlreadyRunningError",
    "NotRunningError",
    "VerifyError",
    "RefusedError",
    "ThresholdError",
    "NotFoundError",
    # verification
    "verify_cosi",
    "verify_skipchain",
    "verify_beacon",
    "verify_beacons",
]
